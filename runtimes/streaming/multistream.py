"""Many cameras, one model: every stream's newest frame classified as ONE batch per tick.

Threads: one capture thread per live stream keeps only its newest frame (``live.py``); video
files are decoded in order by their reader threads. ONE gatherer thread builds the next batch
while the calling thread runs inference on the current one:

1. **gather** -- poll every stream; take each one's newest unseen frame (a file's next frame).
   When some streams have nothing new, wait for them at most ``max_wait_ms`` after the first
   frame was found (default: one frame interval of the fastest stream), so a slow or
   reconnecting camera never stalls the others. The gatherer sleeps on a :class:`Bell` that
   every source rings on a new frame: nothing spins.
2. **preprocess** the gathered frames into one input batch -- the frames of a batch in parallel,
   one per free core (OpenCV releases the GIL while it resizes), which is where batching
   across streams gains most on a small CPU -- overlapped with the inference of the
   previous batch -- but started only just before that inference is expected to end (its
   measured time minus the preprocessing time), so a frame is not left to age in a prepared
   batch. Never more than one batch is prepared ahead. Overlap needs a core that inference
   does not use: when ONNX Runtime's threads take every core, a preprocessing thread running
   beside them stalls its thread pool (on 2 cores with 2 threads, overlapping roughly doubled both
   mobilenet_v3_small's batch-of-4 inference, ~4.7 -> ~9 ms, and its preprocessing, ~4.6 -> ~8.7
   ms), so there the batch is gathered and preprocessed once inference is done.
3. **infer** the batch with one ``Classifier.run`` (a fixed-batch model is run in chunks), then
   postprocess, smooth each row with its own stream's history, rank, and deliver per-stream
   :class:`FrameResult` objects carrying the stream id.

A stream that drops reconnects on its own capture thread; one that never comes back is marked
lost and left out. :func:`run_multistream` feeds sinks and returns a
:class:`~edgecv.runtimes.streaming.multireport.MultiStreamReport`; :func:`stream_results` is the generator
behind ``Classifier.stream``.
"""
from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Generator, Iterator, Mapping, Sequence

import numpy as np

from edgecv.errors import InputError
from edgecv.hardware import usable_cores
from edgecv.runtimes.streaming.frames import Frame, Source
from edgecv.runtimes.streaming.lanes import LOST, Bell, Lane
from edgecv.runtimes.streaming.multireport import MultiStreamReport, format_multi_summary  # noqa: F401 - part of the API
from edgecv.runtimes.streaming.stream_common import (
    STAGES,
    FrameResult,
    RingStats,
    close_all,
    spare_cores,
    stop_on_signals,
)
from edgecv.runtimes.streaming.stream_list import stream_ids
from edgecv.runtimes.streaming.workers import Producer

DEFAULT_INTERVAL_S = 1 / 30  # the frame interval assumed while no stream's rate is known
IDLE_WAIT_S = 0.25  # nothing anywhere: look at the stop flag and the lanes this often


@dataclass(frozen=True)
class MultiStreamOptions:
    """Settings of a multi-stream run. ``max_frames`` counts per stream; ``max_wait_ms`` bounds
    the wait for streams without a new frame (None: one frame interval of the fastest stream);
    ``max_batch`` caps the frames per inference call (None: one from every stream; 1 = one
    frame per call, round robin -- the comparison point of ``benchmarks/multistream.py``);
    ``overlap`` preprocesses the next batch during inference (None: when a core is left free by
    the inference threads)."""

    top_k: int = 5
    smooth: float | None = None
    max_frames: int | None = None
    max_wait_ms: float | None = None
    max_batch: int | None = None
    overlap: bool | None = None
    handle_signals: bool = True
    warmup: bool = True

    def check(self) -> None:
        if self.smooth is not None and not 0 < self.smooth <= 1:
            raise InputError(f"smooth {self.smooth}: expected ALPHA in (0, 1] (weight of the newest frame)")
        if self.max_wait_ms is not None and self.max_wait_ms < 0:
            raise InputError(f"max_wait_ms {self.max_wait_ms}: expected >= 0")
        if self.max_batch is not None and self.max_batch < 1:
            raise InputError(f"max_batch {self.max_batch}: expected >= 1")


@dataclass
class _Batch:
    lanes: list[Lane]
    frames: list[Frame]
    x: np.ndarray  # (N, C, H, W) / (N, H, W, C): one row per lane
    pre_ms: float


