"""Training-only image augmentation on BGR uint8 arrays (numpy + OpenCV, no torch).

Random resized crop -> horizontal flip -> light colour jitter, then the *shared*
:func:`edgecv.preprocess.to_tensor`, so colour order, scaling, mean/std and layout are exactly
what evaluation and the deployed runtime use. Evaluation never augments: it calls
:func:`edgecv.preprocess.preprocess_image`.

Every random draw comes from the ``rng`` passed in, which the data set seeds per
(seed, epoch, index): augmentation is reproducible and a resumed run is bit-identical.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edgecv.preprocess import PreprocessSpec, to_tensor


@dataclass(frozen=True)
class TrainAugment:
    """Callable ``(image BGR uint8 (H, W, 3), rng) -> model input array`` for one training image.

    ``scale`` is the range of crop area as a fraction of the image (torchvision's
    RandomResizedCrop uses 0.08-1 for ImageNet; a milder 0.25 default suits small data sets whose
    object fills the frame), ``ratio`` the aspect-ratio range of the crop, ``jitter`` the maximum
    relative change of brightness, contrast and saturation.
    """

    spec: PreprocessSpec
    scale: tuple[float, float] = (0.25, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: bool = True
    jitter: float = 0.2

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = random_resized_crop(image, self.spec.size, rng, scale=self.scale, ratio=self.ratio)
        if self.hflip and rng.random() < 0.5:
            out = out[:, ::-1]
        if self.jitter > 0:
            out = color_jitter(out, rng, strength=self.jitter)
        return to_tensor(np.ascontiguousarray(out), self.spec)


def random_resized_crop(image: np.ndarray, size: tuple[int, int], rng: np.random.Generator, *,
                        scale: tuple[float, float] = (0.25, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> np.ndarray:
    """Crop a random area/aspect of ``image`` and resize it to ``size`` (H, W); the same
    sampling rule as torchvision's RandomResizedCrop (10 tries, then a centre crop)."""
    height, width = image.shape[:2]
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            break
    else:  # fall back to the largest centre crop within the ratio range
        in_ratio = width / height
        if in_ratio < ratio[0]:
            w, h = width, int(round(width / ratio[0]))
        elif in_ratio > ratio[1]:
            h, w = height, int(round(height * ratio[1]))
        else:
            w, h = width, height
        top, left = (height - h) // 2, (width - w) // 2
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
