"""``edgecv models``: the architectures edgecv can build, with params and MACs at their default input."""
from __future__ import annotations

import json

import click

FOOTER = ("Figures at batch 1 and each model's default input: torchvision-compatible image models with "
          "{imagenet} classes, other image models with their builder defaults, text models with a "
          "{vocab:,}-word vocabulary, {text_classes} classes and the sequence length shown. "
          "FLOPs = 2 x MACs.")


def model_rows(task: str | None = None) -> list[dict]:
    """One dict per registered architecture (built on the meta device: no weights, fast)."""
    from edgecv.errors import require

    require("torch", "train")
    from edgecv.models import get_model_spec, list_models
    from edgecv.models.summary import summarize_registered

    rows = []
    for name in list_models(task):
        spec = get_model_spec(name)
        stats = summarize_registered(name)
        kwargs = stats.info.get("model_kwargs") or {}
        out_shape = stats.outputs[0]["shape"] if stats.outputs else None
        rows.append({
            "name": name, "task": spec.task, "input_size": list(stats.info["input_size"]),
            "params": stats.total_params, "macs": stats.total_macs, "flops": stats.total_flops,
            "num_classes": kwargs.get("num_classes") or (out_shape[-1] if out_shape else None), "model_kwargs": kwargs,
            "torchvision_compatible": spec.torchvision_compatible, "description": spec.description,
        })
    return rows


def _input_text(row: dict) -> str:
    size = row["input_size"]
    return f"{size[0]} tokens" if row["task"] == "text" else "x".join(str(v) for v in size)


@click.command("models", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--task", type=click.Choice(["image", "text"]), default=None, help="Only image or text models.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def models(task: str | None, as_json: bool) -> None:
    """List the model architectures with task, default input size, params and MACs.

    \b
    Example:
      edgecv models
      edgecv models --task image --json
      edgecv inspect mobilenet_v2          # per-layer view of one of them
    """
    from edgecv.models.summary import (
        DEFAULT_TEXT_CLASSES,
        DEFAULT_VOCAB,
        IMAGENET_CLASSES,
    )
    from edgecv.table import format_table

    rows = model_rows(task)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    shown = [{**r, "input": _input_text(r), "macs_m": r["macs"] / 1e6, "classes": r["num_classes"]}
             for r in rows]
    click.echo(format_table(shown, [("name", "name"), ("task", "task"), ("input", "input"),
                                    ("classes", "classes"), ("params", "params"), ("macs_m", "MACs (M)"),
                                    ("description", "description")],
                            formatters={"macs_m": lambda v: f"{v:,.1f}"}))
    click.echo("\n" + FOOTER.format(imagenet=IMAGENET_CLASSES, vocab=DEFAULT_VOCAB,
                                    text_classes=DEFAULT_TEXT_CLASSES))
