"""Training-only image augmentation on BGR uint8 arrays (numpy + OpenCV, no torch).

Random resized crop -> optional horizontal flip -> colour jitter, then the *shared*
:func:`edgecv.preprocess.to_tensor`, so colour order, scaling, mean/std and layout are exactly
what evaluation and the deployed runtime use. Evaluation never augments: it calls
:func:`edgecv.preprocess.preprocess_image`.

How much to augment is a named preset (``edgecv train --augment``), because the right amount
depends on the data set, and the old single recipe (crops down to 25 % of the area, flips,
jitter) cost small real data sets accuracy at the default 10 epochs (a 10-class handwritten
character set: 96.1 % vs 99.2 % without augmentation). The presets, measured on small real data
sets in ``docs/benchmarks.md`` ("Augmentation presets"):

========  =================  ==================  ==============  =====
preset    crop area          crop aspect ratio   colour jitter   flip
========  =================  ==================  ==============  =====
none      whole image        (the eval resize)   0               no
light     80-100 %           0.9-1.1             none            no
standard  50-100 %           3/4-4/3             +-20 %          no
strong    25-100 %           3/4-4/3             +-30 %          no
========  =================  ==================  ==============  =====

``light`` is the default (:data:`DEFAULT_AUGMENT`): averaged over seeds it is at least as good as
``none`` on every data set measured, at the default epochs. It changes only the framing, never
the colours: where colour tells the classes apart (a ripe fruit, a stained cell, one photo from
another) colour jitter at the default epochs cost accuracy, as flips did. No preset flips: a
mirrored "b" is a "d", a mirrored digit or word is no longer one, so flipping is a decision
about the data, not about strength; ``--hflip`` adds it to any preset (natural photos, where a
mirror image keeps its class).

Every random draw comes from the ``rng`` passed in, which the data set seeds per
(seed, epoch, index): augmentation is reproducible and a resumed run is bit-identical.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edgecv.errors import InputError
from edgecv.preprocess import PreprocessSpec, resize_and_crop, to_tensor


@dataclass(frozen=True)
class AugmentPreset:
    """One ``--augment`` setting. ``scale`` is the crop area as a fraction of the image (None:
    no random crop, the evaluation resize), ``ratio`` the crop's aspect-ratio range, ``jitter``
    the largest relative change of brightness, contrast and saturation."""

    scale: tuple[float, float] | None
    ratio: tuple[float, float]
    jitter: float
    summary: str


AUGMENT_PRESETS: dict[str, AugmentPreset] = {
    "none": AugmentPreset(None, (1.0, 1.0), 0.0, "no augmentation: the evaluation pixels"),
    "light": AugmentPreset((0.8, 1.0), (0.9, 1 / 0.9), 0.0, "crops of 80-100% area, aspect 0.9-1.1, no jitter"),
    "standard": AugmentPreset((0.5, 1.0), (3 / 4, 4 / 3), 0.2, "crops of 50-100% area, aspect 3/4-4/3, jitter 0.2"),
    "strong": AugmentPreset((0.25, 1.0), (3 / 4, 4 / 3), 0.3, "crops of 25-100% area, aspect 3/4-4/3, jitter 0.3"),
}
DEFAULT_AUGMENT = "light"  # never worse than "none" on the small real data sets of docs/benchmarks.md


@dataclass(frozen=True)
class TrainAugment:
    """Callable ``(image BGR uint8 (H, W, 3), rng) -> model input array`` for one training image.

    ``scale`` is the range of crop area as a fraction of the image (None: no random crop, the
    evaluation resize of ``spec``), ``ratio`` the aspect-ratio range of the crop, ``hflip``
    mirrors half of the images, ``jitter`` the maximum relative change of brightness, contrast
    and saturation. The defaults are the ``light`` preset; see :func:`build_augment`.
    """

    spec: PreprocessSpec
    scale: tuple[float, float] | None = (0.8, 1.0)
    ratio: tuple[float, float] = (0.9, 1 / 0.9)
    hflip: bool = False
    jitter: float = 0.0

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.scale is None:
            out = resize_and_crop(image, self.spec)
        else:
            out = random_resized_crop(image, self.spec.size, rng, scale=self.scale, ratio=self.ratio)
        if self.hflip and rng.random() < 0.5:
            out = out[:, ::-1]
        if self.jitter > 0:
            out = color_jitter(out, rng, strength=self.jitter)
        return to_tensor(np.ascontiguousarray(out), self.spec)


def build_augment(spec: PreprocessSpec, preset: str, *, hflip: bool = False,
                  min_crop_scale: float | None = None) -> TrainAugment | None:
    """The training transform for ``--augment preset`` (+ ``--hflip``, ``--min-crop-scale``);
    None when nothing random is left (``none`` without a flip), so training images then go
    through exactly the evaluation preprocessing."""
    if preset not in AUGMENT_PRESETS:
        raise InputError(f"--augment {preset!r}: expected one of {', '.join(AUGMENT_PRESETS)}")
    p = AUGMENT_PRESETS[preset]
    scale = p.scale
    if scale is not None and min_crop_scale is not None:
        scale = (min(min_crop_scale, scale[1]), scale[1])
    if scale is None and not hflip:
        return None
    return TrainAugment(spec=spec, scale=scale, ratio=p.ratio, hflip=hflip, jitter=p.jitter)


def crop_box(height: int, width: int, rng: np.random.Generator, *, scale: tuple[float, float],
             ratio: tuple[float, float]) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random crop; the same sampling rule as torchvision's
    RandomResizedCrop (10 tries, then the largest centre crop within the ratio range)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def random_resized_crop(image: np.ndarray, size: tuple[int, int], rng: np.random.Generator, *,
                        scale: tuple[float, float] = (0.25, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> np.ndarray:
    """Crop a random area/aspect of ``image`` (:func:`crop_box`) and resize it to ``size`` (H, W)."""
    top, left, h, w = crop_box(image.shape[0], image.shape[1], rng, scale=scale, ratio=ratio)
    crop = image[top : top + h, left : left + w]
    out_h, out_w = size
    shrinking = out_w < w and out_h < h
    return cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def color_jitter(image: np.ndarray, rng: np.random.Generator, *, strength: float = 0.2) -> np.ndarray:
    """Random brightness, contrast and saturation, each scaled by a factor in [1-s, 1+s]."""
    brightness, contrast, saturation = rng.uniform(1 - strength, 1 + strength, size=3)
    x = image.astype(np.float32)  # (H, W, C)
    x *= brightness
    mean = x.mean()
    x = (x - mean) * contrast + mean
    if x.ndim == 3 and x.shape[2] == 3:
        # Blend with the grey version (ITU-R 601 luma in BGR order) to change saturation.
        grey = x @ np.array([0.114, 0.587, 0.299], dtype=np.float32)
        x = (x - grey[:, :, None]) * saturation + grey[:, :, None]
    return np.clip(x, 0, 255).astype(np.uint8)
