"""The timing harness: statistics, run budgets, and its own cost vs a bare ``session.run`` loop."""
from __future__ import annotations

import statistics
import time

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecv.errors import InputError
from edgecv.runtimes.engines.session import create_session
from edgecv.runtimes.profiling.timing import (
    check_budget,
    first_run_ms,
    measure,
    session_runner,
    summarize,
    time_for,
    time_runs,
)


def test_summarize_known_samples() -> None:
    samples = np.arange(1, 101, dtype=np.int64) * 1_000_000  # 1..100 ms
    stats = summarize(samples, items_per_run=4)
    assert stats.runs == 100
    assert stats.min_ms == 1.0 and stats.max_ms == 100.0
    assert stats.p50_ms == pytest.approx(50.5)
    assert stats.p90_ms == pytest.approx(90.1)
    assert stats.p99_ms == pytest.approx(99.01)
    assert stats.mean_ms == pytest.approx(50.5)
    assert stats.std_ms == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert stats.throughput == pytest.approx(4 * 1000 / 50.5)
    assert len(stats.samples_ms) == 100 and "samples_ms" not in stats.to_dict()


def test_summarize_single_sample_and_empty() -> None:
    assert summarize(np.array([2_000_000])).std_ms == 0.0
    with pytest.raises(InputError, match="no timing samples"):
        summarize(np.array([], dtype=np.int64))


@pytest.mark.parametrize("kwargs, match", [
    ({"runs": 0, "duration_s": None, "warmup": 1}, "--runs 0"),
    ({"runs": None, "duration_s": 0.0, "warmup": 1}, "--duration"),
    ({"runs": 5, "duration_s": 1.0, "warmup": 1}, "not both"),
    ({"runs": 5, "duration_s": None, "warmup": -1}, "--warmup"),
])
def test_check_budget_rejects(kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        check_budget(**kwargs)


def test_time_runs_counts_calls_and_measures_sleep() -> None:
    calls = []
    samples = time_runs(lambda: (calls.append(1), time.sleep(0.002)), runs=5)
    assert len(calls) == 5 and samples.dtype == np.int64 and samples.shape == (5,)
    assert samples.min() >= 2_000_000  # sleep(2 ms) never returns early


def test_time_for_respects_duration_and_grows_buffer() -> None:
    t0 = time.perf_counter()
    samples = time_for(lambda: None, duration_s=0.05, estimate_ns=10**9)  # estimate far too high
    elapsed = time.perf_counter() - t0
    assert len(samples) > 16  # outgrew the initial 16-slot buffer
    assert 0.05 <= elapsed < 1.0
    assert (samples >= 0).all()


def test_measure_warmup_is_not_timed() -> None:
    calls = []
    stats = measure(lambda: calls.append(1), warmup=7, runs=11)
    assert len(calls) == 18 and stats.runs == 11


def test_measure_duration_mode() -> None:
    stats = measure(lambda: time.sleep(0.001), warmup=0, duration_s=0.03, items_per_run=2)
    assert 5 <= stats.runs <= 31
    assert stats.min_ms >= 1.0
    assert stats.throughput == pytest.approx(2000 / stats.mean_ms)


def _matmul_model(tmp_path, n: int = 96) -> str:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])]
    graph = helper.make_graph(nodes, "mm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "mm.onnx"
    path.write_bytes(model.SerializeToString())
    return str(path)


def _bare_loop(sess, feeds, runs: int) -> tuple[float, float]:
    """The loop anyone would write by hand: median per-run ms and total wall ms."""
    out = []
    start = time.perf_counter_ns()
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        sess.run(None, feeds)
        out.append(time.perf_counter_ns() - t0)
    total = time.perf_counter_ns() - start
    return statistics.median(out) / 1e6, total / 1e6


def _harness(sess, feeds, runs: int) -> tuple[float, float]:
    start = time.perf_counter_ns()
    stats = measure(session_runner(sess, feeds), warmup=0, runs=runs)
    total = time.perf_counter_ns() - start
    return stats.p50_ms, total / 1e6


def test_harness_median_within_two_percent_of_bare_loop(tmp_path) -> None:
    """Interleaved rounds on one session and one input: the median per-run latency the harness
    reports is at most 2% above what a bare hand-written loop measures."""
    sess = create_session(_matmul_model(tmp_path, 128), provider="cpu", threads=1).session
    feeds = {"x": np.random.default_rng(1).standard_normal((128, 128)).astype(np.float32)}
    for _ in range(50):
        sess.run(None, feeds)
    best = float("inf")
    for _attempt in range(3):  # the machine is shared: retry a noisy attempt, keep the best
        bare, harness = [], []
        for _ in range(9):
            bare.append(_bare_loop(sess, feeds, 300)[0])
            harness.append(_harness(sess, feeds, 300)[0])
        best = min(best, statistics.median(harness) / statistics.median(bare))
        if best <= 1.02:
            break
    assert best <= 1.02, f"harness p50 is {100 * (best - 1):.1f}% above the bare loop"


def test_harness_whole_call_within_two_percent_of_bare_loop(tmp_path) -> None:
    """The whole harness (timed loop plus computing its statistics) costs at most 2% more wall
    time than a bare loop appending to a list. Each part is taken at its minimum over interleaved
    rounds: other processes on a shared CPU can only inflate a round, never deflate it. The
    statistics are one ``numpy.percentile`` call after the loop, a fixed ~40 us whatever the run
    count, so the loop is 400 runs (about 8 ms here): long enough that the bound is about the
    harness, not about numpy's call overhead against a 3 ms loop."""
    sess = create_session(_matmul_model(tmp_path, 128), provider="cpu", threads=1).session
    feeds = {"x": np.random.default_rng(1).standard_normal((128, 128)).astype(np.float32)}
    fn = session_runner(sess, feeds)
    RUNS = 400  # noqa: N806
    for _ in range(50):
        fn()

    def wall(call) -> tuple[int, object]:
        t0 = time.perf_counter_ns()
        out = call()
        return time.perf_counter_ns() - t0, out

    best = float("inf")
    for _attempt in range(3):  # the machine is shared: retry a noisy attempt, keep the best
        bare, loop, stats = [], [], []
        for i in range(15):
            if i % 2:  # alternate the order so neither side always runs second
                bare.append(wall(lambda: _bare_loop(sess, feeds, RUNS))[0])
            ns, samples = wall(lambda: time_runs(fn, runs=RUNS))
            loop.append(ns)
            stats.append(wall(lambda: summarize(samples))[0])
            if not i % 2:
                bare.append(wall(lambda: _bare_loop(sess, feeds, RUNS))[0])
        best = min(best, (min(loop) + min(stats)) / min(bare))
        if best <= 1.02:
            break
    assert best <= 1.02, f"harness costs {100 * (best - 1):.1f}% more than a bare loop"


def test_first_run_ms_times_one_call() -> None:
    assert first_run_ms(lambda: time.sleep(0.003)) >= 3.0
