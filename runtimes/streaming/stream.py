"""The stream loop: source -> preprocess -> inference -> postprocess -> sinks, timed per stage.

Ordered sources (images, video files) run as a pipeline: the source's reader thread decodes,
a preprocessing thread builds input batches, and the calling thread only runs inference,
postprocessing and the sinks, so decode and preprocess overlap with inference (ORT, OpenCV and
numpy release the GIL). Live sources are processed synchronously on the newest frame: a
prefetched frame would only be older by the time inference reached it.

Stages: capture (decode time for files; time spent waiting for a frame for live sources),
preprocess, inference, postprocess (probabilities, smoothing, top-k). Frame age = time from a
frame's capture to its result. Timing uses ``time.perf_counter_ns``; statistics live in
fixed-size ring buffers so hours of video do not grow memory. SIGINT/SIGTERM set a stop flag
(second Ctrl-C interrupts hard); the loop then finishes the current frame, closes the source
and flushes every sink, and only then is the report built.
:func:`run_stream` (settings in a :class:`StreamOptions`) is the library entry point
(``edgecv profile --pipeline`` reuses it through :func:`run_pipeline`). Several streams at once
(one batch per tick across them) run in ``multistream.py``; one source keeps this loop.
"""
from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Generator, Iterator, Sequence

import numpy as np

from edgecv.errors import InputError
from edgecv.runtimes.classifier import Classifier, TopK
from edgecv.runtimes.streaming.frames import Frame, Source
from edgecv.runtimes.streaming.live import LiveSource
from edgecv.runtimes.streaming.stream_common import (
    STAGES,
    Ema,
    FrameResult,
    RingStats,
    close_all,
    stop_on_signals,
)
from edgecv.runtimes.streaming.workers import Producer

Batch = tuple[list[Frame], np.ndarray, float]  # frames, their input batch, preprocess ms


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
    skipped: int = 0  # left out on purpose: --stride / --fps-limit on a live source
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
                "dropped": self.dropped, "skipped": self.skipped, "reconnects": self.reconnects,
                "unreadable": self.unreadable,
                "interrupted": self.interrupted, "providers": self.providers, "threads": self.threads,
                "batch_size": self.batch_size}


@dataclass(frozen=True)
class StreamOptions:
    """Settings of one :func:`run_stream` call (its collaborators -- sinks, the stop event and the
    per-result callback -- are passed beside it, not in here).

    ``smooth`` = ALPHA in (0, 1]: probabilities become ``ALPHA * p + (1 - ALPHA) * previous``
    (exponential moving average over frames), for continuous sources only (video, camera, stream):
    an image folder's unrelated pictures are never blended. ``batch_size`` > 1 batches ordered
    sources (image folders) for throughput; live sources always run one newest frame at a time.
    ``handle_signals``: SIGINT/SIGTERM stop the loop cleanly (main thread only). ``warmup``: one
    untimed run first, so the cold start is not reported as a stream frame.
    """

    top_k: int = 5
    smooth: float | None = None
    max_frames: int | None = None
    batch_size: int = 1
    handle_signals: bool = True
    warmup: bool = True

    def check(self) -> None:
        """Raise :class:`InputError` for settings the loop cannot honour."""
        if self.smooth is not None and not 0 < self.smooth <= 1:
            raise InputError(f"smooth {self.smooth}: expected ALPHA in (0, 1] (weight of the newest frame)")


@dataclass
class _Tally:
    """What one run measured and counted (fixed-size rings: flat memory however long it runs)."""

    stages: dict[str, RingStats] = field(default_factory=lambda: {name: RingStats() for name in STAGES})
    age: RingStats = field(default_factory=RingStats)
    wait: RingStats = field(default_factory=RingStats)  # ~0 for files: decode + preprocess keep up
    frames: int = 0
    wall_s: float = 0.0
    interrupted: bool = False


