"""Frame sources: image files and folders, video files, cameras and stream URLs.

* Files/folders and video files are read **in order, without dropping**, by a reader thread
  into a small bounded queue, so decoding overlaps with inference.
* Live sources (``--camera N``, rtsp/http URLs) use a capture thread that keeps **only the newest
  frame**: OpenCV's V4L backend buffers several frames, and a loop slower than the camera would
  otherwise fall seconds behind. Overwritten frames are counted as dropped. A lost stream is
  reopened with bounded exponential back-off, then the source fails (the CLI exits 1).
* :class:`FakeCapture` mimics ``cv2.VideoCapture`` at a fixed frame rate so tests and benchmarks
  can drive the live path without a camera.
* URL captures are opened on FFmpeg with open and read timeouts, so a stalled stream can neither
  hang the start nor keep its capture thread alive past :meth:`Source.close`.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import cv2
import numpy as np
from edgecv.runtimes.fake_capture import FakeCapture  # noqa: F401 - part of this module's API
from edgecv.runtimes.workers import Producer

from edgecv.errors import EdgecvError, InputError
from edgecv.preprocess import IMAGE_EXTENSIONS, load_image

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
URL_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
URL_OPEN_TIMEOUT_MS = 5000  # connecting to a stream (FFmpeg's own default waits 30 s)
URL_READ_TIMEOUT_MS = 3000  # one read of a stalled stream gives up after this


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
    """Base class: iterate to get :class:`Frame` objects; always ``close()`` (or use ``with``)."""

    live = False
    name = "source"
    # Frames follow each other in time (video, camera, stream), so smoothing probabilities across
    # them makes sense; an image folder's files are unrelated and must be classified one by one.
    continuous = True

    def __init__(self) -> None:
        self.dropped = 0  # live frames overwritten before the loop took them
        self.unreadable: list[str] = []  # "path: reason" for skipped inputs
        self.fps: float | None = None  # nominal frame rate (video files, cameras)

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop reader threads and release devices; safe to call twice."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ----------------------------------------------------------------------------- ordered sources
class _OrderedReader(Source):
    """Runs ``self._produce(put)`` on a :class:`~edgecv.runtimes.workers.Producer` thread;
    iteration yields its frames in order."""

    def __init__(self, *, prefetch: int = 8) -> None:
        super().__init__()
        self._prefetch = prefetch
        self._stop = threading.Event()  # also seen by ``_produce`` loops between frames
        self._producer: Producer[Frame] | None = None

    def _produce(self, put: Callable[[Any], bool]) -> None:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Frame]:
        if self._producer is None:  # created here: subclasses set ``name`` after __init__
            self._producer = Producer(self._produce, maxsize=self._prefetch, name=f"edgecv-reader-{self.name}",
                                      stop=self._stop)
        return iter(self._producer)

    def close(self) -> None:
        self._stop.set()
        if self._producer is not None:
            self._producer.close(timeout=5)


def collect_images(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files as given plus image files under folders (recursive, sorted); errors on missing paths."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise InputError(f"{p}: no images found (expected {', '.join(IMAGE_EXTENSIONS)} files)")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"{p}: file or folder not found")
    return out


class ImageSource(_OrderedReader):
    """Image files (folders expanded recursively); unreadable files are recorded and skipped."""

    continuous = False  # unrelated pictures: never smoothed into each other

    def __init__(self, paths: Sequence[str | os.PathLike[str]], *, prefetch: int = 16) -> None:
        super().__init__(prefetch=prefetch)
        self.paths = collect_images(paths)
        self.name = str(paths[0]) if len(paths) == 1 else f"{len(self.paths)} images"

    def __len__(self) -> int:
        return len(self.paths)

    def _produce(self, put: Callable[[Any], bool]) -> None:
        for i, path in enumerate(self.paths):
            t0 = time.perf_counter_ns()
            try:
                image = load_image(path)
            except InputError as exc:
                self.unreadable.append(str(exc))
                continue
            now = time.perf_counter_ns()
            if not put(Frame(image, i, str(path), now, (now - t0) / 1e6)):
                return


def _open_video(path: Path, threads: int | None) -> Any:
    """Open a video file; ``threads`` caps FFmpeg's own decoder threads. Decoding already runs in
    its own reader thread, and FFmpeg's frame threading (one thread per core by default) competes
    with inference: on a 2-core CPU it slowed mobilenet_v2 from ~4 to ~6-9 ms per frame, while
    single-threaded decoding of 640x480 costs ~0.3 ms per frame."""
    if threads is not None and hasattr(cv2, "CAP_PROP_N_THREADS"):
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, int(threads)])
        if cap.isOpened():
            return cap
        cap.release()
    return cv2.VideoCapture(str(path))  # another backend (or an OpenCV without the property)


class VideoFileSource(_OrderedReader):
    """Every ``stride``-th frame of a video file, in order; a truncated file ends at its last
    decodable frame."""

    def __init__(self, path: str | os.PathLike[str], *, stride: int = 1, prefetch: int = 8,
                 decode_threads: int | None = 1) -> None:
        super().__init__(prefetch=prefetch)
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: video file not found")
        if stride < 1:
            raise InputError(f"stride {stride}: expected a positive integer")
        if self.path.stat().st_size == 0:
            raise InputError(f"{self.path}: file is empty; expected a video")
        self.stride = stride
        self.name = str(self.path)
        self._cap = _open_video(self.path, decode_threads)
        if not self._cap.isOpened():
            self._cap.release()
            raise InputError(f"{self.path}: cannot open video (truncated, damaged or not a video; expected a "
                             f"readable {'/'.join(VIDEO_EXTENSIONS)} file)")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else None
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 else None

    def _produce(self, put: Callable[[Any], bool]) -> None:
        cap, index = self._cap, 0
        try:
            while not self._stop.is_set():
                t0 = time.perf_counter_ns()
                if index % self.stride == 0:
                    ok, image = cap.read()
                else:
                    ok, image = cap.grab(), None  # grab without decoding the skipped frames
                if not ok:
                    return
                if image is not None:
                    now = time.perf_counter_ns()
                    if not put(Frame(image, index, self.name, now, (now - t0) / 1e6)):
                        return
                index += 1
        finally:
            cap.release()

    def close(self) -> None:
        """Stop the reader; release the capture here when no reader thread holds it (closed before
        iteration, or already finished) -- a thread still inside a read releases it itself."""
        super().close()
        if self._producer is None or not self._producer.alive:
            self._cap.release()


# ----------------------------------------------------------------------------- live sources
class LiveSource(Source):
    """A camera or stream read by a capture thread that keeps only the newest frame.

    ``opener()`` returns a ``cv2.VideoCapture``-like object (injectable for tests). When reads
    fail the capture is reopened after 0.5, 1, 2, ... s (at most ``max_backoff_s``) for up to
    ``retries`` attempts; then iteration raises :class:`StreamLost`.
    """

    live = True

    def __init__(self, opener: Callable[[], Any], *, name: str = "stream", retries: int = 5,
                 backoff_s: float = 0.5, max_backoff_s: float = 8.0, first_open_retries: bool = False,
                 close_timeout_s: float = 5.0) -> None:
        super().__init__()
        self.name, self._opener = name, opener
        self.retries, self.backoff_s, self.max_backoff_s = retries, backoff_s, max_backoff_s
        self._close_timeout_s = close_timeout_s  # > the opener's open/read timeouts: close() outlasts them
        self.reconnects = 0
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._captured = 0
        self._failures = 0
        cap = opener()
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            if not first_open_retries:
                raise InputError(f"{name}: cannot open (no such device, busy, or no permission)")
            cap = self._reopen(tried=1)
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS) if cap is not None else 0
        self.fps = float(fps) if fps and 0 < fps < 1000 else None
        self._thread = threading.Thread(target=self._capture_loop, name=f"edgecv-capture-{name}", daemon=True)
        self._thread.start()

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

    def _capture_loop(self) -> None:
        self._failures = 0
        try:
            while not self._stop.is_set():
                t0 = time.perf_counter_ns()
                ok, image = self._cap.read()
                if not ok or image is None:
                    if self._stop.is_set():
                        break
                    self._cap.release()
                    self._cap = self._reopen(self._failures)
                    if self._cap is None:
                        break
                    continue
                self._failures = 0  # a delivered frame resets the retry budget
                now = time.perf_counter_ns()
                frame = Frame(image, self._captured, self.name, now, (now - t0) / 1e6)
                self._captured += 1
                with self._cond:
                    if self._latest is not None:
                        self.dropped += 1  # overwritten before the loop took it: dropped, not queued
                    self._latest = frame
                    self._cond.notify()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            with self._cond:
                self._error = exc
                self._cond.notify()
        finally:
            if self._cap is not None:
                self._cap.release()

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

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=self._close_timeout_s)


# ----------------------------------------------------------------------------- factory
def is_url(text: str) -> bool:
    return str(text).lower().startswith(URL_PREFIXES)


def is_video(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def open_camera(index: int, *, retries: int = 5) -> LiveSource:
    """``--camera N``: a clear error when the device does not open."""
    def opener() -> Any:
        cap = cv2.VideoCapture(int(index))
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # ask the backend not to queue frames (not all honour it)
        return cap
    return LiveSource(opener, name=f"camera {index}", retries=retries)


def open_url(url: str, *, retries: int = 5, open_timeout_ms: int = URL_OPEN_TIMEOUT_MS,
             read_timeout_ms: int = URL_READ_TIMEOUT_MS) -> LiveSource:
    """An rtsp/http stream; the first connection is retried with back-off as well. Opens and reads
    time out (FFmpeg backend), so a stalled stream ends its capture thread within ``close()``."""
    def opener() -> Any:
        return open_url_capture(url, open_timeout_ms=open_timeout_ms, read_timeout_ms=read_timeout_ms)
    close_s = max(open_timeout_ms, read_timeout_ms) / 1000 + 1.0
    return LiveSource(opener, name=url, retries=retries, first_open_retries=True, close_timeout_s=close_s)


def open_url_capture(url: str, *, open_timeout_ms: int = URL_OPEN_TIMEOUT_MS,
                     read_timeout_ms: int = URL_READ_TIMEOUT_MS) -> Any:
    """``cv2.VideoCapture(url)`` on FFmpeg with open/read timeouts (without them one blocked read
    of a dead RTSP/HTTP stream can last as long as the TCP connection); other builds: plain open."""
    registry = getattr(cv2, "videoio_registry", None)
    if hasattr(cv2, "CAP_PROP_READ_TIMEOUT_MSEC") and registry is not None and registry.hasBackend(cv2.CAP_FFMPEG):
        return cv2.VideoCapture(url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_ms),
                                                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_ms)])
    return cv2.VideoCapture(url)


def open_source(inputs: Sequence[str | os.PathLike[str]] = (), *, camera: int | None = None,
                stride: int = 1, retries: int = 5) -> Source:
    """Pick the source for the CLI: a camera, one URL, one video file, or images/folders."""
    if camera is not None:
        return open_camera(camera, retries=retries)
    if not inputs:
        raise InputError("no input: expected image/folder/video paths, a stream URL, --camera N or --text")
    if len(inputs) == 1 and is_url(str(inputs[0])):
        return open_url(str(inputs[0]), retries=retries)
    videos = [p for p in inputs if is_video(p) and not Path(p).is_dir()]
    if videos:
        if len(inputs) > 1:
            raise InputError(f"{videos[0]}: give one video file at a time (got {len(inputs)} inputs)")
        return VideoFileSource(videos[0], stride=stride)
    return ImageSource(inputs)
