"""Side by side: every evaluated model against the first, and which one to ship.

Kept apart from :mod:`evaluation` (which builds the figures) so the rule is easy to find and to
test: a model is recommended when it is the fastest (per-sample p50) of those whose top-1 is
within ``tolerance`` points of the most accurate one. Works on any object with the figures of
:class:`~edgecv.runtimes.evaluation.evaluate.ModelEval` (``name``, ``path``, ``top1``, ``macro_f1``,
``file_bytes``, ``latency.per_image_ms``).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

Scored = Any  # a ModelEval (not imported: evaluation imports this module)


def _speed(first: Scored, other: Scored) -> float | None:
    """How many times faster ``other`` is than ``first`` (ratio of per-image p50 latencies)."""
    a, b = first.latency.per_image_ms, other.latency.per_image_ms
    return a / b if np.isfinite(a) and np.isfinite(b) and b > 0 else None


def describe_delta(points: float, speed: float | None, size: float) -> str:
    """``"-0.4 pt accuracy, 2.1x faster, 0.28x size"``."""
    if speed is None:
        pace = "speed not measured"
    else:
        pace = f"{speed:.1f}x faster" if speed >= 1 else f"{1 / speed:.1f}x slower"
    return f"{points:+.1f} pt accuracy, {pace}, {size:.2f}x size"


def compare(models: Sequence[Scored]) -> list[dict[str, Any]]:
    """Every model against the first: accuracy points, speed and size ratios, as numbers and as
    one sentence."""
    if not models:
        return []
    first = models[0]
    rows = []
    for m in models:
        points = 100 * (m.top1 - first.top1)
        speed = _speed(first, m)
        size = m.file_bytes / first.file_bytes if first.file_bytes else float("nan")
        rows.append({"model": m.name, "vs": first.name, "top1_points": round(points, 3),
                     "macro_f1_delta": round(m.macro_f1 - first.macro_f1, 4),
                     "speedup": None if speed is None else round(speed, 4), "size_ratio": round(size, 4),
                     "text": "reference" if m is first else describe_delta(points, speed, size)})
    return rows


def recommend(models: Sequence[Scored], tolerance: float) -> dict[str, Any]:
    """The fastest model (per-image p50) among those within ``tolerance`` top-1 points of the
    most accurate one; a model whose speed could not be measured is never preferred."""
    best = max(m.top1 for m in models)
    eligible = [m for m in models if 100 * (best - m.top1) <= tolerance + 1e-9]
    timed = [m for m in eligible if np.isfinite(m.latency.per_image_ms)]
    pick = min(timed, key=lambda m: m.latency.per_image_ms) if timed else max(eligible, key=lambda m: m.top1)
    first = models[0]
    text = f"ship {pick.name}: "
    if len(models) == 1:
        text += f"top-1 {pick.top1:.1%}, {pick.latency.per_image_ms:.3f} ms per sample (the only model evaluated)"
    else:
        text += f"the fastest file within {tolerance:g} pt of the best top-1 ({best:.1%})"
        faster = [m for m in models if all(m is not e for e in eligible) and np.isfinite(m.latency.per_image_ms)
                  and m.latency.per_image_ms < pick.latency.per_image_ms]
        if faster:
            text += "; " + ", ".join(f"{m.name} is faster but {100 * (m.top1 - best):+.1f} pt" for m in faster)
        if pick is not first:
            speed = _speed(first, pick)
            text += f"; vs {first.name}: " + describe_delta(100 * (pick.top1 - first.top1), speed,
                                                             pick.file_bytes / max(first.file_bytes, 1))
    return {"model": str(pick.path), "name": pick.name, "tolerance_points": tolerance,
            "best_top1": round(best, 6), "eligible": [m.name for m in eligible], "text": text}