def run_stream(
    classifier: Classifier,
    source: Source,
    options: StreamOptions | None = None,
    *,
    sinks: Sequence[Any] = (),
    stop: threading.Event | None = None,
    on_result: Callable[[FrameResult], None] | None = None,
) -> StreamReport:
    """Classify every frame of ``source`` and feed ``sinks``; returns the timing report.

    ``options`` defaults to :class:`StreamOptions()`; ``stop`` ends the run between frames (a
    ``--show`` window or another thread sets it); ``on_result`` sees every :class:`FrameResult`
    after the sinks. The source and sinks are closed on return, also on errors and signals, so
    every output is flushed; the first sink that fails to close raises after all were closed.
    """
    opts = options if options is not None else StreamOptions()
    try:
        opts.check()
    except InputError:
        source.close()  # stop a live capture thread before failing
        raise
    if opts.smooth is not None and not getattr(source, "continuous", True):
        opts = replace(opts, smooth=None)  # unrelated images: nothing to smooth across
    stop = stop or threading.Event()
    loop = _Loop(classifier, opts, sinks=sinks, on_result=on_result, stop=stop)
    try:
        with stop_on_signals(stop) if opts.handle_signals else contextlib.nullcontext():
            _drive(loop, source)
    finally:
        stop.set()
        failures = close_all([source], sinks)
    if failures:
        raise failures[0]
    return _build_report(classifier, source, opts, loop.tally)


def _drive(loop: _Loop, source: Source) -> None:
    """Warm up, then run the loop over the source's batches; the preprocessing worker is always
    stopped and joined before the source is closed."""
    clf, stop, tally = loop.classifier, loop.stop, loop.tally
    if loop.opts.warmup and clf.spec is not None:  # cold start is not a stream frame
        clf.run(clf.preprocess([np.zeros((*clf.spec.size, 3), np.uint8)]))
    t_start = time.perf_counter_ns()
    batches = (_live_batches(clf, source, stop, tally.stages) if source.live  # type: ignore[arg-type]
               else _ordered_batches(clf, source, stop, tally.stages, max(1, loop.opts.batch_size)))
    try:
        loop.run(batches, t_start)
        tally.wall_s = (time.perf_counter_ns() - t_start) / 1e9
        tally.interrupted = stop.is_set()
    finally:
        stop.set()  # a worker waiting on a full queue gives up, so the join below is quick
        batches.close()


class _Loop:
    """The inference side of a run: infer, postprocess, smooth, rank, then hand every frame's
    result to the sinks and ``on_result``; timings and counts go to :attr:`tally`."""

    def __init__(self, classifier: Classifier, opts: StreamOptions, *, sinks: Sequence[Any],
                 on_result: Callable[[FrameResult], None] | None, stop: threading.Event) -> None:
        self.classifier, self.opts, self.stop = classifier, opts, stop
        self.sinks, self.on_result = list(sinks), on_result
        self.tally = _Tally()
        self._ema = Ema(opts.smooth) if opts.smooth is not None else None
        self._t_start = 0

    def run(self, batches: Iterator[Batch], t_start: int) -> None:
        """Consume ``batches`` until they end, ``max_frames`` is reached or ``stop`` is set
        (Ctrl-C while the default SIGINT handler is active counts as a stop request)."""
        self._t_start = t_ready = t_start
        max_frames = self.opts.max_frames
        try:
            for frames, x, pre_ms in batches:
                t1 = time.perf_counter_ns()
                self.tally.wait.add((t1 - t_ready) / 1e6)
                self._step(frames, x, pre_ms, t1)
                t_ready = time.perf_counter_ns()
                if (max_frames is not None and self.tally.frames >= max_frames) or self.stop.is_set():
                    break
        except KeyboardInterrupt:
            self.stop.set()

    def _step(self, frames: list[Frame], x: np.ndarray, pre_ms: float, t1: int) -> None:
        """One batch: inference and postprocess (timed), then one result per frame."""
        clf, stages = self.classifier, self.tally.stages
        raw, _ = clf.run(x)
        t2 = time.perf_counter_ns()
        probs = clf.postprocess(raw)
        if self._ema is not None:
            probs = self._ema(probs)
        ranked = clf.top_k(probs, self.opts.top_k)
        t3 = time.perf_counter_ns()
        stages["inference"].add((t2 - t1) / 1e6)
        stages["postprocess"].add((t3 - t2) / 1e6)
        latency = pre_ms + (t3 - t1) / 1e6
        for frame, top, p in zip(frames, ranked, probs):
            self._deliver(frame, top, p, latency, t3)

    def _deliver(self, frame: Frame, top: list[TopK], probs: np.ndarray, latency: float, t_done: int) -> None:
        tally = self.tally
        tally.frames += 1
        age = (t_done - frame.captured_ns) / 1e6
        tally.age.add(age)
        fps = tally.frames / max(1e-9, (t_done - self._t_start) / 1e9)
        result = FrameResult(frame.source, frame.index, top, probs, latency, age, fps, frame.image)
        for sink in self.sinks:
            sink.write(result)
        if self.on_result is not None:
            self.on_result(result)


