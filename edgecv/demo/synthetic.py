"""Generated data sets for tests, the demo and benchmarks (numpy + OpenCV only, no torch).

Nothing in edgecv downloads data at run time, so everything that has to prove learning or speed
generates its own inputs here, deterministically from a seed:

* :func:`make_shapes_dataset` -- a folder per class of coloured shapes on noisy backgrounds,
  with varied size, position, colour and rotation (a small CNN must look at *shape*, not colour).
* :func:`make_shapes_video` -- a video of one moving, rotating shape at a time, plus a per-frame
  ground-truth JSON beside it.
* :func:`make_text_dataset` -- sentiment-like sentences whose label needs word order: "not"
  directly before (or one intensifier before) an opinion word flips it, so a bag of words cannot
  solve it but an LSTM or attention model can.
"""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from edgecv.errors import InputError

SHAPES = ("circle", "square", "triangle", "star", "cross", "hexagon")
DEFAULT_SHAPE_CLASSES = ("circle", "square", "triangle", "star")
TEXT_CLASSES = ("negative", "neutral", "positive")
_IMAGE_FORMATS = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg", "bmp": ".bmp", "webp": ".webp"}


# ----------------------------------------------------------------------------- shapes
def _polygon(shape: str, cx: float, cy: float, radius: float, angle: float) -> np.ndarray:
    """Vertices (K, 2) int32 of ``shape`` centred at (cx, cy), circumradius ``radius``."""
    if shape == "square":
        angles, radii = np.arange(4) * (np.pi / 2) + np.pi / 4, np.full(4, radius)
    elif shape == "triangle":
        angles, radii = np.arange(3) * (2 * np.pi / 3) - np.pi / 2, np.full(3, radius)
    elif shape == "hexagon":
        angles, radii = np.arange(6) * (np.pi / 3), np.full(6, radius)
    elif shape == "star":
        angles = np.arange(10) * (np.pi / 5) - np.pi / 2
        radii = np.where(np.arange(10) % 2 == 0, radius, radius * 0.42)
    elif shape == "cross":
        # A plus sign: 12 vertices of two overlapping bars of half-width w.
        w, r = radius * 0.33, radius
        pts = np.array([(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r),
                        (-w, w), (-r, w), (-r, -w), (-w, -w)], dtype=np.float64)
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        pts = pts @ rot.T + (cx, cy)
        return np.round(pts * 16).astype(np.int32)
    else:
        raise InputError(f"shape {shape!r}: expected one of {', '.join(SHAPES)}")
    angles = angles + angle
    pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
    return np.round(pts * 16).astype(np.int32)  # 4 fractional bits for cv2's shift=4


def draw_shape(canvas: np.ndarray, shape: str, *, center: tuple[float, float], radius: float,
               angle: float = 0.0, color: Sequence[int] = (255, 255, 255)) -> np.ndarray:
    """Draw a filled, anti-aliased ``shape`` on a BGR uint8 ``canvas`` in place and return it."""
    colour = tuple(int(c) for c in color)
    if shape == "circle":
        c = (int(round(center[0] * 16)), int(round(center[1] * 16)))
        cv2.circle(canvas, c, int(round(radius * 16)), colour, -1, cv2.LINE_AA, 4)
    else:
        pts = _polygon(shape, center[0], center[1], radius, angle)
        cv2.fillPoly(canvas, [pts], colour, cv2.LINE_AA, 4)
    return canvas


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random colour gradient plus Gaussian pixel noise: (H, W, 3) uint8."""
    c0 = rng.uniform(0, 255, size=3)
    c1 = np.clip(c0 + rng.normal(0, 40, size=3), 0, 255)  # a gentle gradient
    t = np.linspace(0.0, 1.0, width if rng.random() < 0.5 else height, dtype=np.float32)
    ramp = c0[None, :] * (1 - t[:, None]) + c1[None, :] * t[:, None]  # (L, 3)
    bg = np.broadcast_to(ramp[None, :, :], (height, width, 3)) if len(t) == width else \
        np.broadcast_to(ramp[:, None, :], (height, width, 3))
    noise = rng.normal(0.0, rng.uniform(2, 12), size=(height, width, 3))
    return np.clip(bg + noise, 0, 255).astype(np.uint8)


def _contrasting_colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A random BGR colour at least 120 (L2 over 0..255 channels) away from the mean background."""
    mean = background.reshape(-1, 3).mean(axis=0)
    for _ in range(50):
        colour = rng.uniform(0, 255, size=3)
        if np.linalg.norm(colour - mean) > 120:
            return colour
    return 255.0 - mean  # pathological grey background: use its complement


