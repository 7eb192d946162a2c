"""``edgecv profile``'s human output: the compact table that fits 120 columns, and the latency
plot's labels in words (JSON/CSV/Markdown keeping every field is tested in test_profiler_sweep)."""
from __future__ import annotations

import cv2
import pytest

from edgecv.runtimes.profiling import report


def _row(model, *, runtime="onnxruntime", provider="cpu", precision="fp32", batch=1, threads=2, p50=2.0,
         seq_len=None, parity=False):
    row = {"model": model, "runtime": runtime, "provider": provider, "precision": precision, "batch": batch,
           "threads": threads, "seq_len": seq_len, "create_ms": 12.5, "first_run_ms": 3.0, "p50_ms": p50,
           "p90_ms": p50 * 1.1, "p99_ms": p50 * 1.5, "mean_ms": p50, "std_ms": 0.1, "min_ms": p50 * 0.9,
           "max_ms": p50 * 2, "runs": 100, "throughput": 1000 * batch / p50, "gflops": 123.4, "pct_peak": 45.6,
           "samples_ms": [p50 * 0.9, p50, p50 * 1.2, p50 * 1.5]}
    if parity:
        row.update(parity_max_abs=1.234e-3, parity_top1=0.987, parity_ref="fp32", parity_inputs="64 images")
    return row


def _sweep(a: str, b: str) -> list[dict]:
    rows = []
    for batch in (1, 8):
        for model, engine in ((a, ("onnxruntime", "cpu")), (b, ("onnxruntime", "cpu")),
                              (b, ("openvino", "openvino:CPU"))):
            rows.append(_row(model, runtime=engine[0], provider=engine[1], batch=batch, seq_len=128,
                             precision="int8" if model == b else "fp32", parity=model == b, p50=1.5 * batch))
    return report.add_ratios(rows)


def test_compact_table_fits_120_columns_with_every_first_need() -> None:
    rows = _sweep("mobilenet_v3_large_imagenet_fp32.onnx", "mobilenet_v3_large_imagenet_int8_qdq_static.onnx")
    table = report.format_compact(rows)
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 120, table
    for header in ("model", "engine", "prec", "batch", "thr", "seq", "p50 ms", "p99 ms", "items/s", "vs first",
                   "max|diff|", "top-1"):
        assert header in lines[0], header
    for extra in ("create ms", "p90 ms", "std ms", "GFLOP/s", "% peak"):
        assert extra not in lines[0], extra  # under --wide (and in every file)
    assert "openvino:CPU" in table and "ort cpu" in table and "98.7%" in table  # abbreviated to fit
    assert "..._int8_qdq_static.onnx" in table and "...ge_imagenet_fp32.onnx" in table  # the ends tell them apart
    assert len(lines) == 2 + len(rows)
    assert max(len(line) for line in report.format_results(rows).splitlines()) > 120  # --wide: all of it


def test_short_names_are_left_alone_and_empty_columns_dropped() -> None:
    table = report.format_compact(report.add_ratios([_row("a.onnx"), _row("b.onnx", p50=1.0)]))
    assert "a.onnx " in table and "onnxruntime cpu" in table and "2.00x" in table
    assert "seq" not in table and "max|diff|" not in table
    assert report.shorten("abcdefghijklmnop.onnx", 12) == "ab...op.onnx" and len(report.shorten("x" * 50, 12)) == 12


def test_prose_is_wrapped_with_an_indent() -> None:
    lines = report.wrap_lines(["word " * 40, "short"], width=60)
    assert all(len(line) <= 60 for line in lines) and lines[1].startswith("    ") and lines[-1] == "short"


def test_latency_labels_are_words() -> None:
    rows = [_row("fp32.onnx", threads=1), _row("int8.onnx", precision="int8", batch=8, threads=4),
            _row("fp32.onnx", runtime="openvino", provider="openvino:GPU.0", seq_len=64),
            _row("best.pt", runtime="torch", precision=None), _row("fp32.onnx", provider="cuda")]
    labels = report.latency_labels(rows)
    assert labels[0] == "fp32\nONNX Runtime CPU, fp32\nbatch 1, 1 thread"
    assert labels[1] == "int8\nONNX Runtime CPU, int8\nbatch 8, 4 threads"
    assert labels[2] == "fp32\nOpenVINO GPU.0, fp32\nbatch 1, 2 threads, seq 64"
    assert labels[3] == "best\nPyTorch CPU\nbatch 1, 2 threads" and "ONNX Runtime CUDA" in labels[4]
    assert not any(" b1 " in label or " t1" in label for label in labels)


def test_latency_plot_is_written_with_its_labels(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    rows = [_row("fp32.onnx"), _row("int8.onnx", p50=1.0), _row("fp32.onnx", runtime="opencv", precision=None)]
    labels = report.plot_latency(tmp_path / "lat.png", rows)
    assert labels == report.latency_labels(rows) and "batch 1, 2 threads" in labels[0]
    picture = cv2.imread(str(tmp_path / "lat.png"))
    assert picture is not None and 400 <= picture.shape[0] <= 1200 and 600 <= picture.shape[1] <= 4000
