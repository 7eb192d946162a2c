"""Latency p50/p99 at batch 1, 8 and 32 on CPU, CUDA and TensorRT (fp32 and fp16), measured in one
run with ratios to CPU fp32 (ratios of medians, like ``edgecv profile``)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _gpu  # noqa: E402

pytestmark = pytest.mark.gpu

BATCHES = _gpu.PROFILE_BATCHES  # 1, 8, 32
# (label, provider, export, EngineOptions fields, warm-up runs, timed runs)
RUNS = [("CPU fp32", "cpu", "fp32", {}, 3, 20),
        ("CUDA fp32", "cuda", "fp32", {}, 20, 200),
        ("CUDA fp16", "cuda", "fp16", {}, 20, 200),
        ("TensorRT fp32", "tensorrt", "fp32", {}, 20, 200),
        ("TensorRT fp16", "tensorrt", "fp32", {"fp16": True}, 20, 200)]


@pytest.mark.parametrize("name", _gpu.ZOO)
def test_latency_cpu_cuda_tensorrt(zoo, tiny, name):
    from edgecv.runtimes.engines.base import EngineOptions
    from edgecv.runtimes.profiling import sweep

    trt_gap = _gpu.provider_gap(_gpu.TRT, str(tiny))
    rows, notes = [], []
    for label, provider, export, fields, warmup, runs in RUNS:
        if provider == "tensorrt" and trt_gap:
            notes.append(f"{label}: not measured ({trt_gap})")
            continue
        info = sweep.inspect_model(zoo[name][export])
        options = EngineOptions(batch_sizes=BATCHES, spinning=True, **fields)
        for batch in BATCHES:
            res = sweep.profile_config(sweep.Config(info, provider, batch, None), warmup=warmup, runs=runs,
                                       duration_s=None, engine_options=options)
            assert res.provider == provider, f"{label} ran on {res.providers}"
            rows.append({"run": label, "batch": batch, "p50": res.stats.p50_ms, "p99": res.stats.p99_ms,
                         "h2d": res.extra.get("h2d_ms"), "items": res.stats.throughput,
                         "precision": res.extra.get("precision"), "cold": res.cold.create_ms if res.cold else None})
    cpu = {r["batch"]: r["p50"] for r in rows if r["run"] == "CPU fp32"}
    for row in rows:
        row["ratio"] = f"{cpu[row['batch']] / row['p50']:.1f}x"
    rows.sort(key=lambda r: (r["batch"], [x[0] for x in RUNS].index(r["run"])))
    _gpu.write_section(f"40-latency-{name}", f"Latency: {name}", "\n".join([
        "p50 / p99 of the whole call (copy in, compute, copy out) in ms; h2d = host-to-device copy p50 "
        "(I/O binding); 'vs CPU' = CPU fp32 p50 / this p50 at the same batch.", "",
        _gpu.table(rows, [("batch", "batch"), ("run", "run"), ("precision", "precision"), ("p50", "p50 ms"),
                          ("p99", "p99 ms"), ("h2d", "h2d ms"), ("items", "items/s"), ("ratio", "vs CPU"),
                          ("cold", "create ms")]),
        *([""] + [f"- {n}" for n in notes] if notes else [])]))
    assert all(r["p50"] > 0 for r in rows)