def render_shape_image(shape: str, *, size: int | tuple[int, int] = 64,
                       rng: np.random.Generator | None = None) -> np.ndarray:
    """One random image of ``shape``: (H, W, 3) BGR uint8 with random background, colour, size,
    position and rotation. ``size`` is a side length or (H, W)."""
    rng = rng or np.random.default_rng()
    height, width = (size, size) if isinstance(size, int) else size
    side = min(height, width)
    image = _background(rng, height, width)
    radius = rng.uniform(0.26, 0.44) * side
    cx = rng.uniform(radius, width - radius)
    cy = rng.uniform(radius, height - radius)
    draw_shape(image, shape, center=(cx, cy), radius=radius, angle=rng.uniform(0, 2 * np.pi),
               color=_contrasting_colour(rng, image))
    return image


def make_shapes_dataset(out_dir: str | os.PathLike[str], *,
                        classes: Sequence[str] = DEFAULT_SHAPE_CLASSES, per_class: int = 60,
                        size: int = 64, seed: int = 0, fmt: str = "png", split: bool = False,
                        val_fraction: float = 0.25) -> Path:
    """Write a coloured-shapes image set as ``out_dir/<class>/<class>_0000.<fmt>``.

    With ``split=True`` the layout is ``out_dir/train/<class>/...`` and ``out_dir/val/<class>/...``
    (``val_fraction`` of each class, at least one image each). Same seed -> identical files.
    Returns ``out_dir``.
    """
    if fmt.lower() not in _IMAGE_FORMATS:
        raise InputError(f"image format {fmt!r}: expected one of {', '.join(_IMAGE_FORMATS)}")
    if per_class < (2 if split else 1):
        raise InputError(f"per_class={per_class}: expected >= {2 if split else 1}")
    for name in classes:
        if name not in SHAPES:
            raise InputError(f"shape class {name!r}: expected one of {', '.join(SHAPES)}")
    ext = _IMAGE_FORMATS[fmt.lower()]
    root = Path(out_dir)
    n_val = max(1, int(round(per_class * val_fraction))) if split else 0
    for ci, name in enumerate(classes):
        # One stream per class: adding a class never changes the images of the others.
        rng = np.random.default_rng([seed, ci])
        for i in range(per_class):
            image = render_shape_image(name, size=size, rng=rng)
            folder = root / (("val" if i < n_val else "train") if split else "") / name
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{name}_{i:04d}{ext}"
            ok, buf = cv2.imencode(ext, image)
            if not ok:
                raise InputError(f"{path}: OpenCV cannot encode {fmt!r} images")
            buf.tofile(str(path))
    return root


