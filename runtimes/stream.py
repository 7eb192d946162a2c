"""The stream loop: source -> preprocess -> inference -> postprocess -> sinks, timed per stage.

Ordered sources (images, video files) run as a pipeline: the source's reader thread decodes,
a preprocessing thread builds input batches, and the calling thread only runs inference,
postprocessing and the sinks, so decode and preprocess overlap with inference (ORT, OpenCV and
numpy release the GIL). Live sources are processed synchronously on the newest frame: a
prefetched frame would only be older by the time inference reached it.

Stages: capture (decode time for files; time spent waiting for a frame for live sources),
preprocess, inference, postprocess (probabilities, smoothing, top-k). Frame age = time from a
frame's capture to its result. Timing uses ``time.perf_counter_ns``; statistics live in fixed-size ring buffers so hours of
video do not grow memory. SIGINT/SIGTERM set a stop flag (second Ctrl-C interrupts hard); the
loop then finishes the current frame, closes the source and flushes every sink.
:func:`run_stream` is the library entry point (``edgecv profile --pipeline`` reuses it).
"""
from __future__ import annotations

import contextlib
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from edgecv.runtimes.classifier import Classifier, TopK
from edgecv.runtimes.sources import Frame, LiveSource, Source

STAGES = ("capture", "preprocess", "inference", "postprocess")


class RingStats:
    """The last ``capacity`` samples (ms) plus exact running count/mean; percentiles over the ring."""

    def __init__(self, capacity: int = 8192) -> None:
        self._buf = np.zeros(capacity, np.float64)
        self.n = 0
        self._sum = 0.0
        self.max = 0.0

    def add(self, value_ms: float) -> None:
        self._buf[self.n % len(self._buf)] = value_ms
        self.n += 1
        self._sum += value_ms
        self.max = max(self.max, value_ms)

    def summary(self) -> dict[str, float]:
        data = self._buf[: min(self.n, len(self._buf))]
        if not len(data):
            return {"n": 0, "p50_ms": 0.0, "p95_ms": 0.0, "mean_ms": 0.0, "max_ms": 0.0}
        p50, p95 = np.percentile(data, [50, 95])
        return {"n": self.n, "p50_ms": float(p50), "p95_ms": float(p95), "mean_ms": self._sum / self.n,
                "max_ms": float(self.max)}


@dataclass
class FrameResult:
    """What sinks receive for each image/frame."""

    source: str
    frame: int
    top_k: list[TopK]
    probs: np.ndarray
    latency_ms: float  # preprocess + inference + postprocess of the batch that held this frame
    age_ms: float  # captured -> result ready
    fps: float  # running throughput so far
    frame_image: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "frame": self.frame, "top_k": [t.to_dict() for t in self.top_k],
                "latency_ms": round(self.latency_ms, 3)}


@dataclass
class StreamReport:
    """End-of-run summary (also the ``--json`` summary and ``profile --pipeline``'s data)."""

    source: str
    live: bool
    frames: int = 0
    wall_s: float = 0.0
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    frame_age: dict[str, float] = field(default_factory=dict)
    input_wait: dict[str, float] = field(default_factory=dict)  # inference loop idle, waiting for input
    dropped: int = 0
    reconnects: int = 0
    unreadable: list[str] = field(default_factory=list)
    interrupted: bool = False
    providers: list[str] = field(default_factory=list)
    threads: int | None = None
    batch_size: int = 1

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "live": self.live, "frames": self.frames, "wall_s": round(self.wall_s, 4),
                "fps": round(self.fps, 3), "stages": self.stages, "frame_age": self.frame_age,
                "input_wait": self.input_wait,
                "dropped": self.dropped, "reconnects": self.reconnects, "unreadable": self.unreadable,
                "interrupted": self.interrupted, "providers": self.providers, "threads": self.threads,
                "batch_size": self.batch_size}


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


