"""A ``cv2.VideoCapture`` stand-in for the live path (tests, benchmarks, demos without a camera)."""
from __future__ import annotations

import time

import cv2
import numpy as np


class FakeCapture:
    """A ``cv2.VideoCapture`` look-alike producing synthetic frames at ``fps`` in real time.

    ``read()`` blocks until the next frame is due, like a camera. ``fail_after`` frames it
    reports a lost stream (``read`` -> False). The frame index is drawn into each frame, so a test
    can tell which frame it got. ``copy=False`` (benchmarks) hands out frames from a small pool of
    pre-made images instead of a fresh copy each (no per-frame index then): at hundreds of frames
    per second the copies of a 640x480 frame would themselves load the CPU being measured.
    """

    POOL = 4

    def __init__(self, *, fps: float = 30.0, size: tuple[int, int] = (64, 48), fail_after: int | None = None,
                 colour: tuple[int, int, int] = (0, 0, 200), copy: bool = True) -> None:
        self.fps, self.size, self.fail_after, self.copy = fps, size, fail_after, copy
        self._frame = np.zeros((size[1], size[0], 3), np.uint8)
        self._frame[:] = colour
        self._pool = [] if copy else [self._frame.copy() for _ in range(self.POOL)]
        for i, frame in enumerate(self._pool):
            frame[0, :4, 0] = np.frombuffer(i.to_bytes(4, "little"), np.uint8)
        self._n = 0
        self._next = time.perf_counter()
        self._open = True

    def isOpened(self) -> bool:  # noqa: N802 - mimics cv2.VideoCapture
        return self._open

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self._open or (self.fail_after is not None and self._n >= self.fail_after):
            return False, None
        delay = self._next - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        self._next = max(self._next + 1.0 / self.fps, time.perf_counter() - 1.0 / self.fps)
        if not self.copy:
            self._n += 1
            return True, self._pool[self._n % self.POOL]
        frame = self._frame.copy()
        frame[0, :4, 0] = np.frombuffer(int(self._n).to_bytes(4, "little"), np.uint8)  # frame id in pixels
        self._n += 1
        return True, frame

    def get(self, prop: int) -> float:
        return float(self.fps) if prop == cv2.CAP_PROP_FPS else 0.0

    def set(self, prop: int, value: float) -> bool:  # noqa: A003 - mimics cv2.VideoCapture
        return True

    def release(self) -> None:
        self._open = False
