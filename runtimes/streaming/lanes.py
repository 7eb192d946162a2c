"""One :class:`Lane` per stream of a multi-stream run, and the :class:`Bell` they ring.

A lane owns everything that must never mix across streams: its source, its smoothing state,
its counters and frame ages, and its fate (running, ended, lost). A stream that fails is marked
lost on its own lane and the others go on.
"""
from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from edgecv.errors import short_message
from edgecv.runtimes.streaming.frames import Frame, Source
from edgecv.runtimes.streaming.stream_common import Ema, FrameResult, RingStats

RUNNING, ENDED, LOST = "running", "ended", "lost"


class Bell:
    """Rung by any source when it has a new frame; the gatherer sleeps on it instead of
    polling in a loop (a generation counter, so a ring between a poll and the wait is not lost)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.generation = 0

    def ring(self) -> None:
        with self._cond:
            self.generation += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        """Return once rung after ``seen`` was read, or after ``timeout`` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: self.generation != seen, timeout=max(0.0, timeout))


class Lane:
    """One stream: polls its source, smooths its own probabilities, counts and times its frames."""

    def __init__(self, stream_id: str, source: Source, *, smooth: float | None = None,
                 max_frames: int | None = None) -> None:
        self.id, self.source = stream_id, source
        self.live = bool(source.live)
        # a video file read as fast as possible always has its next frame: never wait for others
        self.eager = not self.live and not source.realtime and source.fps_limit is None
        self.ema = Ema(smooth) if smooth is not None and source.continuous else None
        self.max_frames = max_frames
        self.state, self.error = RUNNING, ""
        self.taken = 0  # frames handed to a batch
        self.frames = 0  # frames classified and delivered
        self.last_captured_ns: int | None = None  # capture time of the last frame taken
        self.age = RingStats()
        self.started_ns = time.perf_counter_ns()
        self.ended_ns: int | None = None
        self.last_ns = self.started_ns  # when its last frame was delivered

    @property
    def wanted(self) -> bool:
        """Still running and not yet at ``max_frames``."""
        return self.state == RUNNING and (self.max_frames is None or self.taken < self.max_frames)

    def poll(self) -> Frame | None:
        """The stream's next (file) or newest (live) frame, if there is a new one; a lost stream
        or an ended file changes the lane's state instead of raising."""
        try:
            frame = self.source.poll()
        except Exception as exc:  # noqa: BLE001 - StreamLost and any capture failure end this lane only
            self.finish(LOST, short_message(exc))
            return None
        if frame is None and self.source.exhausted:
            self.finish(ENDED)
        return frame

    def finish(self, state: str, error: str = "") -> None:
        if self.state == RUNNING:
            self.state, self.error, self.ended_ns = state, error, time.perf_counter_ns()

    def expected_soon(self, now_ns: int, deadline_ns: int) -> bool:
        """Worth waiting for: its next frame is due before ``deadline_ns`` and it is not stalled
        (more than one interval overdue: reconnecting, or slower than it was). A stream that has
        not delivered yet, or whose rate is unknown, is not waited for."""
        interval = self.source.interval_s
        if self.last_captured_ns is None or not interval:
            return False
        due = self.last_captured_ns + int(interval * 1e9)
        return due <= deadline_ns and now_ns - due <= interval * 1e9

    def take(self, frame: Frame) -> Frame:
        """Count ``frame`` as handed to a batch; reaching ``max_frames`` ends the lane."""
        self.taken += 1
        self.last_captured_ns = frame.captured_ns
        if self.max_frames is not None and self.taken >= self.max_frames:
            self.finish(ENDED)
        return frame

    def smooth(self, probs: np.ndarray) -> np.ndarray:
        """(C,) probabilities -> smoothed with this stream's own history (never another's)."""
        return probs if self.ema is None else self.ema(probs[None])[0]

    def deliver(self, frame: Frame, top_k: list[Any], probs: np.ndarray, latency_ms: float,
                t_done: int, t_start: int) -> FrameResult:
        self.frames += 1
        self.last_ns = t_done
        age = (t_done - frame.captured_ns) / 1e6
        self.age.add(age)
        fps = self.frames / max(1e-9, (t_done - t_start) / 1e9)
        return FrameResult(frame.source, frame.index, top_k, probs, latency_ms, age, fps, frame.image, self.id)

    def summary(self, t_start: int, t_end: int) -> dict[str, Any]:
        """This stream's line of the report: frames, FPS over its own active time, frame age,
        dropped (overwritten while the loop was busy), skipped (--stride/--fps-limit), reconnects."""
        end = t_end if self.ended_ns is None else max(self.ended_ns, self.last_ns)
        wall = max(1e-9, (end - t_start) / 1e9)
        src = self.source
        return {"stream": self.id, "source": src.name, "live": self.live,
                "state": self.state if self.state != RUNNING else "stopped", "error": self.error,
                "frames": self.frames, "fps": round(self.frames / wall, 3), "frame_age": self.age.summary(),
                "dropped": src.dropped, "skipped": getattr(src, "skipped", 0),
                "reconnects": getattr(src, "reconnects", 0), "unreadable": list(src.unreadable)}