class MultiStream:
    """The engine of one multi-stream run over ``sources`` (named by :func:`stream_ids`); it does
    not close the sources (the caller does, after :meth:`ticks` ends)."""

    def __init__(self, classifier: Any, sources: Sequence[Source], opts: MultiStreamOptions, *,
                 stop: threading.Event, on_event: Callable[[str], None] | None = None) -> None:
        self.classifier, self.opts, self.stop, self.on_event = classifier, opts, stop, on_event
        self.lanes = [Lane(i, s, smooth=opts.smooth, max_frames=opts.max_frames)
                      for i, s in zip(stream_ids(sources), sources)]
        self.bell = Bell()
        for lane in self.lanes:
            lane.source.on_frame = self.bell.ring
        self.stages = {name: RingStats() for name in STAGES}
        self.wait, self.batch_sizes = RingStats(), RingStats()
        self.completed = False  # every stream ended or was lost (not stopped)
        self.t_start = self.t_end = time.perf_counter_ns()
        self._taken, self._hungry = threading.Event(), threading.Event()
        self._inf_ms_per_frame = 0.0  # running estimates for the just-in-time start of a gather
        self._pre_ms_per_frame = 0.0
        self._last_batch = 1
        self._rr = 0  # round-robin start when max_batch leaves some streams out
        spare = spare_cores(classifier)
        self.overlap = opts.overlap if opts.overlap is not None else spare > 0
        # Cores free while a batch is preprocessed: all of them when inference waits for it,
        # those its threads leave over when the two overlap.
        self.pre_workers = max(1, spare) if self.overlap else usable_cores()
        self._pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ gatherer thread
    def _max_wait_s(self) -> float:
        if self.opts.max_wait_ms is not None:
            return self.opts.max_wait_ms / 1000
        intervals = [i for lane in self.lanes if lane.wanted and not lane.eager
                     for i in [lane.source.interval_s] if i]
        return min(intervals) if intervals else DEFAULT_INTERVAL_S

    def _poll_round(self, taken: dict[Lane, Frame], limit: int) -> None:
        """Take a frame from every stream that has one and is not in the batch yet (round robin
        from ``_rr`` when ``limit`` leaves some out)."""
        n = len(self.lanes)
        for k in range(n):
            lane = self.lanes[(self._rr + k) % n]
            if len(taken) >= limit:
                return
            if not lane.wanted or lane in taken:
                continue
            was = lane.state
            frame = lane.poll()
            if frame is not None:
                taken[lane] = frame
            elif lane.state == LOST and was != LOST and self.on_event is not None:
                others = sum(1 for other in self.lanes if other.wanted)
                if others:
                    self.on_event(f"{lane.id}: {lane.error}; dropped, {others} other stream(s) go on")

    def _keep_waiting(self, taken: dict[Lane, Frame], wanted: list[Lane], deadline: int) -> bool:
        """Wait for missing streams only while it costs nothing: before the deadline, while no
        stream in the batch already has a newer frame (waiting on would drop it), and only for
        streams whose next frame is due before the deadline. A file read as fast as possible
        never waits for the cameras."""
        now = time.perf_counter_ns()
        if now >= deadline or any(lane.eager for lane in taken):
            return False
        if any(lane.live and lane.source.pending for lane in taken):
            return False
        return any(lane.expected_soon(now, deadline) for lane in wanted if lane not in taken)

    def gather(self) -> list[tuple[Lane, Frame]] | None:
        """The next batch's (lane, frame) pairs in lane order; None once every stream is done
        (or the run is stopped)."""
        taken: dict[Lane, Frame] = {}
        limit = self.opts.max_batch or len(self.lanes)
        deadline: int | None = None
        while not self.stop.is_set():
            seen = self.bell.generation
            self._poll_round(taken, limit)
            wanted = [lane for lane in self.lanes if lane.wanted or lane in taken]
            if not wanted:
                return None
            if len(taken) >= min(limit, len(wanted)):
                break
            if taken:  # the oldest frame taken waits at most max_wait, counted from its capture
                deadline = min(frame.captured_ns for frame in taken.values()) + int(self._max_wait_s() * 1e9)
                if not self._keep_waiting(taken, wanted, deadline):
                    break
            timeout = IDLE_WAIT_S if deadline is None else (deadline - time.perf_counter_ns()) / 1e9
            self.bell.wait(seen, timeout)
        else:
            return None
        self._rr = (self._rr + len(taken)) % len(self.lanes)
        return [(lane, lane.take(taken[lane])) for lane in self.lanes if lane in taken]

    def _produce(self, put: Callable[[_Batch], bool]) -> None:
        """Gather + preprocess, hand over, wait until the batch is taken, sleep until just before
        the running inference is expected to end, repeat."""
        while not self.stop.is_set():
            t0 = time.perf_counter_ns()
            picked = self.gather()
            if picked is None:
                self.completed = not self.stop.is_set()
                return
            t1 = time.perf_counter_ns()
            x = self.preprocess([frame.image for _, frame in picked])
            pre_ms = (time.perf_counter_ns() - t1) / 1e6
            self.stages["capture"].add((t1 - t0) / 1e6)
            self.stages["preprocess"].add(pre_ms)
            self._pre_ms_per_frame = _ema(self._pre_ms_per_frame, pre_ms / len(picked))
            if not put(_Batch([lane for lane, _ in picked], [frame for _, frame in picked], x, pre_ms)):
                return
            while not self._taken.wait(0.1):  # never more than one batch prepared ahead
                if self.stop.is_set():
                    return
            self._taken.clear()
            if self.overlap:
                self._hungry.wait(self._lead_s())
                continue
            while not self._hungry.wait(0.1):  # no core to spare: gather once inference is done
                if self.stop.is_set():
                    return

    def preprocess(self, images: list[np.ndarray]) -> np.ndarray:
        """One input batch from the gathered frames (side by side on the free cores, if any)."""
        return preprocess_parallel(self.classifier, images, self._pool)

    def _lead_s(self) -> float:
        """How long to wait before gathering the next batch: the running inference's expected
        time minus the next batch's expected preprocessing (minus 1 ms of slack)."""
        expected = self._last_batch * self._inf_ms_per_frame
        ready = sum(1 for lane in self.lanes if lane.wanted)
        lead_ms = expected - self._pre_ms_per_frame * min(ready, self.opts.max_batch or ready) - 1.0
        return min(max(lead_ms, 0.0), 500.0) / 1000

    # ------------------------------------------------------------------ inference (caller's thread)
    def ticks(self) -> Generator[list[FrameResult], None, None]:
        """One list of results per inference call, until every stream is done or ``stop`` is set;
        closing the generator stops the gatherer."""
        clf = self.classifier
        if self.opts.warmup and clf.spec is not None:  # cold start is not a stream frame
            n = min(len(self.lanes), self.opts.max_batch or len(self.lanes))
            clf.run(clf.preprocess([np.zeros((*clf.spec.size, 3), np.uint8)] * n))
        if self.pre_workers > 1 and len(self.lanes) > 1 and self.opts.max_batch != 1:
            self._pool = ThreadPoolExecutor(self.pre_workers, thread_name_prefix="edgecv-preprocess")
        producer: Producer[_Batch] = Producer(self._produce, maxsize=1, name="edgecv-gather", stop=self.stop)
        batches = iter(producer)
        self.t_start = self.t_end = time.perf_counter_ns()
        for lane in self.lanes:
            lane.started_ns = lane.last_ns = self.t_start
        try:
            while not self.stop.is_set():
                t_wait = time.perf_counter_ns()
                self._hungry.set()
                batch = next(batches, None)
                self._hungry.clear()
                self._taken.set()
                if batch is None:
                    break
                self.wait.add((time.perf_counter_ns() - t_wait) / 1e6)
                yield self._infer(batch)
        finally:
            self.t_end = time.perf_counter_ns()
            self.stop.set()  # the gatherer gives up at once; the sources are closed by the caller
            producer.join(timeout=2.0)
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)

    def _infer(self, batch: _Batch) -> list[FrameResult]:
        clf, n = self.classifier, len(batch.frames)
        t1 = time.perf_counter_ns()
        raw, _ = clf.run(batch.x)
        t2 = time.perf_counter_ns()
        probs = np.array(clf.postprocess(raw), copy=True)  # rows are handed out: own them
        for i, lane in enumerate(batch.lanes):
            probs[i] = lane.smooth(probs[i])
        ranked = clf.top_k(probs, self.opts.top_k)
        t3 = time.perf_counter_ns()
        inf_ms = (t2 - t1) / 1e6
        self.stages["inference"].add(inf_ms)
        self.stages["postprocess"].add((t3 - t2) / 1e6)
        self.batch_sizes.add(float(n))
        self._inf_ms_per_frame, self._last_batch = _ema(self._inf_ms_per_frame, inf_ms / n), n
        latency = batch.pre_ms + (t3 - t1) / 1e6
        return [lane.deliver(frame, top, p, latency, t3, self.t_start)
                for lane, frame, top, p in zip(batch.lanes, batch.frames, ranked, probs)]

    def report(self, *, interrupted: bool) -> MultiStreamReport:
        clf = self.classifier
        return MultiStreamReport(
            streams=[lane.summary(self.t_start, self.t_end) for lane in self.lanes],
            wall_s=(self.t_end - self.t_start) / 1e9, stages={k: s.summary() for k, s in self.stages.items()},
            input_wait=self.wait.summary(), batch=self.batch_sizes.summary(),
            max_wait_ms=None if self.opts.max_wait_ms is None else float(self.opts.max_wait_ms),
            interrupted=interrupted, providers=list(clf.providers), threads=clf.threads)


