"""Opening the outputs of a stream run (``edgecv infer``'s ``--json``, ``--csv``, ``--save``,
``--mosaic``, ``--show``), its progress bar and its per-image lines.

Kept out of the command so the CLI stays a thin layer of options, and so a failure while
opening one output closes everything already opened -- the other sinks and the sources, whose
capture threads would otherwise keep running -- before the error propagates: no half-written
file and no camera left open.
"""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import IO, Any, Callable, Optional, Sequence, Union

from edgecv.errors import InputError
from edgecv.runtimes.streaming.frames import Source
from edgecv.runtimes.streaming.mosaic import MosaicSink
from edgecv.runtimes.streaming.outputs import CsvSink, JsonlSink, ShowSink, VideoSink
from edgecv.runtimes.streaming.stream_common import close_all
from edgecv.runtimes.streaming.stream_list import per_stream_path, stream_ids

PathLike = Optional[Union[str, os.PathLike]]  # '-' = stdout for --json


def open_sinks(source: Source, stop: threading.Event, *, json_path: PathLike = None, csv_path: PathLike = None,
               save_path: Path | None = None, show: bool = False, stride: int = 1,
               is_images: bool = False) -> list[Any]:
    """The outputs of a one-source run; if one cannot be opened, those already open and the
    source are closed before the error propagates."""
    sinks: list[Any] = []
    try:
        if save_path is not None and is_images:  # before any output file is created
            raise InputError(f"--save {save_path}: --save needs a video, camera or stream input, not images")
        if json_path:
            sinks.append(JsonlSink(json_path))
        if csv_path:
            sinks.append(CsvSink(csv_path))
        if save_path is not None:
            fps = None if source.live or source.fps is None else source.fps / stride
            sinks.append(VideoSink(save_path, fps=fps))
        if show:
            sinks.append(ShowSink(stop))
    except BaseException:
        close_all([source], sinks)
        raise
    return sinks


def open_stream_sinks(sources: Sequence[Source], stop: threading.Event, *,
                      json_path: PathLike = None, csv_path: PathLike = None, save_path: Path | None = None,
                      mosaic_path: Path | None = None, show: bool = False,
                      stride: int = 1) -> tuple[list[Any], dict[str, list[Any]]]:
    """The outputs of a multi-stream run: shared JSON lines / CSV (with a ``stream`` field), the
    mosaic, and per stream (keyed by :func:`stream_ids`) its ``--save`` file (``out_<id>.mp4``, at
    the file's rate for a video, else at the measured rate) and its ``--show`` window. On failure
    everything opened so far, and every source, is closed."""
    ids = stream_ids(sources)
    shared: list[Any] = []
    per_stream: dict[str, list[Any]] = {i: [] for i in ids}
    try:
        if json_path:
            shared.append(JsonlSink(json_path))
        if csv_path:
            shared.append(CsvSink(csv_path, streams=True))
        if mosaic_path is not None:
            shared.append(MosaicSink(mosaic_path, ids))
        for stream_id, source in zip(ids, sources):
            if save_path is not None:
                fps = source.fps / stride if not source.live and source.fps and not source.fps_limit else None
                per_stream[stream_id].append(VideoSink(per_stream_path(save_path, stream_id), fps=fps))
            if show:
                per_stream[stream_id].append(ShowSink(stop, title=f"edgecv {stream_id}"))
    except BaseException:
        close_all(sources, [*shared, *(s for group in per_stream.values() for s in group)])
        raise
    return shared, per_stream


def progress_bar(source: Source, *, stride: int = 1, is_images: bool = False) -> Any:
    """A tqdm bar for files on a terminal (not for live sources or a handful of images)."""
    total = len(source) if is_images else getattr(source, "frame_count", None)  # type: ignore[arg-type]
    if not sys.stdout.isatty() or source.live or (is_images and total is not None and total < 20):
        return None
    from tqdm import tqdm

    return tqdm(total=(-(-total // stride) if total and not is_images else total), unit="frame", leave=False)


def result_printer(out: IO[str], bar: Any, *, lines: bool) -> Callable[[Any], None]:
    """Per result: advance the bar, or (``lines``: images, not quiet) print one line per image."""
    def on_result(result: Any) -> None:
        if bar is not None:
            bar.update(1)
        elif lines:
            ranked = ", ".join(f"{t.label} {t.prob:.3f}" for t in result.top_k)
            print(f"{result.source}  {result.top_k[0].label} {result.top_k[0].prob:.3f}  [{ranked}]", file=out,
                  flush=True)

    return on_result
