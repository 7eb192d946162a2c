"""How an :class:`~edgecv.runtimes.evaluation.evaluate.EvalReport` is shown and saved: the side-by-side
table (terminal and Markdown), one CSV row per model, and per model ``per_class.csv``,
``confusion_matrix.csv`` and ``confusion_matrix.png`` (counts and row-normalised) under ``--out``.

The table is the answer to "which file should I ship?", so every model is on one row with its
deltas to the first model in words ("-0.4 pt accuracy, 2.1x faster, 0.28x size"), and the
recommendation follows it in one line.
"""
from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any, Callable

from edgecv.io import write_text_atomic
from edgecv.runtimes.evaluation.evaluate import EvalReport, ModelEval
from edgecv.table import format_table, markdown_table


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _ms(value: Any) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _bytes(value: Any) -> str:
    if value is None:
        return "-"
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value} B"


FORMATTERS: dict[str, Callable[[Any], str]] = {
    "top1": _pct, "topk": _pct, "macro_f1": lambda v: f"{v:.3f}", "p50_ms": _ms, "p95_ms": _ms,
    "per_image_ms": _ms, "file_bytes": _bytes,
}


def table_rows(report: EvalReport) -> list[dict[str, Any]]:
    """One flat row per model: the figures and the comparison with the first model."""
    rows = []
    for m, cmp in zip(report.models, report.comparison):
        rows.append({"model": m.name, "precision": m.engine.get("precision"), "device": m.engine.get("device"),
                     "samples": m.samples, "skipped": len(m.skipped), "top1": m.top1, "topk": m.topk, "k": m.k,
                     "macro_f1": m.macro_f1, "batch": m.latency.batch, "p50_ms": m.latency.p50_ms,
                     "p95_ms": m.latency.p95_ms, "per_image_ms": m.latency.per_image_ms,
                     "file_bytes": m.file_bytes, "top1_points": cmp["top1_points"], "speedup": cmp["speedup"],
                     "size_ratio": cmp["size_ratio"], "vs_first": cmp["text"]})
    return rows


def _columns(report: EvalReport) -> list[tuple[str, str]]:
    k = report.models[0].k if report.models else 5
    batch = report.models[0].latency.batch if report.models else 1
    first = report.models[0].name if report.models else "first"
    return [("model", "model"), ("precision", "precision"), ("top1", "top-1"), ("topk", f"top-{k}"),
            ("macro_f1", "macro F1"), ("p50_ms", f"p50 ms (batch {batch})"), ("p95_ms", "p95 ms"),
            ("per_image_ms", "ms/sample"), ("file_bytes", "size"), ("vs_first", f"vs {first}")]


def confusion_lines(report: EvalReport) -> list[str]:
    """``model.onnx: star -> circle 5 (6.2 %), ...`` per model (or "none")."""
    out = []
    for m in report.models:
        pairs = ", ".join(f"{c['true']} -> {c['predicted']} {c['count']} ({100 * c['rate']:.1f} %)" for c in m.worst)
        out.append(f"{m.name}: {pairs or 'none'}")
    return out


def format_report(report: EvalReport, *, files: list[Path] | None = None) -> str:
    """The terminal summary: data, what ran each model, the table, confusions, recommendation."""
    lines = [f"data: {report.data.describe()}"]
    lines += [f"  {m.describe}" for m in report.models]
    lines += ["", format_table(table_rows(report), _columns(report), formatters=FORMATTERS), ""]
    lines += ["worst confusions (true -> predicted):"] + [f"  {line}" for line in confusion_lines(report)]
    skipped = max((len(m.skipped) for m in report.models), default=0)
    if skipped:
        lines.append(f"skipped {skipped} unreadable file(s), e.g. {report.models[0].skipped[0]}")
    if files:
        lines.append(f"files: {', '.join(str(f) for f in files)}")
    lines.append(f"recommendation: {report.recommendation['text']}")
    return "\n".join(lines)


def format_markdown(report: EvalReport) -> str:
    """The same as a Markdown section (for a README, a pull request or docs/benchmarks.md)."""
    lines = ["# edgecv val", "", f"Data: `{report.data.describe()}`", ""]
    lines += [f"- {m.describe}" for m in report.models]
    lines += ["", markdown_table(table_rows(report), _columns(report), formatters=FORMATTERS), ""]
    lines += ["Worst confusions (true -> predicted):", ""] + [f"- {line}" for line in confusion_lines(report)]
    lines += ["", f"**Recommendation:** {report.recommendation['text']}", ""]
    return "\n".join(lines)


CSV_FIELDS = ("model", "precision", "device", "samples", "skipped", "top1", "topk", "k", "macro_f1", "batch",
              "p50_ms", "p95_ms", "per_image_ms", "file_bytes", "top1_points", "speedup", "size_ratio", "vs_first")


def format_csv(report: EvalReport) -> str:
    """One row per model with every figure of the table as a plain number."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_FIELDS), lineterminator="\n")
    writer.writeheader()
    for row in table_rows(report):
        writer.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def model_folders(report: EvalReport, out: Path) -> list[Path]:
    """``out/<model file stem>`` per model (a suffix keeps two models of the same name apart)."""
    folders: list[Path] = []
    for m in report.models:
        stem = m.name[:-5] if m.name.lower().endswith(".onnx") else m.name
        folder, n = out / stem, 2
        while folder in folders:
            folder, n = out / f"{stem}-{n}", n + 1
        folders.append(folder)
    return folders


def write_model_files(m: ModelEval, folder: Path, *, warn: Callable[[str], None]) -> list[Path]:
    """``per_class.csv``, ``confusion_matrix.csv`` and ``confusion_matrix.png`` of one model."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["class", "precision", "recall", "f1", "support"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(c.to_dict() for c in m.classes)
    written = [write_text_atomic(folder / "per_class.csv", buf.getvalue())]
    buf = io.StringIO()
    writer_cm = csv.writer(buf, lineterminator="\n")
    writer_cm.writerow(["true\\predicted", *m.columns])
    for row_class, counts in zip(m.classes, m.confusion.tolist()):
        writer_cm.writerow([row_class.name, *counts])
    written.append(write_text_atomic(folder / "confusion_matrix.csv", buf.getvalue()))
    try:
        from edgecv.plots import write_confusion_png

        written.append(write_confusion_png(folder / "confusion_matrix.png", m.confusion,
                                           [c.name for c in m.classes], m.columns, title=m.name))
    except ImportError:
        warn(f"matplotlib is not installed; skipping {folder / 'confusion_matrix.png'} (pip install 'edgecv[plot]')")
    return written


def write_outputs(report: EvalReport, out: str | os.PathLike[str], *,
                  warn: Callable[[str], None] = lambda _m: None) -> list[Path]:
    """Every model's CSV and PNG files under ``out``; returns the files written."""
    written: list[Path] = []
    for m, folder in zip(report.models, model_folders(report, Path(out))):
        written += write_model_files(m, folder, warn=warn)
    return written
