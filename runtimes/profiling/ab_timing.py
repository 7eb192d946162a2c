"""A vs B latency in one process: interleaved blocks, pooled samples, ratio of medians.

Deciding whether an int8 file earns its place means comparing two models on a machine that
other work shares. Timing A for a while and then B lets a burst of load land on one of them
only; here both engines are opened with the same settings (provider, threads), warmed up, and
then timed in alternating short blocks (A, B, A, B, ...) after a short pause that lets the other
engine's threads go idle. Each model's samples from every block are pooled and compared by their
medians. The harness is the profiler's (:func:`~edgecv.runtimes.profiling.timing.time_runs`).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from edgecv.runtimes.engines.base import EngineOptions, open_engine
from edgecv.runtimes.profiling.timing import time_runs

PAUSE_S = 0.01  # between blocks: the previous engine's pool stops spinning


@dataclass
class PairTiming:
    """Medians of A and B at one batch size; ``speedup`` = A p50 / B p50 (> 1: B is faster)."""

    batch: int
    a_p50_ms: float
    b_p50_ms: float
    a_runs: int
    b_runs: int

    @property
    def speedup(self) -> float:
        return self.a_p50_ms / self.b_p50_ms if self.b_p50_ms > 0 else float("inf")

    def to_dict(self, a: str = "a", b: str = "b") -> dict[str, Any]:
        return {"batch": self.batch, f"{a}_p50_ms": round(self.a_p50_ms, 4), f"{b}_p50_ms": round(self.b_p50_ms, 4),
                "speedup": round(self.speedup, 4), "runs": [self.a_runs, self.b_runs]}


def _block_runs(fn: Callable[[], Any], block_s: float, warmup: int) -> int:
    """Warm ``fn`` up; runs per block so that a block lasts about ``block_s``."""
    for _ in range(max(1, warmup)):
        fn()
    once_s = max(float(np.min(time_runs(fn, runs=3))) / 1e9, 1e-6)
    return int(min(1000, max(3, block_s / once_s)))


def interleaved(fns: Sequence[Callable[[], Any]], *, rounds: int = 5, block_s: float = 0.05,
                warmup: int = 3) -> list[np.ndarray]:
    """Nanosecond samples per callable, timed in ``rounds`` alternating blocks."""
    counts = [_block_runs(fn, block_s, warmup) for fn in fns]
    pooled: list[list[np.ndarray]] = [[] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            time.sleep(PAUSE_S)
            fn()  # one untimed call: caches and the thread pool are this model's again
            pooled[i].append(time_runs(fn, runs=counts[i]))
    return [np.concatenate(p) for p in pooled]


def compare_latency(a: str | os.PathLike[str], b: str | os.PathLike[str],
                    feeds_for: Callable[[int], dict[str, np.ndarray]], *, batches: Sequence[int] = (1,),
                    threads: int | None = None, provider: str = "cpu", rounds: int = 5,
                    block_s: float = 0.05) -> list[PairTiming]:
    """p50 of ``a`` and ``b`` per batch size, interleaved; ``feeds_for(batch)`` gives the inputs
    (the same arrays for both models)."""
    options = EngineOptions(provider=provider, threads=threads, batch_sizes=tuple(batches))
    engine_a, engine_b = open_engine(a, options), open_engine(b, options)
    out = []
    for batch in batches:
        feeds = feeds_for(batch)
        samples = interleaved([engine_a.runner(feeds), engine_b.runner(feeds)], rounds=rounds, block_s=block_s)
        out.append(PairTiming(batch=batch, a_p50_ms=float(np.median(samples[0])) / 1e6,
                              b_p50_ms=float(np.median(samples[1])) / 1e6, a_runs=len(samples[0]),
                              b_runs=len(samples[1])))
    return out
