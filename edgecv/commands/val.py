"""``edgecv val``: which file should I ship? Accuracy, latency and size of ONNX files side by side.

torch-free: the command imports only the runtime layer (never ``edgecv.training``), so it runs
on the edge device that will run the model, on the engine it will use.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from edgecv.commands.options import (
    BACKEND_KEYS,
    PREPROCESS_KEYS,
    ProviderType,
    backend_options,
    engine_fields,
    preprocess_options,
    preprocess_overrides,
    take,
)

EXAMPLES = """
\b
Examples:
  edgecv val model.onnx model.int8.onnx data/          # data/test or data/val when present
  edgecv val model.onnx model.fp16.onnx data/val --provider cuda --batch-size 8 --out val/
  edgecv val mobilenetv2.onnx photos/ --labels imagenet --resize 256 --crop 224
  edgecv val sentiment.onnx sentiment.int8.onnx reviews.csv --json report.json --markdown val.md
"""


@dataclass
class ValOptions:
    """Every ``edgecv val`` flag, one field each (click passes them by these names)."""

    paths: tuple[str, ...]
    labels: str | None = None
    batch_size: int = 1
    threads: int | None = None
    provider: str = "auto"
    allow_fallback: bool = False
    tolerance: float = 1.0
    text_column: str = "text"
    label_column: str = "label"
    json_path: str | None = None
    csv_path: str | None = None
    markdown_path: str | None = None
    out_dir: str | None = None
    verbose: bool = False
    # preprocessing for foreign models (see edgecv.commands.options.preprocess_options)
    preprocess: dict[str, Any] = field(default_factory=dict)  # PREPROCESS_KEYS: flags given, by name
    # GPU / OpenVINO backend options (see edgecv.commands.options.backend_options)
    backend: dict[str, Any] = field(default_factory=dict)  # BACKEND_KEYS: GPU / OpenVINO options

    @property
    def models(self) -> list[str]:
        return list(self.paths[:-1])

    @property
    def data(self) -> str:
        return self.paths[-1]

    @property
    def out(self) -> Any:
        """Human output goes to stderr when the JSON report takes stdout."""
        return sys.stderr if self.json_path == "-" else sys.stdout

    def eval_options(self) -> Any:
        from edgecv.runtimes.engines.base import EngineOptions
        from edgecv.runtimes.evaluation.evaluate import EvalOptions

        engine = EngineOptions(provider=self.provider, threads=self.threads, verbose=self.verbose,
                               allow_fallback=self.allow_fallback, batch_sizes=(self.batch_size,),
                               **engine_fields(self.backend))
        return EvalOptions(batch_size=self.batch_size, tolerance=self.tolerance, labels=self.labels,
                           overrides=preprocess_overrides(self.preprocess), engine=engine,
                           text_column=self.text_column, label_column=self.label_column)


def check_outputs(opts: ValOptions) -> None:
    """Every output is writable before a model is opened: a long evaluation is never lost at
    its last write."""
    from edgecv.io import check_writable, check_writable_dir

    for flag, path in (("--json", opts.json_path), ("--csv", opts.csv_path), ("--markdown", opts.markdown_path)):
        if path is not None and path != "-":
            check_writable(path, option=flag)
    if opts.out_dir is not None:
        check_writable_dir(opts.out_dir, option="--out")


def _progress(opts: ValOptions) -> Any:
    """A tqdm bar per model on a terminal; nothing when stdout is a pipe or a file."""
    if not sys.stdout.isatty() or opts.json_path == "-":
        return None
    from tqdm import tqdm

    return lambda name, total: tqdm(total=total, desc=name, unit="sample", leave=False, dynamic_ncols=True)


@click.command("val", epilog=EXAMPLES)
@click.argument("paths", nargs=-1, required=True, metavar="MODEL.onnx [MORE.onnx ...] DATA")
@click.option("--labels", default=None, metavar="FILE|imagenet",
              help="Class names of a foreign model, matched to DATA's folder names.")
@preprocess_options()
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="Samples per inference call; latency is reported per call at this size.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Intra-op threads [backend default].")
@click.option("--provider", type=ProviderType(), default="auto", show_default=True,
              help="auto, cpu, cuda, tensorrt (ONNX Runtime) or openvino[:CPU|GPU|NPU|AUTO].")
@click.option("--allow-fallback", is_flag=True, help="Let an explicit --provider fall back to CPU.")
@click.option("--tolerance", type=click.FloatRange(0, 100), default=1.0, show_default=True, metavar="POINTS",
              help="Top-1 points a faster file may lose and still be recommended.")
@click.option("--text-column", default="text", show_default=True, help="Text column of a CSV/TSV/JSONL DATA.")
@click.option("--label-column", default="label", show_default=True, help="Label column of a CSV/TSV/JSONL DATA.")
@click.option("--json", "json_path", default=None, metavar="FILE|-", help="The whole report as JSON ('-' = stdout).")
@click.option("--csv", "csv_path", default=None, metavar="FILE", help="The side-by-side table as CSV.")
@click.option("--markdown", "markdown_path", default=None, metavar="FILE|-", help="The report as Markdown.")
@click.option("--out", "out_dir", default=None, metavar="DIR",
              help="Per model: per_class.csv, confusion_matrix.csv and confusion_matrix.png.")
@click.option("--verbose", is_flag=True, help="Show ONNX Runtime's and OpenCV's own log.")
@backend_options()
def val(**params: Any) -> None:
    """Evaluate one or more .onnx classifiers on labelled data and say which file to ship.

    DATA is a folder per class (DATA/test or DATA/val is used when present) or a CSV/TSV/JSONL
    of texts and labels. Per model: top-1/top-5 accuracy, macro F1, per-class precision, recall
    and F1, the worst-confused pairs, file size (with external data), p50/p95 latency on this
    device and what really ran; then the deltas to the first model and one recommendation: the
    fastest file within --tolerance points of the best top-1.
    """
    from edgecv.cli import restore_native_logs

    opts = ValOptions(preprocess=take(params, PREPROCESS_KEYS), backend=take(params, BACKEND_KEYS), **params)
    if opts.verbose:
        restore_native_logs()
    if len(opts.paths) < 2:
        raise click.UsageError("give MODEL.onnx [MORE.onnx ...] DATA: one or more models, then the labelled data")
    check_outputs(opts)
    from edgecv.runtimes.evaluation.evaluate import evaluate

    report = evaluate(opts.models, opts.data, opts.eval_options(), progress=_progress(opts))
    for warning in report.warnings:
        click.echo(f"Warning: {warning}", err=True)
    _write(report, opts)


def _write(report: Any, opts: ValOptions) -> None:
    """Files first (--out, --csv, --markdown, --json), then the summary that lists them."""
    from edgecv.io import write_json_atomic, write_text_atomic
    from edgecv.runtimes.evaluation.report import format_csv, format_markdown, format_report, write_outputs

    files: list[Path] = []
    if opts.out_dir is not None:
        files += write_outputs(report, opts.out_dir, warn=lambda m: click.echo(f"Warning: {m}", err=True))
    if opts.csv_path is not None:
        files.append(write_text_atomic(opts.csv_path, format_csv(report)))
    if opts.markdown_path == "-":
        click.echo(format_markdown(report), file=opts.out)
    elif opts.markdown_path is not None:
        files.append(write_text_atomic(opts.markdown_path, format_markdown(report)))
    if opts.json_path is not None and opts.json_path != "-":
        files.append(write_json_atomic(opts.json_path, report.to_dict()))
    click.echo(format_report(report, files=files), file=opts.out)
    if opts.json_path == "-":
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
