"""Live sources: cameras and rtsp/http streams, read by a capture thread keeping only the newest frame.

OpenCV's V4L backend buffers several frames and a loop slower than the camera would otherwise
fall seconds behind, so the capture thread overwrites a one-slot buffer and counts what it
overwrote as dropped. A lost stream is reopened with bounded exponential back-off, on its own
thread, so in a multi-stream run one camera's reconnects never stall the others. URL captures
are opened on FFmpeg with open and read timeouts, so a stalled stream can neither hang the start
nor keep its capture thread alive past :meth:`LiveSource.close`.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator

import cv2

from edgecv.errors import InputError
from edgecv.runtimes.streaming.frames import Frame, RateGate, Source, StreamLost

URL_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
URL_OPEN_TIMEOUT_MS = 5000  # connecting to a stream (FFmpeg's own default waits 30 s)
URL_READ_TIMEOUT_MS = 3000  # one read of a stalled stream gives up after this


class LiveSource(Source):
    """A camera or stream read by a capture thread that keeps only the newest frame.

    ``opener()`` returns a ``cv2.VideoCapture``-like object (injectable for tests). When reads
    fail the capture is reopened after 0.5, 1, 2, ... s (at most ``max_backoff_s``) for up to
    ``retries`` attempts; then reading raises :class:`StreamLost`. ``stride`` keeps every K-th
    captured frame and ``fps_limit`` at most F frames per second (the others count as skipped,
    not dropped). ``open_in_thread``: the first open (and its retries, with
    ``first_open_retries``) happens on the capture thread, so several streams start at once.
    """

    live = True

    def __init__(self, opener: Callable[[], Any], *, name: str = "stream", retries: int = 5,
                 backoff_s: float = 0.5, max_backoff_s: float = 8.0, first_open_retries: bool = False,
                 close_timeout_s: float = 5.0, stride: int = 1, fps_limit: float | None = None,
                 open_in_thread: bool = False) -> None:
        super().__init__()
        if stride < 1:
            raise InputError(f"stride {stride}: expected a positive integer")
        self.name, self._opener = name, opener
        self.retries, self.backoff_s, self.max_backoff_s = retries, backoff_s, max_backoff_s
        self._close_timeout_s = close_timeout_s  # > the opener's open/read timeouts: close() outlasts them
        self.stride, self.fps_limit = stride, fps_limit
        self._gate = RateGate(fps_limit) if fps_limit else None
        self.reconnects = 0
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._captured = 0
        self._failures = 0
        self._cap: Any = None
        self._interval_ns = 0.0  # running mean of the gaps between published frames
        self._published_ns = 0
        self._first_open_retries = first_open_retries
        if not open_in_thread:
            self._cap = self._first_open()
        self._thread = threading.Thread(target=self._capture_loop, name=f"edgecv-capture-{name}", daemon=True)
        self._thread.start()

    def _first_open(self) -> Any:
        cap = self._opener()
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            if not self._first_open_retries:
                raise InputError(f"{self.name}: cannot open (no such device, busy, or no permission)")
            cap = self._reopen(tried=1)
        if cap is not None:
            fps = cap.get(cv2.CAP_PROP_FPS)
            self.fps = float(fps) if fps and 0 < fps < 1000 else None
        return cap

    def _reopen(self, failures: int = 0, *, tried: int = 0) -> Any:
        """Reopen after back-off; ``failures`` = consecutive failed reads/opens so far, ``tried`` =
        opens already attempted (for the message). A stream that opens but delivers no frame
        counts as failed too, so the budget is always bounded."""
        while failures < self.retries:
            delay = min(self.backoff_s * (2 ** failures), self.max_backoff_s)
            failures += 1
            if self._stop.wait(delay):
                return None
            cap = self._opener()
            if cap is not None and cap.isOpened():
                self.reconnects += 1
                self._failures = failures
                return cap
            if cap is not None:
                cap.release()
        what = "stream lost and not reopened" if self._captured else "cannot open stream"
        n = tried + failures
        backoff = f" (back-off up to {self.max_backoff_s:g} s)" if self.retries else ""
        raise StreamLost(f"{self.name}: {what} after {n} attempt{'s' if n != 1 else ''}{backoff}; "
                         f"expected a reachable stream")

    def _keep(self, now: int) -> bool:
        """--stride and --fps-limit: False for a frame left out on purpose (counted as skipped)."""
        if (self._captured - 1) % self.stride or (self._gate is not None and not self._gate.admit(now)):
            self.skipped += 1
            return False
        return True

    def _capture_loop(self) -> None:
        self._failures = 0
        try:
            if self._cap is None and not self._stop.is_set():
                self._cap = self._first_open()  # open_in_thread
            while self._cap is not None and not self._stop.is_set():
                t0 = time.perf_counter_ns()
                ok, image = self._cap.read()
                if not ok or image is None:
                    if self._stop.is_set():
                        break
                    self._cap.release()
                    self._cap = self._reopen(self._failures)
                    continue
                self._failures = 0  # a delivered frame resets the retry budget
                now = time.perf_counter_ns()
                frame = Frame(image, self._captured, self.name, now, (now - t0) / 1e6)
                self._captured += 1
                if self._keep(now):
                    self._publish(frame)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            with self._cond:
                self._error = exc
                self._cond.notify()
            self._notify()
        finally:
            if self._cap is not None:
                self._cap.release()

    def _publish(self, frame: Frame) -> None:
        if self._published_ns:  # a gap after a stall counts at most 4x the running mean
            gap = frame.captured_ns - self._published_ns
            mean = self._interval_ns
            self._interval_ns = gap if not mean else 0.9 * mean + 0.1 * min(gap, 4 * mean)
        self._published_ns = frame.captured_ns
        with self._cond:
            if self._latest is not None:
                self.dropped += 1  # overwritten before the loop took it: dropped, not queued
            self._latest = frame
            self._cond.notify()
        self._notify()

    def read(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not yet returned (waits for one); None once closed."""
        with self._cond:
            while self._latest is None and self._error is None and not self._stop.is_set():
                if not self._cond.wait(timeout=timeout if timeout is not None else 0.5) and timeout is not None:
                    return None
            if self._latest is not None:
                frame, self._latest = self._latest, None
                return frame
            if self._error is not None:
                raise self._error
            return None

    @property
    def pending(self) -> bool:
        return self._latest is not None

    @property
    def interval_s(self) -> float | None:
        if self._interval_ns:
            return self._interval_ns / 1e9
        fps = self.fps / self.stride if self.fps else None
        if self.fps_limit:
            fps = min(fps or self.fps_limit, self.fps_limit)
        return 1.0 / fps if fps else None

    def poll(self) -> Frame | None:
        """The newest frame not yet returned, without waiting; raises once the stream is lost."""
        with self._cond:
            frame, self._latest = self._latest, None
            if frame is None and self._error is not None:
                raise self._error
            return frame

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def request_stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        self.request_stop()
        self._thread.join(timeout=self._close_timeout_s)