def preprocess_parallel(classifier: Any, images: Sequence[np.ndarray],
                        pool: ThreadPoolExecutor | None) -> np.ndarray:
    """``classifier.preprocess(images)`` with one image per pool thread: the same per-image
    function, so the pixels are identical, in about 1 / workers of the time (OpenCV and numpy
    release the GIL while they resize and normalise)."""
    if pool is None or len(images) < 2:
        return classifier.preprocess(images)
    return np.concatenate(list(pool.map(lambda image: classifier.preprocess([image]), images)))


def _ema(current: float, sample: float, alpha: float = 0.2) -> float:
    return sample if current == 0.0 else alpha * sample + (1 - alpha) * current


def run_multistream(classifier: Any, sources: Sequence[Source], options: MultiStreamOptions | None = None, *,
                    sinks: Sequence[Any] = (), stream_sinks: Mapping[str, Sequence[Any]] | None = None,
                    stop: threading.Event | None = None, on_result: Callable[[FrameResult], None] | None = None,
                    on_event: Callable[[str], None] | None = None) -> MultiStreamReport:
    """Classify several streams as one batch per tick and feed the sinks; returns the report.

    ``sinks`` see every result (JSON lines carry ``stream``); ``stream_sinks[id]`` only that
    stream's (its ``--save`` file); a sink with an ``end_tick()`` method (the mosaic) is called
    after each inference call. ``on_event`` hears about a stream lost while others go on.
    Sources and sinks are closed on return, also on errors and signals, so every output is
    flushed; the first sink that fails to close raises after all were closed.
    """
    opts = options if options is not None else MultiStreamOptions()
    stop = stop or threading.Event()
    routes = {key: list(value) for key, value in (stream_sinks or {}).items()}
    every = [*sinks, *(s for group in routes.values() for s in group)]
    try:
        opts.check()
        engine = MultiStream(classifier, sources, opts, stop=stop, on_event=on_event)
        ticks = engine.ticks()
        with stop_on_signals(stop) if opts.handle_signals else contextlib.nullcontext():
            try:
                _feed(ticks, sinks, routes, on_result)
            except KeyboardInterrupt:
                stop.set()
            finally:
                ticks.close()
    finally:
        stop.set()
        failures = close_all(sources, every)
    if failures:
        raise failures[0]
    return engine.report(interrupted=not engine.completed)


