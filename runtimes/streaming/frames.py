"""What every frame source shares: the :class:`Frame`, the :class:`Source` base class, the
:class:`StreamLost` failure and :class:`RateGate` (``--fps-limit``).

Kept apart from ``sources.py`` so the ordered readers (files) and the live captures
(``live.py``) build on one base without importing each other.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from edgecv.errors import EdgecvError


class StreamLost(EdgecvError):
    """A live stream dropped and could not be reopened within the retry budget."""


@dataclass
class Frame:
    """One decoded frame: BGR uint8 (H, W, 3), its index in the source and when it was captured."""

    image: np.ndarray
    index: int
    source: str
    captured_ns: int  # time.perf_counter_ns() right after decoding
    decode_ms: float = 0.0


class Source:
    """Base class: iterate to get :class:`Frame` objects; always ``close()`` (or use ``with``).

    The multi-stream loop does not iterate: it calls :meth:`poll` on every source each tick and
    sleeps until one of them calls ``on_frame`` (set by the loop before the first poll), so no
    thread spins while the cameras are between frames.
    """

    live = False
    realtime = False  # a video file paced at its own frame rate
    name = "source"
    # Frames follow each other in time (video, camera, stream), so smoothing probabilities across
    # them makes sense; an image folder's files are unrelated and must be classified one by one.
    continuous = True

    def __init__(self) -> None:
        self.dropped = 0  # live frames overwritten before the loop took them
        self.skipped = 0  # frames left out on purpose (--stride, --fps-limit on a live source)
        self.unreadable: list[str] = []  # "path: reason" for skipped inputs
        self.fps: float | None = None  # nominal frame rate (video files, cameras)
        self.fps_limit: float | None = None  # --fps-limit: at most this many frames per second
        self.on_frame: Callable[[], None] | None = None  # called by the reader after each new frame

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def poll(self) -> Frame | None:
        """The next frame if one is ready, without waiting (None: nothing new yet, or ended --
        see :attr:`exhausted`); a lost stream raises :class:`StreamLost`."""
        raise NotImplementedError(f"{type(self).__name__} cannot be polled")

    @property
    def pending(self) -> bool:
        """A frame is ready for :meth:`poll` (a hint: it may be taken or lost the next instant)."""
        return False

    @property
    def interval_s(self) -> float | None:
        """Seconds between the frames this source hands out, when known (measured for live
        sources; from the frame rate, --stride and --fps-limit for paced files)."""
        return None

    @property
    def exhausted(self) -> bool:
        """True once an ordered source has delivered its last frame (live sources never end)."""
        return False

    def _notify(self) -> None:
        callback = self.on_frame
        if callback is not None:
            callback()

    def request_stop(self) -> None:
        """Ask reader threads to stop without waiting (closing many sources: stop all, then join)."""

    def close(self) -> None:
        """Stop reader threads and release devices; safe to call twice."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class RateGate:
    """At most ``rate`` frames per second on average, as a schedule rather than a minimum gap:
    a 30 fps camera capped at 20 gets 20 (a minimum 50 ms gap would give 15, because frames come
    on a 33 ms grid). A frame is admitted from a quarter period before it is due; after a stall the
    schedule does not catch up in a burst."""

    def __init__(self, rate: float) -> None:
        if not rate > 0:
            raise ValueError(f"rate {rate}: expected > 0")
        self.period_ns = int(1e9 / rate)
        self._next: int | None = None

    def admit(self, now_ns: int | None = None) -> bool:
        """True (and book the next slot) if a frame arriving now may pass."""
        now = time.perf_counter_ns() if now_ns is None else now_ns
        if self._next is not None and now < self._next - self.period_ns // 4:
            return False
        base = now if self._next is None else max(self._next, now - self.period_ns)
        self._next = base + self.period_ns
        return True

    def delay_s(self, now_ns: int | None = None) -> float:
        """Seconds until the next frame may pass (0 when it may pass now); books nothing."""
        now = time.perf_counter_ns() if now_ns is None else now_ns
        return 0.0 if self._next is None else max(0.0, (self._next - now) / 1e9)
