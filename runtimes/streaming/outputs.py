"""Where stream results go: JSON lines, CSV, an annotated video, a window, and the end summary.

Every sink writes as it goes and flushes, so Ctrl-C / SIGTERM leave complete lines behind;
the annotated video is encoded by a writer thread and renamed into place only when finalised.
"""
from __future__ import annotations

import csv
import functools
import json
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable, Protocol

import cv2
import numpy as np

from edgecv.errors import InputError
from edgecv.runtimes.streaming.overlay import draw_overlay


class Sink(Protocol):
    def write(self, result: Any) -> None: ...
    def close(self) -> None: ...


def _open_text(path: str | os.PathLike[str]) -> tuple[IO[str], bool]:
    if str(path) == "-":
        return sys.stdout, False
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        return open(p, "w", encoding="utf-8", newline=""), True
    except OSError as exc:
        raise InputError(f"{p}: cannot write ({exc.strerror or exc})") from None


class JsonlSink:
    """One JSON object per image/frame: {"source","frame","top_k":[{"label","index","prob"}],"latency_ms"}."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self._fh, self._owned = _open_text(path)
        self.lines = 0

    def write(self, result: Any) -> None:
        self.write_dict(result.to_dict())

    def write_dict(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()  # a signal between frames never leaves a half line
        self.lines += 1

    def close(self) -> None:
        if self._owned and not self._fh.closed:
            self._fh.close()


class CsvSink:
    """Folder results as a table: source, label, index, prob, latency_ms, top_k (JSON); a
    multi-stream run (``streams=True``) adds a leading ``stream`` column."""

    def __init__(self, path: str | os.PathLike[str], *, streams: bool = False) -> None:
        self._fh, self._owned = _open_text(path)
        self._writer = csv.writer(self._fh)
        self._streams = streams
        self._writer.writerow(["stream"] * streams + ["source", "frame", "label", "index", "prob", "latency_ms",
                                                      "top_k"])

    def write(self, result: Any) -> None:
        best = result.top_k[0]
        self._writer.writerow([result.stream] * self._streams + [
            result.source, result.frame, best.label, best.index, f"{best.prob:.6f}", f"{result.latency_ms:.3f}",
            json.dumps([t.to_dict() for t in result.top_k])])
        self._fh.flush()

    def close(self) -> None:
        if self._owned and not self._fh.closed:
            self._fh.close()


class VideoSink:
    """Annotated video written by a thread at ``fps`` (the source's) or, for live sources
    (``fps=None``), at the rate measured over the first frames.

    Frames go to ``.<name>.partial<ext>`` beside the target, renamed over it by :meth:`close`.
    A container holds one frame size, and ``cv2.VideoWriter`` silently drops frames of any other
    size, so a stream that changes resolution mid-way is resized to its first frame's size.
    """

    FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}
    MEASURE_FRAMES, MEASURE_S = 30, 2.0

    def __init__(self, path: str | os.PathLike[str], *, fps: float | None = None, queue_size: int = 8) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in self.FOURCC:
            raise InputError(f"{self.path}: unsupported video extension (expected {', '.join(self.FOURCC)})")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.fps = fps
        self.frames = 0
        self._writer: Any = None
        self._size: tuple[int, int] | None = None  # (width, height) of the first frame, once open
        self._pending: list[tuple[np.ndarray, int]] = []  # (frame, t_ns) while measuring the rate
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name=f"edgecv-video-writer-{self.path.name}", daemon=True)
        self._thread.start()

    def write(self, result: Any) -> None:
        self.write_render(functools.partial(draw_overlay, result.frame_image, result.top_k, fps=result.fps,
                                            latency_ms=result.latency_ms))

    def write_render(self, render: Callable[[], np.ndarray]) -> None:
        """Queue a frame that the writer thread draws by calling ``render()`` (the overlay, or a
        whole mosaic: the drawing stays off the inference loop)."""
        if self._error is not None:
            raise self._error
        self._queue.put((render, time.perf_counter_ns()))

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            if self._error is not None:
                continue
            try:
                render, t_ns = item
                self._emit(render(), t_ns)
            except BaseException as exc:  # noqa: BLE001 - surfaced on the next write/close
                self._error = exc

    def _emit(self, image: np.ndarray, t_ns: int) -> None:
        if self._writer is None and self.fps is None:
            self._pending.append((image, t_ns))
            span = (t_ns - self._pending[0][1]) / 1e9
            if len(self._pending) < self.MEASURE_FRAMES and span < self.MEASURE_S:
                return
            self._open_measured()
            return
        if self._writer is None:
            self._open(image, self.fps or 25.0)
        self._write(image)

    def _write(self, image: np.ndarray) -> None:
        """Write one frame at the container's size (resized if the stream changed resolution)."""
        if (image.shape[1], image.shape[0]) != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames += 1

    def _open_measured(self) -> None:
        frames = self._pending
        span = (frames[-1][1] - frames[0][1]) / 1e9
        self.fps = (len(frames) - 1) / span if len(frames) > 1 and span > 0 else 25.0
        self._open(frames[0][0], self.fps)
        for image, _ in frames:
            self._write(image)
        self._pending = []

    def _open(self, image: np.ndarray, fps: float) -> None:
        h, w = image.shape[:2]
        self._size = (w, h)
        fourcc = cv2.VideoWriter_fourcc(*self.FOURCC[self.path.suffix.lower()])
        # two decimals: MPEG-4 refuses a time base finer than 1/65535, which a measured rate such as
        # 100.123456 fps would ask for (the writer would not open and the run would fail at its end)
        rate = round(max(1.0, min(fps, 240.0)), 2)
        self._writer = cv2.VideoWriter(str(self.tmp), fourcc, rate, (w, h))
        if not self._writer.isOpened():
            raise InputError(f"{self.path}: OpenCV cannot open a video writer for this file")

    def close(self) -> None:
        """Drain the queue, finalise the container and move it into place."""
        if not self._thread.is_alive() and self._writer is None and not self._pending:
            return
        self._queue.put(None)
        self._thread.join()
        if self._pending and self._error is None:
            self._open_measured()
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self.tmp, self.path)
        if self._error is not None:
            raise self._error


