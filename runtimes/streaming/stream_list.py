"""Which streams a run reads, and what each is called.

``--camera`` (repeatable), several INPUTS and ``--streams FILE`` name the streams of a
multi-stream run; :func:`stream_specs` merges them (None: one source, the classic loop) and
:func:`read_stream_list` parses the file, refusing a bad line with one line that names the file
and the line, before any camera is opened. :func:`stream_ids` gives every stream a short,
file-name-safe id: it is the ``stream`` field of the JSON lines and the suffix of
``--save out.mp4`` -> ``out_<id>.mp4``.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

from edgecv.errors import InputError
from edgecv.io import read_text_lines
from edgecv.preprocess import IMAGE_EXTENSIONS
from edgecv.runtimes.streaming.live import is_url
from edgecv.runtimes.streaming.sources import VIDEO_EXTENSIONS, is_video

EXPECTED = "expected a camera index, a stream URL (rtsp://, http://, ...) or a video file"


def read_stream_list(path: str | os.PathLike[str]) -> list[str]:
    """``--streams FILE``: one source per line; ``#`` starts a comment (a whole line, or after
    whitespace: ``rtsp://cam/1  # door``); blank lines are ignored."""
    p = Path(path)
    specs: list[str] = []
    for number, line in read_text_lines(p, option="--streams", expected=f"one source per line ({EXPECTED})"):
        line = re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip()
        if not line:
            continue
        problem = spec_problem(line)
        if problem:
            raise InputError(f"--streams {p}: line {number}: {line!r} {problem}; {EXPECTED}")
        specs.append(line)
    if not specs:
        raise InputError(f"--streams {p}: lists no stream (only blank or comment lines); {EXPECTED}, one per line")
    return specs


def spec_problem(spec: str) -> str | None:
    """Why ``spec`` cannot be a stream, or None when it can (camera index, URL, video file)."""
    if spec.isdigit():
        return None
    if is_url(spec):
        return None if re.match(r"^[a-z0-9]+://\S+$", spec, re.I) else "is not a valid URL"
    if re.fullmatch(r"[+-]?\d+", spec):
        return "is not a camera index (expected 0, 1, ...)"
    path = Path(spec)
    if path.is_dir() or path.suffix.lower() in IMAGE_EXTENSIONS:
        return "is an image or a folder, not a stream"
    if not path.exists():
        return "does not exist" if is_video(spec) else "is not a camera index, a URL or an existing video file"
    if not is_video(spec):
        return f"is not a video file ({'/'.join(VIDEO_EXTENSIONS)})"
    return None


def stream_specs(inputs: Sequence[str], *, cameras: Sequence[int] = (),
                 streams_file: str | os.PathLike[str] | None = None, mosaic: Any = None) -> list[str] | None:
    """The streams of a multi-stream run in the order given (cameras, INPUTS, then the file's
    lines), or None when the run has one source (or only images/folders): that keeps the classic
    one-source loop and its outputs exactly as they were. A ``--mosaic`` makes even one stream a
    multi-stream run (the mosaic is its output); images cannot have one."""
    listed = read_stream_list(streams_file) if streams_file is not None else []
    streamish = [s for s in inputs if is_url(s) or (is_video(s) and not Path(s).is_dir())]
    if streams_file is None and not cameras and not streamish:
        if mosaic is not None and inputs:
            raise InputError(f"--mosaic {mosaic}: needs camera, stream or video inputs, not images")
        return None  # images and folders: the ordered, batched image path
    if streams_file is None and len(cameras) + len(inputs) <= 1 and mosaic is None:
        return None
    specs = [str(c) for c in cameras] + [str(s) for s in inputs] + listed
    for spec in specs:
        problem = spec_problem(spec)
        if problem:
            raise InputError(f"{spec}: {problem}; several streams given, so every input must be a stream: {EXPECTED}")
    return specs


def stream_ids(sources: Sequence[Any]) -> list[str]:
    """Short unique ids from the sources' names: ``camera 0`` -> ``cam0``, a video -> its file
    stem, a URL -> host and path (``rtsp://10.0.0.5/live/1`` -> ``10.0.0.5_live_1``,
    ``http://cam:8080/video.mjpg`` -> ``cam_8080_video``); a clash
    gets ``-2``, ``-3``."""
    ids: list[str] = []
    for i, source in enumerate(sources):
        name = str(getattr(source, "name", source))
        camera = re.fullmatch(r"camera (\d+)", name)
        if camera:
            base = f"cam{camera.group(1)}"
        elif is_url(name):  # host, port and path; no query, no file extension
            rest = re.split(r"[?#]", name.split("://", 1)[1].split("@")[-1], maxsplit=1)[0]
            base = re.sub(r"[^A-Za-z0-9.\-]+", "_", re.sub(r"(?<=[^/])\.[A-Za-z0-9]{1,5}$", "", rest))
        else:
            base = re.sub(r"[^A-Za-z0-9.\-]+", "_", Path(name).stem)
        base = base.strip("_.-")[:40] or f"s{i}"
        unique, n = base, 1
        while unique in ids:
            n += 1
            unique = f"{base}-{n}"
        ids.append(unique)
    return ids


def per_stream_path(path: str | os.PathLike[str], stream_id: str) -> Path:
    """``--save out.mp4`` for stream ``cam1`` -> ``out_cam1.mp4`` (same folder, same container)."""
    p = Path(path)
    return p.with_name(f"{p.stem}_{stream_id}{p.suffix}")
