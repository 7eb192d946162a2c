"""Roofline context: achieved GFLOP/s beside this machine's own measured matmul ceiling.

The ceiling is measured, not looked up: a float32 MatMul graph run by ONNX Runtime with the same
intra-op thread count as the configuration being judged (the most honest "same threads" peak,
since it uses the same MLAS kernels and thread pool as the model). ``method="numpy"`` measures a
numpy/BLAS matmul instead, in a subprocess whose OMP/OPENBLAS/MKL thread variables are pinned
(they are only read when BLAS loads, so the current process cannot change them).

FLOPs = 2 x MACs, with MACs from :mod:`edgecv.graph.stats` (the one MAC counter).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.errors import EdgecvError, InputError, short_message

_PEAK_CACHE: dict[tuple[str, int | None, int], float] = {}


def _matmul_model(n: int) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32), "w")
    node = helper.make_node("MatMul", ["a", "w"], ["y"])
    graph = helper.make_graph([node], "peak", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def ort_matmul_gflops(*, threads: int | None, n: int = 768, repeats: int = 40,
                      budget_s: float = 1.5) -> float:
    """Best-of-``repeats`` GFLOP/s of an (n x n) @ (n x n) float32 MatMul in ONNX Runtime.

    The best run, not the median: a ceiling is what the hardware can do, and on a shared machine
    other processes can only make a run slower. Stops early after ``budget_s`` seconds.
    """
    from edgecv.runtimes.engines.session import create_session

    with tempfile.TemporaryDirectory(prefix="edgecv-peak-") as tmp:
        path = Path(tmp) / "matmul.onnx"
        path.write_bytes(_matmul_model(n))
        sess = create_session(path, provider="cpu", threads=threads).session
    a = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    feeds = {"a": a}
    sess.run(None, feeds)  # warm-up: thread pool start, packing buffers
    best = float("inf")
    deadline = time.perf_counter_ns() + int(budget_s * 1e9)
    for i in range(repeats):
        t0 = time.perf_counter_ns()
        sess.run(None, feeds)
        t1 = time.perf_counter_ns()
        best = min(best, t1 - t0)
        if t1 > deadline and i >= 4:
            break
    return 2.0 * n**3 / best  # FLOP per ns == GFLOP/s


_NUMPY_SNIPPET = """
import json, sys, time
import numpy as np
n, repeats = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n)).astype(np.float32); b = rng.standard_normal((n, n)).astype(np.float32)
a @ b
best = float("inf")
for _ in range(repeats):
    t0 = time.perf_counter_ns(); a @ b; best = min(best, time.perf_counter_ns() - t0)
print(json.dumps({"gflops": 2.0 * n**3 / best}))
"""


def numpy_matmul_gflops(*, threads: int | None, n: int = 768, repeats: int = 40) -> float:
    """Best-of-``repeats`` numpy float32 matmul GFLOP/s with BLAS pinned to ``threads``."""
    env = dict(os.environ)
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
            env[var] = str(threads)
    proc = subprocess.run([sys.executable, "-c", _NUMPY_SNIPPET, str(n), str(repeats)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise EdgecvError(f"--peak numpy: the numpy matmul measurement failed "
                          f"({short_message(proc.stderr.strip()[-200:])}); use --peak onnxruntime or --peak off")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["gflops"])


def matmul_peak_gflops(*, threads: int | None, method: str = "onnxruntime", n: int = 768) -> float:
    """The machine's measured float32 matmul ceiling for ``threads``, cached per process."""
    if method not in ("onnxruntime", "numpy"):
        raise InputError(f"peak method {method!r}: expected 'onnxruntime' or 'numpy'")
    key = (method, threads, n)
    if key not in _PEAK_CACHE:
        fn = ort_matmul_gflops if method == "onnxruntime" else numpy_matmul_gflops
        _PEAK_CACHE[key] = fn(threads=threads, n=n)
    return _PEAK_CACHE[key]


def model_macs(path: str | os.PathLike[str], *, batch: int = 1, seq_len: int | None = None,
               image_size: int | None = None) -> int | None:
    """Total MACs of one forward pass at ``batch`` (None when the counter cannot tell)."""
    from edgecv.graph.stats import graph_stats

    try:
        stats = graph_stats(str(path), batch=batch, seq_len=seq_len or 64, image_size=image_size or 224)
    except EdgecvError:
        return None
    return int(stats.total_macs) or None


def achieved(macs: int | None, latency_ms: float, peak_gflops: float | None) -> dict[str, Any]:
    """``{"macs", "gflop", "gflops", "peak_gflops", "pct_peak"}`` for one configuration."""
    if not macs or latency_ms <= 0:
        return {"macs": macs, "gflop": None, "gflops": None, "peak_gflops": peak_gflops, "pct_peak": None}
    gflop = 2.0 * macs / 1e9
    gflops = gflop / (latency_ms / 1e3)
    pct = 100.0 * gflops / peak_gflops if peak_gflops else None
    return {"macs": int(macs), "gflop": gflop, "gflops": gflops, "peak_gflops": peak_gflops, "pct_peak": pct}