def _feed(ticks: Iterator[list[FrameResult]], sinks: Sequence[Any], routes: Mapping[str, list[Any]],
          on_result: Callable[[FrameResult], None] | None) -> None:
    enders = [sink.end_tick for sink in sinks if hasattr(sink, "end_tick")]
    for results in ticks:
        for result in results:
            for sink in sinks:
                sink.write(result)
            for sink in routes.get(result.stream or "", ()):
                sink.write(result)
            if on_result is not None:
                on_result(result)
        for end_tick in enders:
            end_tick()


def stream_results(classifier: Any, sources: Sequence[Source | str | int], *, top_k: int = 5,
                   smooth: float | None = None, max_frames: int | None = None, max_wait_ms: float | None = None,
                   stride: int = 1, fps_limit: float | None = None, realtime: bool = False,
                   retries: int = 5) -> Generator[FrameResult, None, None]:
    """The generator behind ``Classifier.stream``: camera indexes, URLs, video paths (or opened
    sources) -> one :class:`FrameResult` per classified frame, ``.stream`` naming its stream.
    Nothing opens before the first ``next()``; closing the generator (or leaving a ``for`` loop
    early) stops every capture."""
    from edgecv.runtimes.streaming.sources import open_stream

    opened: list[Source] = []
    stop = threading.Event()
    try:
        for spec in sources:
            opened.append(spec if isinstance(spec, Source) else open_stream(
                spec, stride=stride, retries=retries, fps_limit=fps_limit, realtime=realtime))
        opts = MultiStreamOptions(top_k=top_k, smooth=smooth, max_frames=max_frames, max_wait_ms=max_wait_ms,
                                  handle_signals=False)
        opts.check()
        ticks = MultiStream(classifier, opened, opts, stop=stop).ticks()
        try:
            for results in ticks:
                yield from results
        finally:
            ticks.close()
    finally:
        stop.set()
        close_all(opened, [])
