"""Pieces shared by the one-source loop (``stream.py``) and the multi-stream loop
(``multistream.py``): bounded statistics, the per-frame result, probability smoothing, signal
handling and closing every output.

Nothing here imports the classifier, so ``Classifier.stream`` can reach the multi-stream loop
without an import cycle.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

STAGES = ("capture", "preprocess", "inference", "postprocess")


class RingStats:
    """The last ``capacity`` samples (ms) plus exact running count/mean; percentiles over the ring.
    Locked: if the preprocessing worker's join times out, the report is read while it may still add."""

    def __init__(self, capacity: int = 8192) -> None:
        self._buf = np.zeros(capacity, np.float64)
        self.n = 0
        self._sum = 0.0
        self.max = 0.0
        self._lock = threading.Lock()

    def add(self, value_ms: float) -> None:
        with self._lock:
            self._buf[self.n % len(self._buf)] = value_ms
            self.n += 1
            self._sum += value_ms
            self.max = max(self.max, value_ms)

    def summary(self) -> dict[str, float]:
        with self._lock:
            n, total, peak = self.n, self._sum, self.max
            data = self._buf[: min(n, len(self._buf))].copy()
        if not len(data):
            return {"n": 0, "p50_ms": 0.0, "p95_ms": 0.0, "mean_ms": 0.0, "max_ms": 0.0}
        p50, p95 = np.percentile(data, [50, 95])
        return {"n": n, "p50_ms": float(p50), "p95_ms": float(p95), "mean_ms": total / n, "max_ms": float(peak)}


@dataclass
class FrameResult:
    """What sinks receive for each image/frame. ``stream`` is the stream id in a multi-stream run
    (None for one source, whose JSON lines stay as they were)."""

    source: str
    frame: int
    top_k: list[Any]  # [TopK], best first
    probs: np.ndarray
    latency_ms: float  # preprocess + inference + postprocess of the batch that held this frame
    age_ms: float  # captured -> result ready
    fps: float  # running throughput so far (of this stream, in a multi-stream run)
    frame_image: np.ndarray
    stream: str | None = None

    def to_dict(self) -> dict[str, Any]:
        record = {"source": self.source, "frame": self.frame, "top_k": [t.to_dict() for t in self.top_k],
                  "latency_ms": round(self.latency_ms, 3)}
        if self.stream is None:
            return record
        return {"stream": self.stream, **record, "age_ms": round(self.age_ms, 3)}


class Ema:
    """Exponential moving average of probabilities across frames: ema = alpha * p + (1 - alpha)
    * ema, row by row in frame order (one instance per stream, never across unrelated images)."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self._ema: np.ndarray | None = None

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        out = np.empty_like(probs)
        ema, alpha = self._ema, self.alpha
        for i, p in enumerate(probs):
            ema = p.copy() if ema is None or ema.shape != p.shape else alpha * p + (1.0 - alpha) * ema
            out[i] = ema
        self._ema = ema
        return out


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM -> ``stop.set()`` (a second SIGINT raises KeyboardInterrupt). Only the main
    thread may install handlers; elsewhere this is a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def spare_cores(classifier: Any) -> int:
    """Usable cores that inference leaves to decoding and preprocessing (0 when its threads
    take them all)."""
    from edgecv.hardware import usable_cores

    engine = getattr(classifier, "engine", None)
    busy = engine.host_cores if engine is not None else (getattr(classifier, "threads", None) or usable_cores())
    return max(0, usable_cores() - busy)


def close_all(sources: Sequence[Any], sinks: Sequence[Any]) -> list[Exception]:
    """Stop every source (all asked first, then each joined: their close timeouts do not add up),
    then close every sink (each flushes/finalises its file); failures are collected so one broken
    sink never leaves another unflushed."""
    for source in sources:
        stop = getattr(source, "request_stop", None)
        if stop is not None:
            stop()
    failures: list[Exception] = []
    for item in [*sources, *sinks]:
        try:
            item.close()
        except Exception as exc:  # noqa: BLE001 - close everything, then report the first failure
            failures.append(exc)
    return failures
