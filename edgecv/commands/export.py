"""``edgecv export``: a checkpoint -> a verified, self-describing ONNX file (+ fp16 / int8 copies).

torch is imported only inside the command, so ``edgecv --help`` stays fast and torch-free.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

OPSET_RANGE = (13, 23)  # the exporter checks the exact range it supports


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f} MB"


def _parity_text(row: Any) -> str:
    p = row.parity
    if not p:
        return "-"
    if p.get("error") and p.get("top1_agreement") is None:
        return "does not run"
    text = f"top1 {p['top1_agreement']:.1%}"
    if row.stage in ("fp32", "simplified"):
        text = f"max|d| {p['max_abs']:.1e}, " + text
    else:
        text += f", top5 {p['top5_overlap']:.0%}"
    if p.get("accuracy") is not None:
        text += f", acc {p['accuracy']:.1%}"
    return text


def render(report: Any) -> str:
    """The human report: one row per stage, then warnings."""
    from edgecv.table import format_table

    rows = []
    for r in report.stages:
        rows.append({"stage": r.stage, "status": r.status,
                     "file": Path(r.file).name if r.file else "-",
                     "size": _mb(r.size), "nodes": r.nodes, "parity": _parity_text(r),
                     "time": f"{r.seconds:.2f} s" if r.seconds is not None else "-"})
    calib = report.data_split.get("calibration")
    lines = [f"{report.architecture} ({report.task}) -> {report.output}",
             f"parity inputs: {report.samples}"]
    if calib:
        held = "none of them a parity input" if calib.get("disjoint_from_parity") else "OVERLAPS the parity inputs"
        lines.append(f"int8 calibration: {calib['samples']} images from {calib['source']} ({held})")
    lines += ["", format_table(rows, [("stage", "stage"), ("status", "status"), ("file", "file"),
                                      ("size", "size"), ("nodes", "nodes"), ("parity", "parity vs torch fp32"),
                                      ("time", "time")])]
    notes = [f"{r.stage}: {r.note}" for r in report.stages
             if r.note and (r.status != "ok" or r.stage == "simplified")]
    extra = []
    for r in report.stages:
        if r.details.get("size_ratio"):
            extra.append(f"{r.stage}: {r.details['size_ratio']:.2f}x the fp32 size")
        if r.stage == "int8" and r.details:
            d = r.details
            kind = " ".join(str(v) for v in (d.get("method"), d.get("format")) if v)
            extra.append(f"int8: {kind}, per_channel={d.get('per_channel')}, "
                         f"reduce_range={d.get('reduce_range')}"
                         + (f", calibrated on {d['calibration_samples']} images from {d.get('calibration_source')}"
                            if d.get("calibration_samples") else ""))
    if notes or extra:
        lines += [""] + [f"  {n}" for n in notes + extra]
    for path in written_models(report):
        lines.append(f"wrote: {path}")
    lines.append(f"report: {report.report_path}")
    lines.append("export OK" if report.passed else
                 "export FAILED (the files that were written are marked failed in their metadata)")
    return "\n".join(lines)


def written_models(report: Any) -> list[str]:
    """The ONNX files this export left on disk, in stage order, each once (the fp32 and the
    simplified stage share one file when the simplified graph is kept)."""
    files = dict.fromkeys(r.file for r in report.stages if r.file)
    return [f for f in files if Path(f).is_file()]


def default_output(checkpoint: Path | None, weights: Path | None) -> Path | None:
    """``-o`` when it is not given: the weights' own name with ``.onnx``, beside them
    (``runs/exp/best.pt`` -> ``runs/exp/best.onnx``, ``best.int8.onnx``, ``best.export.json``),
    so a run folder keeps its model with its checkpoint; None when there is no file to sit beside."""
    source = checkpoint if checkpoint is not None else weights
    if source is None:
        return None
    return source.with_name((source.stem if source.suffix else source.name) + ".onnx")


def _checked_usage(checkpoint: Path | None, *, weights: Path | None, random_init: bool, model_name: str | None,
                   output: Path | None) -> Path:
    """Usage errors (exit 2) before anything is loaded; returns the output path to write."""
    if checkpoint is None and weights is None and not random_init:
        raise click.UsageError("give a CHECKPOINT, or --model NAME --weights FILE")
    if (weights is not None or random_init) and model_name is None:
        raise click.UsageError("--weights/--random-init need --model NAME")
    if random_init and (weights is not None or checkpoint is not None):
        raise click.UsageError("--random-init cannot be combined with a checkpoint or --weights")
    output = output if output is not None else default_output(checkpoint, weights)
    if output is None:
        raise click.UsageError("--random-init has no checkpoint to write beside: give -o FILE.onnx")
    return output


@click.command("export")
@click.argument("checkpoint", required=False, type=click.Path(dir_okay=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output .onnx file; model.fp16.onnx / model.int8.onnx / model.export.json go beside it "
                   "[beside the checkpoint: runs/exp/best.pt -> runs/exp/best.onnx].")
@click.option("--data", type=click.Path(path_type=Path),
              help="Image folder or text .csv/.tsv/.jsonl: real samples for parity and int8 calibration "
                   "(never the same ones; with DIR/train + DIR/val: calibrate on train, check on val).")
@click.option("--opset", type=click.IntRange(*OPSET_RANGE), default=None,
              help="ONNX opset [17; 18 with --exporter dynamo] (torchscript: 13-20; dynamo: 18-23).")
@click.option("--fp16", is_flag=True, help="Also write model.fp16.onnx (float16 weights, float32 I/O).")
@click.option("--int8", is_flag=True,
              help="Also write model.int8.onnx (static QDQ for image models, needs --data; dynamic for text).")
@click.option("--calib-size", type=click.IntRange(1, None), default=300, show_default=True,
              help="Images used for int8 calibration (none of them is a parity sample).")
@click.option("--no-simplify", is_flag=True, help="Skip onnxsim.")
@click.option("--model", "model_name", help="Architecture for a bare state dict (see 'edgecv models').")
@click.option("--weights", type=click.Path(dir_okay=True, path_type=Path),
              help="Bare torchvision-format state dict (with --model).")
@click.option("--num-classes", type=click.IntRange(1, None), help="Classes of a bare state dict's head.")
@click.option("--image-size", "--img-size", "image_size", type=click.IntRange(8, None),
              help="Input side in pixels for a bare state dict (default: the architecture's).")
@click.option("--random-init", is_flag=True, help="Export untrained weights (with --model; for testing only).")
@click.option("--exporter", type=click.Choice(["torchscript", "dynamo"]), default="torchscript",
              show_default=True,
              help="torch.onnx exporter; torchscript is faster and writes opsets 13-20 directly "
                   "(see docs/metadata.md).")
@click.option("--verify-size", type=click.IntRange(4, None), default=128, show_default=True,
              help="Samples from --data used for parity checks.")
@click.option("--no-attention", is_flag=True, help="Text models: do not export the attention output.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def export(checkpoint: Path | None, output: Path | None, data: Path | None, opset: int | None, fp16: bool, int8: bool,
           calib_size: int, no_simplify: bool, model_name: str | None, weights: Path | None,
           num_classes: int | None, image_size: int | None, random_init: bool, exporter: str,
           verify_size: int, no_attention: bool, as_json: bool) -> None:
    """Export a checkpoint to a verified, self-describing ONNX file.

    Runs the model at batch 1 and 3 (and two sequence lengths for text) in ONNX Runtime and
    compares with PyTorch; fp32 must match (atol 1e-4, 100% top-1) or the command exits 1.

    Without -o the model goes beside the checkpoint, named after it: runs/exp/best.pt ->
    runs/exp/best.onnx (+ best.fp16.onnx, best.int8.onnx, best.export.json); the paths are printed.

    \b
    Examples:
      edgecv export runs/exp/best.pt --data data/ --int8   # runs/exp/best.onnx, best.int8.onnx
      edgecv export runs/exp1/best.pt -o model.onnx --data data/val --fp16 --int8
      edgecv export --model mobilenet_v2 --weights mobilenet_v2.pth --num-classes 1000 -o mnv2.onnx
      edgecv inspect model.onnx            # print the embedded contract
    """
    output = _checked_usage(checkpoint, weights=weights, random_init=random_init, model_name=model_name,
                            output=output)
    from edgecv.exporters.pipeline import (
        ExportOptions,
        check_destinations,
        check_options,
        run_export,
    )
    from edgecv.exporters.source import load_source

    if opset is None:
        opset = 18 if exporter == "dynamo" else 17  # the dynamo exporter implements >= 18 only
    opts = ExportOptions(output=output, data=data, opset=opset, fp16=fp16, int8=int8,
                         calib_size=calib_size, simplify=not no_simplify, exporter=exporter,
                         verify_size=verify_size, attention=not no_attention)
    if output.is_dir():  # checked again in check_options; here to fail before the model load
        from edgecv.errors import InputError

        raise InputError(f"-o {output}: is a directory; expected a file path such as {output / 'model.onnx'}")
    check_destinations(opts)  # a read-only or impossible -o fails before the model is loaded
    source = load_source(checkpoint, model_name=model_name, weights=weights, num_classes=num_classes,
                         image_size=image_size, random_init=random_init)
    for warning in source.warnings:
        click.echo(f"Warning: {warning}", err=True)
    check_options(source, opts)
    import sys

    show = sys.stderr.isatty() and not as_json
    report = run_export(source, opts, progress=(lambda m: click.echo(f"... {m}", err=True)) if show else None)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        click.echo(render(report))
        for warning in report.warnings:
            if warning not in source.warnings:
                click.echo(f"Warning: {warning}", err=True)
    if not report.passed:
        raise SystemExit(1)
