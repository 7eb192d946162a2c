"""Profile reports: a readable table, JSON, CSV, Markdown and a latency-distribution plot.

Comparisons are ratios of medians measured in the same process run: every result is compared with
the first result of the same (batch, threads, seq-len) group -- the first model given on the
command line, on the first provider and precision -- so ``fp32.onnx int8.onnx --provider
cpu,openvino`` reads "x times the speed of fp32 on ONNX Runtime" on every row. Rows name their
provider and precision only where the table holds more than one of them.

The terminal gets a table that fits in 120 columns (:func:`format_compact`: what a person reads
first -- who ran, the median and the tail, throughput, the ratio and what it cost); ``--wide``
prints :func:`format_results`, every column, and JSON/CSV/Markdown always keep every field.
"""
from __future__ import annotations

import csv
import io
import json
import os
import textwrap
from typing import Any, Sequence

from edgecv.io import write_json_atomic, write_text_atomic
from edgecv.table import format_table, markdown_table

COLUMNS: list[tuple[str, str]] = [
    ("model", "model"), ("runtime", "runtime"), ("provider", "provider"), ("precision", "precision"), ("batch", "batch"),
    ("threads", "threads"), ("seq_len", "seq"), ("create_ms", "create ms"), ("first_run_ms", "1st run ms"),
    ("p50_ms", "p50 ms"), ("p90_ms", "p90 ms"), ("p99_ms", "p99 ms"),
    # GPU rows with I/O binding: host-to-device copy and compute p50 measured apart (CPU rows have
    # none, so the columns are dropped); TensorRT rows: whether the engine came from the cache
    ("h2d_ms", "h2d ms"), ("compute_ms", "compute ms"), ("tensorrt_cache", "TRT engine"), ("mean_ms", "mean ms"),
    ("std_ms", "std ms"), ("min_ms", "min ms"), ("max_ms", "max ms"), ("runs", "runs"),
    ("throughput", "items/s"), ("gflops", "GFLOP/s"), ("pct_peak", "% peak"), ("speedup", "vs first"),
    ("parity_max_abs", "max |diff|"), ("parity_top1", "top-1 agree"),
]


def _group_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row.get("batch"), row.get("threads"), row.get("seq_len"))


def _labeller(rows: Sequence[dict[str, Any]]) -> Any:
    """``row -> "a.onnx (onnxruntime)"``, adding the provider and precision only when the rows
    hold more than one of them: "a.onnx (openvino:CPU, bf16)" vs "a.onnx (onnxruntime cpu, fp32)"."""
    providers = {r.get("provider") for r in rows if r.get("runtime") in ("onnxruntime", "openvino")}
    precisions = {r.get("precision") for r in rows} - {None}

    def label(row: dict[str, Any]) -> str:
        runtime, provider = str(row.get("runtime")), str(row.get("provider"))
        what = provider if provider.startswith(runtime) else f"{runtime} {provider}"
        parts = [what if len(providers) > 1 else runtime]
        if len(precisions) > 1 and row.get("precision"):
            parts.append(str(row["precision"]))
        return f"{row['model']} ({', '.join(parts)})"

    return label


def add_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``speedup`` (first p50 / this p50) and ``vs`` (the reference) to every row in place."""
    first: dict[tuple[Any, ...], dict[str, Any]] = {}
    label = _labeller(rows)
    for row in rows:
        ref = first.setdefault(_group_key(row), row)
        row["speedup"] = (ref["p50_ms"] / row["p50_ms"]) if row.get("p50_ms") else None
        row["vs"] = label(ref)
    return rows


def comparison_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One sentence per non-reference row: "b.onnx (onnxruntime) is 1.8x faster than a.onnx ...",
    plus what it costs in accuracy where the row carries a parity check."""
    out = []
    label = _labeller(rows)
    for row in rows:
        if row.get("speedup") is None or row["vs"] == label(row):
            continue
        s = row["speedup"]
        word = f"{s:.2f}x faster than" if s >= 1 else f"{1 / s:.2f}x slower than"
        where = f"batch {row['batch']}, threads {row['threads']}" + (f", seq {row['seq_len']}" if row.get("seq_len") else "")
        cost = ""
        if row.get("parity_max_abs") is not None:
            top1 = row.get("parity_top1")
            cost = (f"; vs {row.get('parity_ref')}: max |diff| {row['parity_max_abs']:.3g}"
                    + (f", top-1 agreement {100 * top1:.1f}%" if top1 is not None else "")
                    + f" on {row.get('parity_inputs')}")
        out.append(f"{label(row)} is {word} {row['vs']} at {where} (p50){cost}")
    return out