# ----------------------------------------------------------------------------- video
def make_shapes_video(path: str | os.PathLike[str], *, seconds: float = 2.0, fps: int = 15,
                      size: tuple[int, int] = (640, 480), seed: int = 0,
                      classes: Sequence[str] = DEFAULT_SHAPE_CLASSES,
                      segment_seconds: float = 0.5, fourcc: str = "mp4v",
                      radius: tuple[float, float] = (0.15, 0.3)) -> Path:
    """Write a video of one moving, rotating shape at a time (a new class every
    ``segment_seconds``) with ``cv2.VideoWriter``. ``size`` is (width, height) as in OpenCV.
    ``radius`` is the range of shape radii as fractions of the shorter side ((0.26, 0.44)
    matches :func:`make_shapes_dataset`'s images, for a model trained on them).

    Ground truth is written beside the video as ``<stem>.truth.json``:
    ``{"fps", "size", "classes", "frames": [{"frame", "label", "box": [x, y, w, h]}, ...]}``;
    read it with :func:`load_video_truth`. Returns the video path.
    """
    width, height = int(size[0]), int(size[1])
    n_frames = max(1, int(round(seconds * fps)))
    r_low, r_high = float(radius[0]), float(radius[1])
    if not 0 < r_low <= r_high <= 0.5:
        raise InputError(f"radius {radius}: expected 0 < low <= high <= 0.5 (fractions of the shorter side)")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*fourcc), float(fps), (width, height))
    if not writer.isOpened():
        raise InputError(f"{out}: OpenCV cannot write video with fourcc {fourcc!r}")
    rng = np.random.default_rng(seed)
    frames: list[dict[str, Any]] = []
    per_segment = max(1, int(round(segment_seconds * fps)))
    state: dict[str, Any] = {}
    try:
        for f in range(n_frames):
            if f % per_segment == 0:
                side = min(width, height)
                rad = rng.uniform(r_low, r_high) * side
                state = {
                    "label": str(classes[(f // per_segment) % len(classes)]),
                    "bg": _background(rng, height, width), "radius": rad,
                    "pos": np.array([rng.uniform(rad, width - rad), rng.uniform(rad, height - rad)]),
                    "vel": rng.uniform(-1, 1, size=2) * side * 0.6 / fps, "angle": rng.uniform(0, 2 * np.pi),
                    "spin": rng.uniform(-2, 2) / fps,
                }
                state["color"] = _contrasting_colour(rng, state["bg"])
            frame = state["bg"].copy()
            draw_shape(frame, state["label"], center=tuple(state["pos"]), radius=state["radius"],
                       angle=state["angle"], color=state["color"])
            writer.write(frame)
            r = state["radius"]
            x, y = state["pos"]
            box = [int(max(0, x - r)), int(max(0, y - r)), int(min(width, x + r) - max(0, x - r)),
                   int(min(height, y + r) - max(0, y - r))]
            frames.append({"frame": f, "label": state["label"], "box": box})
            # Move and bounce off the borders, keeping the whole shape in view.
            state["pos"] = state["pos"] + state["vel"]
            for axis, limit in ((0, width), (1, height)):
                if not r <= state["pos"][axis] <= limit - r:
                    state["vel"][axis] *= -1
                    state["pos"][axis] = float(np.clip(state["pos"][axis], r, limit - r))
            state["angle"] += state["spin"]
    finally:
        writer.release()
    truth = {"fps": fps, "size": [width, height], "classes": list(classes), "frames": frames}
    out.with_name(out.stem + ".truth.json").write_text(json.dumps(truth) + "\n", encoding="utf-8")
    return out


def load_video_truth(video_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ground truth written by :func:`make_shapes_video` for ``video_path``."""
    p = Path(video_path)
    return json.loads(p.with_name(p.stem + ".truth.json").read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- text
_POSITIVE = ("good", "great", "excellent", "wonderful", "lovely", "fantastic", "pleasant", "superb",
             "enjoyable", "brilliant", "delightful", "charming")
_NEGATIVE = ("bad", "terrible", "awful", "horrible", "boring", "dreadful", "poor", "disappointing",
             "unpleasant", "mediocre", "dull", "annoying")
_NEUTRAL = ("blue", "long", "short", "new", "old", "quiet", "large", "small", "wooden", "french",
            "square", "early")
_SUBJECTS = ("the movie", "the food", "this phone", "the hotel", "our trip", "the service",
             "the book", "the concert", "this laptop", "the game", "my meal", "the room", "the show",
             "the staff", "this camera", "the coffee")
_VERBS = ("was", "is", "seemed", "felt", "looked", "turned out")
_INTENSIFIERS = ("very", "really", "so", "quite", "truly")
_OPENERS = ("", "", "", "honestly", "well", "overall", "to be fair", "i think", "frankly", "sadly", "today")
_CLOSERS = ("", "", "", "!", ".", "to me", "this time", "as expected", "again", "for the price")


def make_text_sentence(rng: np.random.Generator) -> tuple[str, str]:
    """One sentence and its label. Rule: the opinion word decides (positive / negative / none ->
    neutral); a "not" in front of it (optionally with one intensifier between) flips positive and
    negative. Openers like "sadly" are fillers, so only word order around the adjective counts."""
    kind = rng.integers(3)  # 0 negative word, 1 neutral word, 2 positive word
    words = (_NEGATIVE, _NEUTRAL, _POSITIVE)[kind]
    adjective = words[rng.integers(len(words))]
    negated = rng.random() < 0.45
    intensifier = _INTENSIFIERS[rng.integers(len(_INTENSIFIERS))] if rng.random() < 0.4 else ""
    parts = [_OPENERS[rng.integers(len(_OPENERS))], _SUBJECTS[rng.integers(len(_SUBJECTS))],
             _VERBS[rng.integers(len(_VERBS))], "not" if negated else "", intensifier, adjective,
             _CLOSERS[rng.integers(len(_CLOSERS))]]
    text = " ".join(p for p in parts if p).replace(" !", "!").replace(" .", ".")
    if kind == 1:
        label = "neutral"
    else:
        positive = (kind == 2) != negated
        label = "positive" if positive else "negative"
    return text, label


def make_text_dataset(path: str | os.PathLike[str], *, n: int = 600, seed: int = 0, fmt: str | None = None,
                      text_column: str = "text", label_column: str = "label") -> Path:
    """Write ``n`` labelled sentences (see :func:`make_text_sentence`) as CSV, TSV or JSON lines.

    ``fmt`` defaults to the file suffix (``.csv``/``.tsv``/``.jsonl``), else CSV. Returns the path.
    """
    out = Path(path)
    fmt = (fmt or out.suffix.lstrip(".") or "csv").lower()
    if fmt not in ("csv", "tsv", "jsonl"):
        raise InputError(f"text format {fmt!r}: expected 'csv', 'tsv' or 'jsonl'")
    if n < 1:
        raise InputError(f"n={n}: expected >= 1")
    rng = np.random.default_rng(seed)
    rows = [make_text_sentence(rng) for _ in range(n)]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="") as handle:
        if fmt == "jsonl":
            for text, label in rows:
                handle.write(json.dumps({text_column: text, label_column: label}) + "\n")
        else:
            writer = csv.writer(handle, delimiter="," if fmt == "csv" else "\t")
            writer.writerow([text_column, label_column])
            writer.writerows(rows)
    return out
