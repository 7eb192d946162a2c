"""``edgecv profile --pipeline VIDEO``: the real stream loop, timed stage by stage.

Runs :func:`edgecv.runtimes.streaming.stream.run_pipeline` (the same loop ``edgecv infer`` uses, so the
numbers describe what a deployment does) and reshapes its report into rows: decode (capture),
preprocess, inference, postprocess, plus end-to-end FPS. Decode and preprocess run on their own
threads and overlap inference, so end-to-end FPS can exceed 1000 / (sum of stage means).
"""
from __future__ import annotations

import os
from typing import Any

from edgecv.errors import InputError

_STAGE_NAMES = {"capture": "decode"}


def profile_pipeline(model: str | os.PathLike[str], video: str | os.PathLike[str], *, provider: str = "cpu",
                     threads: int | None = None, max_frames: int | None = None,
                     verbose: bool = False) -> dict[str, Any]:
    """Per-stage latency and end-to-end FPS of the stream loop over ``video``."""
    from edgecv.runtimes.streaming.stream import run_pipeline

    if not os.path.isfile(video):
        raise InputError(f"--pipeline {video}: video file not found")
    report = run_pipeline(str(model), str(video), provider=provider, threads=threads, max_frames=max_frames)
    if report.frames == 0:
        raise InputError(f"--pipeline {video}: no frames could be decoded; expected a readable video file")
    stages = []
    means = {name: float(s.get("mean_ms", 0.0)) for name, s in report.stages.items()}
    total = sum(means.values()) or 1.0
    for name, s in report.stages.items():
        stages.append({"stage": _STAGE_NAMES.get(name, name), "n": int(s.get("n", 0)),
                       "p50_ms": s.get("p50_ms"), "p95_ms": s.get("p95_ms"), "mean_ms": s.get("mean_ms"),
                       "max_ms": s.get("max_ms"), "share": 100.0 * means[name] / total})
    return {"source": str(video), "frames": report.frames, "wall_s": report.wall_s, "fps": report.fps,
            "stages": stages, "frame_age": report.frame_age, "dropped": report.dropped,
            "providers": report.providers, "threads": report.threads}