def _fmt_ms(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _fmt_ratio(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _fmt_pct(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _fmt_num(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


FORMATTERS = {key: _fmt_ms for key, _ in COLUMNS if key.endswith("_ms")}
FORMATTERS.update(speedup=_fmt_ratio, pct_peak=_fmt_pct, throughput=_fmt_num, gflops=_fmt_num,
                  tensorrt_cache=lambda v: "-" if not v else str(v.get("state", "-")),
                  parity_max_abs=lambda v: "-" if v is None else f"{v:.2e}",
                  parity_top1=lambda v: "-" if v is None else f"{100 * v:.1f}%")


def _columns(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """Drop columns that are empty for every row (no text models -> no seq column)."""
    return [(k, h) for k, h in COLUMNS if any(r.get(k) is not None for r in rows)]


def format_results(rows: Sequence[dict[str, Any]]) -> str:
    """Every column (``profile --wide``): 170+ characters for one model, so not the default."""
    return format_table(rows, _columns(rows), formatters=FORMATTERS)


TABLE_WIDTH = 120  # the widest terminal people are assumed to have; the compact table fits in it
# (key, header) of the compact table; "engine" is derived (runtime + provider in one cell)
COMPACT_COLUMNS: list[tuple[str, str]] = [
    ("model", "model"), ("engine", "engine"), ("precision", "prec"), ("batch", "batch"), ("threads", "thr"),
    ("seq_len", "seq"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("throughput", "items/s"),
    ("speedup", "vs first"), ("parity_max_abs", "max|diff|"), ("parity_top1", "top-1"),
]


def engine_name(row: dict[str, Any]) -> str:
    """Runtime and provider in one cell: "onnxruntime cpu", "openvino:CPU", "opencv cpu"."""
    runtime, provider = str(row.get("runtime")), str(row.get("provider"))
    return provider if provider.startswith(runtime) else f"{runtime} {provider}"


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, a quarter from its start and the rest from its end
    ("fp32.onnx" / "int8_qdq.onnx" endings are what tell two exports of one model apart)."""
    if len(text) <= width:
        return text
    head = max(1, (width - 3) // 4)
    return text[:head] + "..." + text[len(text) - (width - 3 - head):]


def format_compact(rows: Sequence[dict[str, Any]], *, width: int = TABLE_WIDTH) -> str:
    """The default terminal table, at most ``width`` characters a line where names allow: when
    too wide, "onnxruntime" becomes "ort", then model names are shortened until it fits."""
    cells = [{**row, "engine": engine_name(row)} for row in rows]
    columns = [(k, h) for k, h in COMPACT_COLUMNS if any(r.get(k) is not None for r in cells)]

    def render() -> tuple[str, int]:
        text = format_table(cells, columns, formatters=FORMATTERS)
        return text, max(len(line) for line in text.splitlines()) - width

    table, excess = render()
    if excess > 0:
        cells = [{**r, "engine": r["engine"].replace("onnxruntime", "ort")} for r in cells]
        table, excess = render()
    longest = max((len(str(r.get("model", ""))) for r in cells), default=0)
    if excess > 0 and longest > 12:
        keep = max(12, longest - excess)
        cells = [{**r, "model": shorten(str(r.get("model", "")), keep)} for r in cells]
        table, _ = render()
    return table


def wrap_lines(lines: Sequence[str], *, width: int = TABLE_WIDTH) -> list[str]:
    """Prose lines (header, notices, comparisons) wrapped at ``width``, continuation indented."""
    out: list[str] = []
    for line in lines:
        out.extend(textwrap.wrap(line, width=width, subsequent_indent="    ", break_on_hyphens=False,
                                 break_long_words=False) or [""])
    return out


def to_json(rows: Sequence[dict[str, Any]], env: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``--json`` document: a list of results, each carrying the environment it came from."""
    return [{**row, "environment": env} for row in rows]


def write_json(target: str, rows: Sequence[dict[str, Any]], env: dict[str, Any]) -> str | None:
    """Write to a file atomically, or return the text when ``target`` is ``-`` (stdout)."""
    doc = to_json(rows, env)
    if target == "-":
        return json.dumps(doc, indent=2, default=str)
    write_json_atomic(target, doc)
    return None


def write_csv(path: str | os.PathLike[str], rows: Sequence[dict[str, Any]]) -> None:
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys and k != "samples_ms")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (";".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
                         for k, v in row.items() if k in keys})
    write_text_atomic(path, buf.getvalue())


def write_markdown(path: str | os.PathLike[str], rows: Sequence[dict[str, Any]], header: Sequence[str],
                   *, title: str = "edgecv profile", sections: Sequence[tuple[str, str]] = ()) -> None:
    parts = [f"# {title}", "", *[f"- {line}" for line in header], "", markdown_table(rows, _columns(rows), formatters=FORMATTERS)]
    comps = comparison_lines(rows)
    if comps:
        parts += ["", *[f"- {c}" for c in comps]]
    for name, body in sections:
        parts += ["", f"## {name}", "", body]
    write_text_atomic(path, "\n".join(parts) + "\n")


def plot_latency(path: str | os.PathLike[str], rows: Sequence[dict[str, Any]]) -> list[str]:
    """Box plot of per-run latency, one box per configuration (needs matplotlib); returns the tick
    labels, which say in words what each box is ("batch 8, 2 threads", not "b8 t2")."""
    from edgecv.errors import InputError, require

    require("matplotlib", "plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in rows if r.get("samples_ms")]
    if not measured:
        raise InputError(f"{path}: no latency samples to plot")
    data = [r["samples_ms"] for r in measured]
    labels = latency_labels(measured)
    tilt = len(labels) > 6  # side by side they would overlap
    fig, ax = plt.subplots(figsize=(max(6.0, (1.3 if tilt else 1.9) * len(data) + 1.5), 5.0))
    ax.boxplot(data, showfliers=True, whis=(1, 99), widths=0.4)
    ax.set_xticks(range(1, len(labels) + 1), labels, rotation=30 if tilt else 0,
                  ha="right" if tilt else "center", rotation_mode="anchor" if tilt else "default", fontsize=8)
    for i, row in enumerate(measured, start=1):
        if row.get("p50_ms") is not None:  # the number the table compares, beside its box
            ax.text(i + 0.23, row["p50_ms"], f"p50 {_fmt_ms(row['p50_ms'])} ms", va="center", fontsize=7,
                    color="dimgray")
    lo, hi = min(min(d) for d in data), max(max(d) for d in data)
    if lo > 0 and hi / lo > 20:  # fp32 vs int8 vs torch can differ by orders of magnitude
        ax.set_yscale("log")
    ax.set_ylabel("latency per run (ms)")
    ax.set_title("latency distribution per configuration (box: p25-p75, line: median, whiskers: p1-p99)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    from edgecv.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return labels


RUNTIME_WORDS = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO", "opencv": "OpenCV dnn", "torch": "PyTorch"}
PROVIDER_WORDS = {"cpu": "CPU", "cuda": "CUDA", "tensorrt": "TensorRT", "dml": "DirectML", "coreml": "CoreML"}


def latency_labels(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One tick label per row in words: model, engine (and precision when the rows hold several),
    then "batch N, T threads" (and "seq S")."""
    precisions = {r.get("precision") for r in rows} - {None}
    labels = []
    for row in rows:
        runtime, provider = str(row.get("runtime")), str(row.get("provider"))
        kind, _, device = provider.partition(":")  # "openvino:GPU.0", "cpu"
        words = [RUNTIME_WORDS.get(runtime, runtime)]
        if kind != runtime:  # ONNX Runtime's OpenVINO provider, CUDA, ...
            words.append(PROVIDER_WORDS.get(kind, RUNTIME_WORDS.get(kind, kind)))
        engine = " ".join(words + ([device] if device else []))
        if len(precisions) > 1 and row.get("precision"):
            engine += f", {row['precision']}"
        threads = row.get("threads")
        where = f"batch {row.get('batch')}, {threads} thread{'' if threads == 1 else 's'}"
        if row.get("seq_len"):
            where += f", seq {row['seq_len']}"
        labels.append(f"{os.path.splitext(str(row['model']))[0]}\n{engine}\n{where}")
    return labels