class ShowSink:
    """``--show``: an OpenCV window; pressing q or Esc stops the loop."""

    def __init__(self, stop: threading.Event, *, title: str = "edgecv") -> None:
        self.stop, self.title = stop, title
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            # Qt would abort the whole process (losing every output) instead of raising
            raise InputError("--show: no display (DISPLAY is not set); run headless with --save out.mp4 instead")
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise InputError("--show: this OpenCV build cannot open windows (headless build or no display); "
                             "use --save out.mp4 instead") from None

    def write(self, result: Any) -> None:
        cv2.imshow(self.title, draw_overlay(result.frame_image, result.top_k, fps=result.fps,
                                            latency_ms=result.latency_ms))
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.stop.set()

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
        except cv2.error:
            pass


def format_summary(report: Any, *, verbose: bool = True) -> str:
    """The end-of-run summary: frames, FPS, per-stage p50/p95, dropped and unreadable inputs.

    One image (``verbose=False``) gets one line of timings instead of a table of one-sample
    percentiles: a stage table, "1 frames" and "dropped frames: 0" say nothing about one image."""
    from edgecv.table import format_table

    if not verbose and report.frames == 1 and not report.live and not report.unreadable:
        spent = {name: s["mean_ms"] for name, s in report.stages.items() if s["n"]}
        return (f"1 image in {report.wall_s * 1000:.1f} ms ("
                + ", ".join(f"{name} {ms:.2f} ms" for name, ms in spent.items()) + ")")
    frames = f"{report.frames} frame{'' if report.frames == 1 else 's'}"
    lines = [f"{frames} in {report.wall_s:.2f} s = {report.fps:.1f} FPS "
             f"({report.source}; provider {', '.join(report.providers)}; threads {report.threads or 'default'})"]
    rows = [{"stage": name, "p50_ms": s["p50_ms"], "p95_ms": s["p95_ms"], "mean_ms": s["mean_ms"]}
            for name, s in report.stages.items() if s["n"]]
    if rows:
        lines.append(format_table(rows, [("stage", "stage"), ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms"),
                                         ("mean_ms", "mean ms")],
                                  formatters={k: (lambda v: f"{v:.2f}") for k in ("p50_ms", "p95_ms", "mean_ms")}))
    if report.live:
        age = report.frame_age
        skipped = getattr(report, "skipped", 0)
        lines.append(f"frame age p50 {age['p50_ms']:.1f} ms, p95 {age['p95_ms']:.1f} ms, max {age['max_ms']:.1f} ms; "
                     f"dropped {report.dropped} frames (newest frame kept); reconnects {report.reconnects}"
                     + (f"; skipped {skipped} (--stride/--fps-limit)" if skipped else ""))
    else:
        wait = getattr(report, "input_wait", None) or {}
        if wait.get("n"):
            lines.append(f"inference waited for input: p50 {wait['p50_ms']:.2f} ms, mean {wait['mean_ms']:.2f} ms "
                         f"per batch (near 0 = decode and preprocess keep up)")
        lines.append(f"dropped frames: {report.dropped}")
    lines.append(f"unreadable inputs: {len(report.unreadable)}")
    for item in report.unreadable[:20]:
        lines.append(f"  skipped {item}")
    if report.interrupted:
        lines.append("stopped early (Ctrl-C, SIGTERM or a stop request); outputs were flushed")
    return "\n".join(lines)