def run_stream(
    classifier: Classifier,
    source: Source,
    *,
    top_k: int = 5,
    smooth: float | None = None,
    sinks: Sequence[Any] = (),
    stop: threading.Event | None = None,
    max_frames: int | None = None,
    batch_size: int = 1,
    handle_signals: bool = True,
    on_result: Callable[[FrameResult], None] | None = None,
    warmup: bool = True,
) -> StreamReport:
    """Classify every frame of ``source`` and feed ``sinks``; returns the timing report.

    ``smooth`` = ALPHA in (0, 1]: probabilities become ``ALPHA * p + (1 - ALPHA) * previous``
    (exponential moving average over frames). ``batch_size`` > 1 batches ordered sources (image
    folders) for throughput; live sources always run one newest frame at a time. The source and
    sinks are closed on return, also on errors and signals.
    """
    if smooth is not None and not 0 < smooth <= 1:
        from edgecv.errors import InputError
        source.close()  # stop a live capture thread before failing
        raise InputError(f"smooth {smooth}: expected ALPHA in (0, 1] (weight of the newest frame)")
    stop = stop or threading.Event()
    report = StreamReport(source=source.name, live=source.live, providers=classifier.providers,
                          threads=classifier.threads, batch_size=1 if source.live else batch_size)
    stats = {name: RingStats() for name in STAGES}
    age = RingStats()
    wait = RingStats()  # ~0 for files means decode + preprocess keep up with inference
    state = {"ema": None, "frames": 0}
    batches: Any = None
    guard = stop_on_signals(stop) if handle_signals else contextlib.nullcontext()
    try:
        with guard:
            if warmup and classifier.spec is not None:  # cold start is not a stream frame
                classifier.run(classifier.preprocess([np.zeros((*classifier.spec.size, 3), np.uint8)]))
            t_start = time.perf_counter_ns()
            batches = (_live_batches(classifier, source, stop, stats) if source.live
                       else _ordered_batches(classifier, source, stop, stats, max(1, batch_size)))
            try:
                t_ready = time.perf_counter_ns()
                for frames, x, pre_ms in batches:
                    t1 = time.perf_counter_ns()
                    wait.add((t1 - t_ready) / 1e6)
                    raw, _ = classifier.run(x)
                    t2 = time.perf_counter_ns()
                    probs = classifier.postprocess(raw)
                    if smooth is not None:
                        probs = _ema(state, probs, smooth)
                    ranked = classifier.top_k(probs, top_k)
                    t3 = time.perf_counter_ns()
                    stats["inference"].add((t2 - t1) / 1e6)
                    stats["postprocess"].add((t3 - t2) / 1e6)
                    latency = pre_ms + (t3 - t1) / 1e6
                    for i, frame in enumerate(frames):
                        state["frames"] += 1
                        frame_age = (t3 - frame.captured_ns) / 1e6
                        age.add(frame_age)
                        fps = state["frames"] / max(1e-9, (t3 - t_start) / 1e9)
                        result = FrameResult(frame.source, frame.index, ranked[i], probs[i], latency,
                                             frame_age, fps, frame.image)
                        for sink in sinks:
                            sink.write(result)
                        if on_result is not None:
                            on_result(result)
                    t_ready = time.perf_counter_ns()
                    if max_frames is not None and state["frames"] >= max_frames:
                        break
                    if stop.is_set():
                        break
            except KeyboardInterrupt:
                stop.set()
            report.wall_s = (time.perf_counter_ns() - t_start) / 1e9
            report.interrupted = stop.is_set()
    finally:
        stop.set()
        if batches is not None:
            batches.close()  # joins the preprocessing worker
        source.close()
        errors = []
        for sink in sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - close every sink, then report the first failure
                errors.append(exc)
        report.frames = state["frames"]
        report.stages = {name: s.summary() for name, s in stats.items()}
        report.frame_age = age.summary()
        report.input_wait = wait.summary()
        report.dropped = source.dropped
        report.reconnects = getattr(source, "reconnects", 0)
        report.unreadable = list(source.unreadable)
        if errors:
            raise errors[0]
    return report


def _ema(state: dict[str, Any], probs: np.ndarray, alpha: float) -> np.ndarray:
    """Row by row, in frame order: ema = alpha * p + (1 - alpha) * ema."""
    out = np.empty_like(probs)
    ema = state["ema"]
    for i, p in enumerate(probs):
        ema = p.copy() if ema is None or ema.shape != p.shape else alpha * p + (1.0 - alpha) * ema
        out[i] = ema
    state["ema"] = ema
    return out


def _live_batches(classifier: Classifier, source: LiveSource, stop: threading.Event,
                  stats: dict[str, RingStats]) -> Iterator[tuple[list[Frame], np.ndarray, float]]:
    """Newest frame, preprocessed on the calling thread (no prefetch: it would only age)."""
    while not stop.is_set():
        t0 = time.perf_counter_ns()
        frame = source.read(timeout=0.25)
        if frame is None:
            if stop.is_set():
                return
            continue
        t1 = time.perf_counter_ns()
        x = classifier.preprocess([frame.image])
        t2 = time.perf_counter_ns()
        stats["capture"].add((t1 - t0) / 1e6)  # time the loop waited for a frame
        stats["preprocess"].add((t2 - t1) / 1e6)
        yield [frame], x, (t2 - t1) / 1e6


_DONE = object()


def _ordered_batches(classifier: Classifier, source: Source, stop: threading.Event,
                     stats: dict[str, RingStats], batch_size: int,
                     ) -> Iterator[tuple[list[Frame], np.ndarray, float]]:
    """Every frame in order; a worker thread preprocesses batches ahead of inference."""
    out: queue.Queue[Any] = queue.Queue(maxsize=2)

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def worker() -> None:
        try:
            batch: list[Frame] = []
            for frame in source:
                stats["capture"].add(frame.decode_ms)
                batch.append(frame)
                if len(batch) == batch_size:
                    if not _emit(batch):
                        return
                    batch = []
                if stop.is_set():
                    return
            if batch:
                _emit(batch)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the calling thread
            put(exc)
        finally:
            put(_DONE)

    def _emit(batch: list[Frame]) -> bool:
        t0 = time.perf_counter_ns()
        x = classifier.preprocess([f.image for f in batch])
        pre_ms = (time.perf_counter_ns() - t0) / 1e6
        stats["preprocess"].add(pre_ms)
        return put((batch, x, pre_ms))

    thread = threading.Thread(target=worker, name="edgecv-preprocess", daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = out.get(timeout=0.1)
            except queue.Empty:
                if stop.is_set():
                    return
                continue
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        if thread.is_alive():  # closed early: run_stream has set ``stop``; let the worker see it
            thread.join(timeout=2.0)


def run_pipeline(model: str | Classifier, source: str | Source, *, provider: str = "cpu",
                 threads: int | None = None, stride: int = 1, max_frames: int | None = None,
                 batch_size: int = 1, top_k: int = 5) -> StreamReport:
    """Run the stream loop over a video/folder/URL without the CLI; returns per-stage timing.

    Used by ``edgecv profile --pipeline VIDEO``. No sinks, no signal handlers.
    """
    from edgecv.runtimes.classifier import load
    from edgecv.runtimes.sources import open_source

    clf = load(model, provider=provider, threads=threads) if not isinstance(model, Classifier) else model
    src = open_source([source], stride=stride) if not isinstance(source, Source) else source
    return run_stream(clf, src, top_k=top_k, max_frames=max_frames, batch_size=batch_size, handle_signals=False)
