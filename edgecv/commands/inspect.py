"""``edgecv inspect MODEL``: per-layer output shapes, params and MACs; feature-map montages.

MODEL is a registry name, a checkpoint (.pt/.pth) or an .onnx file. The ONNX view, ``--layers``
and ``--activations`` never import torch, so they work on an edge device.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

ONNX_SUFFIXES = (".onnx",)
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".tar")


def resolve_kind(ref: str) -> str:
    """"onnx", "checkpoint" or "name" for what the user passed; file errors are raised here."""
    from edgecv.onnx_file import check_model_path

    p = Path(ref)
    suffix = p.suffix.lower()
    looks_like_path = p.exists() or suffix in ONNX_SUFFIXES + CHECKPOINT_SUFFIXES or "/" in ref or os.sep in ref
    if not looks_like_path:
        return "name"
    check_model_path(p)  # missing, directory, empty
    if suffix in ONNX_SUFFIXES:
        return "onnx"
    if suffix in CHECKPOINT_SUFFIXES:
        return "checkpoint"
    with open(p, "rb") as handle:
        head = handle.read(4)
    # torch.save writes a zip archive; anything else is tried as ONNX (protobuf has no magic)
    return "checkpoint" if head.startswith(b"PK") else "onnx"


def _shape_text(shape: Any) -> str:
    return "-" if shape is None else "x".join(str(v) for v in shape) or "scalar"


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f} MB"


def render(stats: Any, *, show_all: bool = False) -> str:
    """Human table plus totals for a :class:`~edgecv.graph.stats.ModelStats`."""
    from edgecv.table import format_table

    layers = [layer for layer in stats.layers if show_all or not layer.shape_op]
    rows = [{"#": i, "name": layer.name, "type": layer.type, "output": _shape_text(layer.output_shape),
             "params": layer.params, "macs": layer.macs} for i, layer in enumerate(layers)]
    lines = []
    io = ", ".join(f"{v['name']} {_shape_text(v['shape'])}" + (f" {v['dtype']}" if v.get("dtype") else "")
                   for v in stats.inputs)
    head = stats.source
    if stats.kind == "onnx":
        info = stats.info
        head += f" (ONNX, opset {info.get('opset')}, IR {info.get('ir_version')}"
        head += f", from {info['producer']})" if info.get("producer") else ")"
    else:
        head += f" (PyTorch {stats.info.get('architecture') or ''} {json.dumps(stats.info.get('model_kwargs') or {})})"
    lines += [head, f"inputs: {io}", ""]
    lines.append(format_table(rows, [("#", "#"), ("name", "name"), ("type", "type"), ("output", "output shape"),
                                     ("params", "params"), ("macs", "MACs")]))
    hidden = len(stats.layers) - len(layers)
    lines.append("")
    lines.append(f"total params:  {stats.total_params:,}" +
                 (f"  (+ {stats.total_buffers:,} buffer elements, e.g. BatchNorm running stats)"
                  if stats.total_buffers else ""))
    lines.append(f"total MACs:    {stats.total_macs:,}  ({stats.total_macs / 1e6:,.1f} M)")
    lines.append(f"GFLOPs:        {stats.gflops:.3f}  (FLOPs = 2 x MACs, batch {_batch(stats)})")
    if stats.file_bytes is not None:
        lines.append(f"model size:    {_mb(stats.file_bytes)} file, {_mb(stats.param_bytes)} weights")
    else:
        lines.append(f"model size:    {_mb(stats.param_bytes)} (parameters + buffers as stored)")
    if hidden:
        lines.append(f"({hidden} shape-arithmetic/constant nodes hidden; --all shows them)")
    for note in stats.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _batch(stats: Any) -> Any:
    for value in stats.inputs:
        shape = value.get("shape") or []
        if shape and isinstance(shape[0], int):
            return shape[0]
    return 1


@click.command("inspect", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model_ref", metavar="MODEL")
@click.option("--model", "arch", default=None, metavar="NAME",
              help="Architecture of a bare (torchvision-format) state-dict checkpoint.")
@click.option("--num-classes", type=click.IntRange(min=1), default=None, help="Classes of the head (registry names).")
@click.option("--input-size", default=None, metavar="S|C,H,W", help="Image input size, e.g. 224 or 3,224,224.")
@click.option("--seq-len", type=click.IntRange(min=1), default=None, help="Text models: sequence length [default: 64].")
@click.option("--vocab-size", type=click.IntRange(min=2), default=None, help="Text models: vocabulary size [default: 10000].")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="ONNX: batch size for dynamic batch axes.")
@click.option("--all", "show_all", is_flag=True, help="Also list shape-arithmetic and constant nodes.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--layers", "list_layers", is_flag=True, help="ONNX: list intermediate tensors (name, op, shape).")
@click.option("--activations", "image", default=None, metavar="IMAGE",
              help="ONNX: run IMAGE and write a montage of --layer's channels to -o.")
@click.option("--layer", default=None, metavar="NAME", help="Tensor for --activations (see --layers).")
@click.option("-o", "--output", default=None, metavar="FILE.png", help="Montage PNG written by --activations.")
@click.option("--max-channels", type=click.IntRange(min=1), default=64, show_default=True,
              help="Channels drawn in the montage.")
def inspect(model_ref: str, arch: str | None, num_classes: int | None, input_size: str | None,
            seq_len: int | None, vocab_size: int | None, batch: int, show_all: bool, as_json: bool,
            list_layers: bool, image: str | None, layer: str | None, output: str | None,
            max_channels: int) -> None:
    """Per-layer output shape, params and MACs of a model, with totals (like analyzeNetwork).

    MODEL is a registry name (see `edgecv models`), an edgecv or torchvision checkpoint
    (.pt/.pth; add --model NAME for a bare state dict) or an .onnx file. For an .onnx exported
    by edgecv, its contract (task, labels, preprocessing, export settings) is printed first.

    \b
    Example:
      edgecv inspect mobilenet_v2 --input-size 160 --num-classes 5
      edgecv inspect lstm_classifier --seq-len 128 --json
      edgecv inspect runs/exp1/best.pt
      edgecv inspect mobilenet_v2.pth --model mobilenet_v2
      edgecv inspect model.onnx
      edgecv inspect model.onnx --layers
      edgecv inspect model.onnx --activations cat.jpg --layer /features/features.0/features.0.2/Clip_output_0 -o maps.png
    """
    if image is not None and (layer is None or output is None):
        raise click.UsageError("--activations IMAGE needs --layer NAME and -o FILE.png")
    if (layer is not None or output is not None) and image is None:
        raise click.UsageError("--layer and -o are used with --activations IMAGE")
    kind = resolve_kind(model_ref)
    if (list_layers or image) and kind != "onnx":
        raise click.BadParameter(f"{model_ref}: --layers/--activations work on an .onnx file",
                                 param_hint="MODEL")
    if kind == "onnx":
        _inspect_onnx(model_ref, batch=batch, seq_len=seq_len, input_size=input_size, show_all=show_all,
                      as_json=as_json, list_layers=list_layers, image=image, layer=layer, output=output,
                      max_channels=max_channels)
        return
    from edgecv.errors import require

    require("torch", "train")
    from edgecv.models.summary import (
        parse_input_size,
        summarize_checkpoint,
        summarize_registered,
    )

    if kind == "checkpoint":
        stats = summarize_checkpoint(model_ref, model_name=arch, num_classes=num_classes,
                                     vocab_size=vocab_size, input_size=input_size, seq_len=seq_len)
    else:
        from edgecv.models import get_model_spec

        spec = get_model_spec(model_ref)  # unknown names: error listing the valid ones
        size = parse_input_size(input_size, default=spec.input_size) if spec.task == "image" else None
        stats = summarize_registered(model_ref, num_classes=num_classes, vocab_size=vocab_size,
                                     input_size=size, seq_len=seq_len)
    _emit(stats, as_json=as_json, show_all=show_all)


def _emit(stats: Any, *, as_json: bool, show_all: bool, contract: Any = None) -> None:
    if as_json:
        data = stats.to_dict()
        data["layers"] = [layer for layer in data["layers"] if show_all or not layer["shape_op"]]
        if contract is not None:
            data["contract"] = {k[len("edgecv."):]: json.loads(v) for k, v in contract.to_metadata().items()}
        click.echo(json.dumps(data, indent=2))
        return
    if contract is not None:
        click.echo(contract.describe() + "\n")
    click.echo(render(stats, show_all=show_all))


def _inspect_onnx(path: str, *, batch: int, seq_len: int | None, input_size: str | None, show_all: bool,
                  as_json: bool, list_layers: bool, image: str | None, layer: str | None,
                  output: str | None, max_channels: int) -> None:
    from edgecv.contract import contract_from_model
    from edgecv.onnx_file import load_onnx
    from edgecv.table import format_table

    if image is not None:
        from edgecv.graph.activations import write_montage

        summary = write_montage(path, image, layer, output, max_channels=max_channels)
        if as_json:
            click.echo(json.dumps(summary, indent=2))
        else:
            click.echo(f"wrote {summary['output']}: {summary['channels_shown']} channel(s) of {layer} "
                       f"{_shape_text(summary['shape'])} (min {summary['min']:.4g}, max {summary['max']:.4g})")
        return
    model = load_onnx(path)
    if list_layers:
        from edgecv.graph.activations import list_tensors

        tensors = list_tensors(model)
        if as_json:
            click.echo(json.dumps([t.to_dict() for t in tensors], indent=2))
        else:
            click.echo(format_table([{"name": t.name, "op": t.op, "shape": _shape_text(t.shape)} for t in tensors],
                                    [("name", "name"), ("op", "op"), ("shape", "shape (batch 1)")]))
        return
    from edgecv.graph.stats import graph_stats

    side = 224
    if input_size:
        try:
            side = int(str(input_size).replace("x", ",").split(",")[-1])
        except ValueError:
            raise click.BadParameter(f"{input_size!r}: expected e.g. 224 or 3,224,224",
                                     param_hint="--input-size") from None
    stats = graph_stats(model, batch=batch, seq_len=seq_len or 64, image_size=side, source=path)
    _emit(stats, as_json=as_json, show_all=show_all, contract=contract_from_model(model, source=path))
