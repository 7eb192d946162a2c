"""A TensorRT engine built by one process is reused by the next: no rebuild, and a cold start at
least 5x faster (the point of the engine cache)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _gpu  # noqa: E402

pytestmark = pytest.mark.gpu

# One cold start in a fresh process: open the engine, run once, say what the cache did.
COLD_START = """
import json, sys, time
import numpy as np
from edgecv.runtimes.engines.base import EngineOptions, open_engine
engine = open_engine(sys.argv[1], EngineOptions(provider="tensorrt", batch_sizes=(1, 8)))
x = np.zeros((1, 3, 224, 224), np.float32)
t0 = time.perf_counter_ns()
engine.run(None, {engine.inputs[0].name: x})
first_ms = (time.perf_counter_ns() - t0) / 1e6
print(json.dumps({"device": engine.device, "create_ms": engine.create_ms, "first_run_ms": first_ms,
                  "cache": engine.report().get("tensorrt_cache"), "notices": engine.notices}))
"""


def _cold_start(model: Path) -> dict:
    out = _gpu.run([sys.executable, "-c", COLD_START, str(model)], timeout=1800)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_engine_built_by_one_process_is_reused_by_the_next(zoo, tiny):
    from edgecv.runtimes.engines.tensorrt import engine_files

    _gpu.require(_gpu.TRT, tiny)
    model = zoo["mobilenet_v2"]["fp32"]
    first = _cold_start(model)
    assert first["device"] == "tensorrt" and first["cache"]["state"] == "built", first
    folder = Path(first["cache"]["dir"])
    engines = engine_files(folder)
    second = _cold_start(model)
    assert second["cache"] == {"dir": str(folder), "cached_before": True, "state": "hit"}, second
    assert engine_files(folder) == engines  # same files, same mtimes: nothing was rebuilt
    cold = [r["create_ms"] + r["first_run_ms"] for r in (first, second)]
    rows = [{"process": i + 1, "state": r["cache"]["state"], "create": r["create_ms"], "first": r["first_run_ms"],
             "cold": c} for i, (r, c) in enumerate(zip((first, second), cold))]
    _gpu.write_section("20-trt-cache", "TensorRT engine cache across processes", "\n".join([
        f"mobilenet_v2 fp32, profile batch 1-8; cache folder `{folder}`", "",
        _gpu.table(rows, [("process", "process"), ("state", "engine"), ("create", "create ms"),
                          ("first", "1st run ms"), ("cold", "cold start ms")]), "",
        f"Second cold start is {cold[0] / cold[1]:.1f}x faster (required: at least 5x)."]))
    assert cold[0] >= 5 * cold[1], f"cold starts {cold[0]:.0f} ms then {cold[1]:.0f} ms: less than 5x faster"
