"""Frame sources: image files and folders, video files, cameras and stream URLs.

* Files/folders and video files are read **in order, without dropping**, by a reader thread
  into a small bounded queue, so decoding overlaps with inference; ``realtime`` paces a video
  at its own frame rate (as if it were a camera) and ``fps_limit`` caps the rate, still in order.
* Live sources (``--camera N``, rtsp/http URLs; see ``live.py``, re-exported here) use a capture
  thread that keeps **only the newest frame**; overwritten frames are counted as dropped. A lost
  stream is reopened with bounded exponential back-off, then the source fails (the CLI exits 1).
* :class:`FakeCapture` mimics ``cv2.VideoCapture`` at a fixed frame rate so tests and benchmarks
  can drive the live path without a camera.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import cv2

from edgecv.errors import InputError
from edgecv.preprocess import IMAGE_EXTENSIONS, load_image
from edgecv.runtimes.streaming.fake_capture import FakeCapture  # noqa: F401 - part of this module's API
from edgecv.runtimes.streaming.frames import Frame, RateGate, Source, StreamLost  # noqa: F401 - part of this module's API
from edgecv.runtimes.streaming.live import (  # noqa: F401 - part of this module's API
    URL_OPEN_TIMEOUT_MS,
    URL_PREFIXES,
    URL_READ_TIMEOUT_MS,
    LiveSource,
    is_url,
    open_camera,
    open_url,
    open_url_capture,
)
from edgecv.runtimes.streaming.workers import Producer

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


# ----------------------------------------------------------------------------- ordered sources
class _OrderedReader(Source):
    """Runs ``self._produce(put)`` on a :class:`~edgecv.runtimes.streaming.workers.Producer` thread;
    iteration yields its frames in order."""

    def __init__(self, *, prefetch: int = 8) -> None:
        super().__init__()
        self._prefetch = prefetch
        self._stop = threading.Event()  # also seen by ``_produce`` loops between frames
        self._producer: Producer[Frame] | None = None

    def _produce(self, put: Callable[[Any], bool]) -> None:
        raise NotImplementedError

    def _reader(self) -> Producer[Frame]:
        if self._producer is None:  # created here: subclasses set ``name`` after __init__
            self._producer = Producer(self._produce, maxsize=self._prefetch, name=f"edgecv-reader-{self.name}",
                                      stop=self._stop, on_put=self._notify)
        return self._producer

    def __iter__(self) -> Iterator[Frame]:
        return iter(self._reader())

    def poll(self) -> Frame | None:
        """The next frame in order if the reader has it ready (never skips one)."""
        return self._reader().poll()

    @property
    def pending(self) -> bool:
        return self._producer is not None and self._producer.pending

    @property
    def exhausted(self) -> bool:
        return self._producer is not None and self._producer.finished

    def request_stop(self) -> None:
        self._stop.set()

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
    decodable frame. ``realtime``: frames come at the file's own frame rate (a recorded camera);
    ``fps_limit``: at most F frames per second. Either way no frame is ever dropped."""

    def __init__(self, path: str | os.PathLike[str], *, stride: int = 1, prefetch: int = 8,
                 decode_threads: int | None = 1, realtime: bool = False, fps_limit: float | None = None) -> None:
        super().__init__(prefetch=prefetch)
        self.realtime, self.fps_limit = realtime, fps_limit
        self._gate = RateGate(fps_limit) if fps_limit else None
        self._t0: float | None = None
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
                if index % self.stride == 0 and not self._pace(index):
                    return
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

    @property
    def interval_s(self) -> float | None:
        """Paced files only (--realtime, --fps-limit); as fast as possible has no interval."""
        rates = ([self.fps / self.stride] if self.realtime and self.fps else []) + \
            ([self.fps_limit] if self.fps_limit else [])
        return 1.0 / min(rates) if rates else None

    def _pace(self, index: int) -> bool:
        """Wait until frame ``index`` is due (``realtime``: the file's clock; ``fps_limit``: the
        rate cap); False once stopping was requested."""
        if not self.realtime and self._gate is None:
            return True
        delay = 0.0
        if self.realtime and self.fps:
            self._t0 = time.perf_counter() if self._t0 is None else self._t0
            delay = self._t0 + index / self.fps - time.perf_counter()
        if self._gate is not None:
            delay = max(delay, self._gate.delay_s())
        if delay > 0 and self._stop.wait(delay):
            return False
        if self._gate is not None:
            self._gate.admit()
        return True

    def close(self) -> None:
        """Stop the reader; release the capture here when no reader thread holds it (closed before
        iteration, or already finished) -- a thread still inside a read releases it itself."""
        super().close()
        if self._producer is None or not self._producer.alive:
            self._cap.release()


# ----------------------------------------------------------------------------- factory
def is_video(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def open_source(inputs: Sequence[str | os.PathLike[str]] = (), *, camera: int | None = None,
                stride: int = 1, retries: int = 5, fps_limit: float | None = None,
                realtime: bool = False) -> Source:
    """Pick the source for the CLI: a camera, one URL, one video file, or images/folders
    (several streams at once: :func:`open_stream`, one per stream)."""
    if camera is not None:
        return open_camera(camera, retries=retries, stride=stride, fps_limit=fps_limit)
    if not inputs:
        raise InputError("no input: expected image/folder/video paths, a stream URL, --camera N or --text")
    if len(inputs) == 1 and is_url(str(inputs[0])):
        return open_url(str(inputs[0]), retries=retries, stride=stride, fps_limit=fps_limit)
    videos = [p for p in inputs if is_video(p) and not Path(p).is_dir()]
    if videos:
        if len(inputs) > 1:
            raise InputError(f"{videos[0]}: give one video file at a time (got {len(inputs)} inputs)")
        return VideoFileSource(videos[0], stride=stride, realtime=realtime, fps_limit=fps_limit)
    return ImageSource(inputs)


def open_stream(spec: str | int, *, stride: int = 1, retries: int = 5, fps_limit: float | None = None,
                realtime: bool = False) -> Source:
    """One stream of a multi-stream run: a camera index, a URL or a video file. Cameras and URLs
    open on their capture thread (a dead one is retried there, not before the others start)."""
    text = str(spec).strip()
    if isinstance(spec, int) or text.isdigit():
        return open_camera(int(text), retries=retries, stride=stride, fps_limit=fps_limit, open_in_thread=True)
    if is_url(text):
        return open_url(text, retries=retries, stride=stride, fps_limit=fps_limit, open_in_thread=True)
    path = Path(text)
    if path.is_dir() or (path.suffix.lower() in IMAGE_EXTENSIONS):
        raise InputError(f"{text}: images and folders are not streams; expected a camera index, a stream URL or "
                         f"a video file ({'/'.join(VIDEO_EXTENSIONS)})")
    if not is_video(text) and path.is_file():
        raise InputError(f"{text}: not a video file; expected a camera index, a stream URL or a video file "
                         f"({'/'.join(VIDEO_EXTENSIONS)})")
    return VideoFileSource(path, stride=stride, realtime=realtime, fps_limit=fps_limit)


def open_streams(specs: Sequence[str | int], *, stride: int = 1, retries: int = 5, fps_limit: float | None = None,
                 realtime: bool = False) -> list[Source]:
    """:func:`open_stream` for each spec; if one fails (a missing video file), the ones already
    opened are closed before the error propagates (no capture thread left running)."""
    opened: list[Source] = []
    try:
        for spec in specs:
            opened.append(open_stream(spec, stride=stride, retries=retries, fps_limit=fps_limit, realtime=realtime))
    except BaseException:
        for source in opened:
            source.close()
        raise
    return opened
