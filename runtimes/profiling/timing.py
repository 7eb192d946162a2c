"""The latency timing harness (numpy + onnxruntime only, never torch).

Numbers people ship on must not be coloured by the harness, so the timed region is as bare as a
hand-written loop: the callable and the clock are bound to locals, inputs are allocated once
before timing, and each sample is one ``perf_counter_ns`` pair written into a pre-allocated
list slot. Statistics are computed only after the loop. ``tests/runtimes`` proves the
overhead stays within 2% of a bare ``session.run`` loop.

Cold start (session creation and the first run, which pays for memory-arena growth, kernel
selection and cuDNN's algorithm search) is measured separately and never mixed into steady-state
samples.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from edgecv.errors import InputError

DEFAULT_WARMUP = 10
DEFAULT_RUNS = 100
_MAX_SAMPLES = 10_000_000  # a --duration run cannot allocate without bound


@dataclass
class LatencyStats:
    """Steady-state latency summary of one configuration (milliseconds)."""

    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    throughput: float  # items per second = batch / mean latency
    samples_ms: list[float] = field(default_factory=list, repr=False)

    def to_dict(self, *, samples: bool = False) -> dict[str, Any]:
        out = asdict(self)
        if not samples:
            out.pop("samples_ms")
        return out


def summarize(samples_ns: np.ndarray, *, items_per_run: int = 1) -> LatencyStats:
    """Percentiles, mean, std, min, max (ms) and throughput from per-run nanosecond samples.

    Runs after the timed loop, so its cost never colours a sample; percentiles are
    ``numpy.percentile``'s default linear interpolation, taken in one call.
    """
    if len(samples_ns) == 0:
        raise InputError("no timing samples: expected at least one run")
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6  # run order, kept for plots
    n = int(ms.size)
    mean = float(ms.sum()) / n
    std = float(np.sqrt(np.dot(ms - mean, ms - mean) / (n - 1))) if n > 1 else 0.0
    p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
    return LatencyStats(
        runs=n, p50_ms=p50, p90_ms=p90, p99_ms=p99,
        mean_ms=mean, std_ms=std, min_ms=float(ms.min()), max_ms=float(ms.max()),
        throughput=(items_per_run * 1000.0 / mean) if mean > 0 else 0.0,
        samples_ms=ms.tolist(),
    )


def check_budget(*, runs: int | None, duration_s: float | None, warmup: int) -> None:
    """Reject impossible run budgets with one-line errors before anything is timed."""
    if warmup < 0:
        raise InputError(f"--warmup {warmup}: expected 0 or more")
    if runs is not None and duration_s is not None:
        raise InputError("--runs and --duration: expected one of them, not both")
    if runs is not None and runs < 1:
        raise InputError(f"--runs {runs}: expected at least 1")
    if duration_s is not None and duration_s <= 0:
        raise InputError(f"--duration {duration_s}: expected a positive number of seconds")


def time_runs(fn: Callable[[], Any], *, runs: int) -> np.ndarray:
    """Time ``runs`` calls of ``fn``; one int64 nanosecond sample per call."""
    samples = [0] * runs  # a list slot store is ~10x cheaper than a numpy scalar store
    clock = time.perf_counter_ns
    for i in range(runs):
        t0 = clock()
        fn()
        samples[i] = clock() - t0
    return np.array(samples, dtype=np.int64)


def time_for(fn: Callable[[], Any], *, duration_s: float, estimate_ns: int) -> np.ndarray:
    """Call ``fn`` until ``duration_s`` of wall time has passed (at least once).

    The sample buffer is sized from the warm-up estimate so that the timed loop normally never
    reallocates; if the estimate was pessimistic the buffer doubles outside any sample.
    """
    budget = int(duration_s * 1e9)
    size = int(min(_MAX_SAMPLES, max(16, 2 * budget // max(estimate_ns, 1))))
    samples = [0] * size
    clock = time.perf_counter_ns
    start = clock()
    deadline = start + budget
    n = 0
    while True:
        t0 = clock()
        fn()
        t1 = clock()
        samples[n] = t1 - t0
        n += 1
        if t1 >= deadline or n >= _MAX_SAMPLES:
            break
        if n == size:
            samples.extend([0] * size)
            size *= 2
    return np.array(samples[:n], dtype=np.int64)


def measure(fn: Callable[[], Any], *, warmup: int = DEFAULT_WARMUP, runs: int | None = None,
            duration_s: float | None = None, items_per_run: int = 1) -> LatencyStats:
    """Warm up, then time ``fn`` for ``runs`` calls or ``duration_s`` seconds."""
    check_budget(runs=runs, duration_s=duration_s, warmup=warmup)
    clock = time.perf_counter_ns
    t0 = clock()
    for _ in range(warmup):
        fn()
    warm_ns = (clock() - t0) // max(warmup, 1)
    if duration_s is not None:
        if warmup == 0:  # one untimed call to size the sample buffer
            t0 = clock()
            fn()
            warm_ns = clock() - t0
        samples = time_for(fn, duration_s=duration_s, estimate_ns=int(warm_ns))
    else:
        samples = time_runs(fn, runs=runs if runs is not None else DEFAULT_RUNS)
    return summarize(samples, items_per_run=items_per_run)


def session_runner(session: Any, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
    """A zero-argument callable running ``session`` on pre-allocated ``feeds``.

    ``functools.partial`` keeps the per-call cost to one C-level call into ``session.run``.
    """
    import functools

    return functools.partial(session.run, None, feeds)


@dataclass
class ColdStart:
    """Session creation and first run, reported apart from steady state."""

    create_ms: float
    first_run_ms: float


def first_run_ms(fn: Callable[[], Any]) -> float:
    """Time the very first call (memory arena growth, kernel selection, algorithm search)."""
    t0 = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - t0) / 1e6