def _build_report(classifier: Classifier, source: Source, opts: StreamOptions, tally: _Tally) -> StreamReport:
    """The end-of-run summary, from the tally and the (closed) source's counters."""
    return StreamReport(
        source=source.name, live=source.live, frames=tally.frames, wall_s=tally.wall_s,
        stages={name: s.summary() for name, s in tally.stages.items()},
        frame_age=tally.age.summary(), input_wait=tally.wait.summary(),
        dropped=source.dropped, skipped=getattr(source, "skipped", 0), reconnects=getattr(source, "reconnects", 0),
        unreadable=list(source.unreadable), interrupted=tally.interrupted,
        providers=classifier.providers, threads=classifier.threads,
        batch_size=1 if source.live else opts.batch_size)


def _live_batches(classifier: Classifier, source: LiveSource, stop: threading.Event,
                  stats: dict[str, RingStats]) -> Generator[Batch, None, None]:
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


def _ordered_batches(classifier: Classifier, source: Source, stop: threading.Event,
                     stats: dict[str, RingStats], batch_size: int) -> Generator[Batch, None, None]:
    """Every frame in order; a :class:`Producer` thread preprocesses batches ahead of inference
    (at most two waiting: enough to hide the hand-off, bounded in memory). It shares ``stop``."""

    def produce(put: Callable[[Batch], bool]) -> None:
        batch: list[Frame] = []
        for frame in source:
            stats["capture"].add(frame.decode_ms)
            batch.append(frame)
            if len(batch) == batch_size:
                if not put(_prepare(classifier, batch, stats)):
                    return
                batch = []
            if stop.is_set():
                return
        if batch:
            put(_prepare(classifier, batch, stats))

    producer: Producer[Batch] = Producer(produce, maxsize=2, name="edgecv-preprocess", stop=stop)
    try:
        yield from producer
    finally:  # done, or closed early after run_stream set ``stop`` (its flag: never set it here)
        producer.join(timeout=2.0)


def _prepare(classifier: Classifier, frames: list[Frame], stats: dict[str, RingStats]) -> Batch:
    t0 = time.perf_counter_ns()
    x = classifier.preprocess([f.image for f in frames])
    pre_ms = (time.perf_counter_ns() - t0) / 1e6
    stats["preprocess"].add(pre_ms)
    return frames, x, pre_ms


def run_pipeline(model: str | Classifier, source: str | Source, *, provider: str = "cpu",
                 threads: int | None = None, stride: int = 1, max_frames: int | None = None,
                 batch_size: int = 1, top_k: int = 5) -> StreamReport:
    """Run the stream loop over a video/folder/URL without the CLI; returns per-stage timing.

    Used by ``edgecv profile --pipeline VIDEO``. No sinks, no signal handlers.
    """
    from edgecv.runtimes.classifier import load
    from edgecv.runtimes.streaming.sources import open_source

    clf = load(model, provider=provider, threads=threads) if not isinstance(model, Classifier) else model
    src = open_source([source], stride=stride) if not isinstance(source, Source) else source
    opts = StreamOptions(top_k=top_k, max_frames=max_frames, batch_size=batch_size, handle_signals=False)
    return run_stream(clf, src, opts)