def is_url(text: str) -> bool:
    return str(text).lower().startswith(URL_PREFIXES)


def open_camera(index: int, *, retries: int = 5, stride: int = 1, fps_limit: float | None = None,
                open_in_thread: bool = False) -> LiveSource:
    """``--camera N``: a clear error when the device does not open (with ``open_in_thread``, as
    in a multi-stream run, the first open is retried with back-off like a dropped stream)."""
    def opener() -> Any:
        cap = cv2.VideoCapture(int(index))
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # ask the backend not to queue frames (not all honour it)
        return cap
    return LiveSource(opener, name=f"camera {index}", retries=retries, stride=stride, fps_limit=fps_limit,
                      first_open_retries=open_in_thread, open_in_thread=open_in_thread)


def open_url(url: str, *, retries: int = 5, open_timeout_ms: int = URL_OPEN_TIMEOUT_MS,
             read_timeout_ms: int = URL_READ_TIMEOUT_MS, stride: int = 1, fps_limit: float | None = None,
             open_in_thread: bool = False) -> LiveSource:
    """An rtsp/http stream; the first connection is retried with back-off as well. Opens and reads
    time out (FFmpeg backend), so a stalled stream ends its capture thread within ``close()``."""
    def opener() -> Any:
        return open_url_capture(url, open_timeout_ms=open_timeout_ms, read_timeout_ms=read_timeout_ms)
    close_s = max(open_timeout_ms, read_timeout_ms) / 1000 + 1.0
    return LiveSource(opener, name=url, retries=retries, first_open_retries=True, close_timeout_s=close_s,
                      stride=stride, fps_limit=fps_limit, open_in_thread=open_in_thread)


def open_url_capture(url: str, *, open_timeout_ms: int = URL_OPEN_TIMEOUT_MS,
                     read_timeout_ms: int = URL_READ_TIMEOUT_MS) -> Any:
    """``cv2.VideoCapture(url)`` on FFmpeg with open/read timeouts (without them one blocked read
    of a dead RTSP/HTTP stream can last as long as the TCP connection); other builds: plain open."""
    registry = getattr(cv2, "videoio_registry", None)
    if hasattr(cv2, "CAP_PROP_READ_TIMEOUT_MSEC") and registry is not None and registry.hasBackend(cv2.CAP_FFMPEG):
        return cv2.VideoCapture(url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_ms),
                                                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_ms)])
    return cv2.VideoCapture(url)
