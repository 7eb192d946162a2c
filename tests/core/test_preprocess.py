"""The shared preprocessing: geometry, colour order, normalisation, layouts and bad input."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgecv.errors import InputError
from edgecv.preprocess import (
    PreprocessSpec,
    default_spec,
    load_image,
    preprocess_batch,
    preprocess_image,
    resize_and_crop,
)


def test_short_side_resize_then_centre_crop() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, 50:150] = 255  # a white band in the middle that survives the centre crop
    spec = default_spec(size=32)
    out = resize_and_crop(image, spec)
    assert out.shape == (32, 32, 3)
    assert spec.short_side == 37  # round(32 / 0.875)
    assert out.min() == 255  # the crop only sees the centre band


def _whole_frame_then_crop(image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """The definition: resize the whole frame (INTER_AREA shrinking, bilinear enlarging), crop."""
    out_h, out_w = spec.size
    h, w = image.shape[:2]
    ratio = spec.short_side / min(h, w)
    new_w, new_h = max(out_w, round(w * ratio)), max(out_h, round(h * ratio))
    if (new_w, new_h) != (w, h):
        shrink = new_w < w and new_h < h
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    top, left = (new_h - out_h) // 2, (new_w - out_w) // 2
    return image[top:top + out_h, left:left + out_w]


def test_band_resize_gives_the_whole_frame_pixels_bit_for_bit() -> None:
    """Only the rows the crop needs are resized; over camera sizes, odd sizes, grey frames and
    random sizes and specs the pixels equal resizing the whole frame and cropping."""
    rng = np.random.default_rng(0)
    cases = [((h, w), size) for h, w in ((480, 640), (720, 1280), (1080, 1920), (375, 500), (333, 517), (97, 131),
                                          (256, 256), (224, 300)) for size in (224, 96, 48, (224, 160))]
    cases += [((int(rng.integers(20, 900)), int(rng.integers(20, 900))),
               (int(rng.integers(8, 260)), int(rng.integers(8, 260)))) for _ in range(60)]
    for i, ((h, w), size) in enumerate(cases):
        spec = default_spec(size=size) if i % 3 else PreprocessSpec(
            size=(size, size) if isinstance(size, int) else size, resize_short=int(rng.integers(260, 300)))
        image = rng.integers(0, 256, (h, w) if i % 5 == 0 else (h, w, 3), dtype=np.uint8)
        got, want = resize_and_crop(image, spec), _whole_frame_then_crop(image, spec)
        assert got.shape == want.shape and np.array_equal(got, want), (h, w, spec.size, spec.short_side)


def test_stretch_keeps_whole_frame() -> None:
    spec = default_spec(size=(16, 24), resize="stretch")
    out = resize_and_crop(np.zeros((90, 30, 3), np.uint8), spec)
    assert out.shape == (16, 24, 3)


def test_normalisation_rgb_order_and_layout() -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    image[:, :, 2] = 255  # pure red in BGR
    spec = PreprocessSpec(size=(8, 8), resize="stretch", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    x = preprocess_image(image, spec)
    assert x.shape == (3, 8, 8) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], 1.0, atol=1e-6)  # R channel first, (1 - .5) / .5
    np.testing.assert_allclose(x[1:], -1.0, atol=1e-6)
    bgr = preprocess_image(image, spec.replace(color="bgr", layout="nhwc"))
    assert bgr.shape == (8, 8, 3)
    np.testing.assert_allclose(bgr[..., 2], 1.0, atol=1e-6)


def test_gray_and_float16_and_batch() -> None:
    spec = default_spec(size=28, channels=1, resize="stretch").replace(dtype="float16")
    images = [np.full((40, 50, 3), 127, np.uint8), np.full((28, 28), 255, np.uint8)]
    batch = preprocess_batch(images, spec)
    assert batch.shape == (2, 1, 28, 28) and batch.dtype == np.float16
    np.testing.assert_allclose(batch[1].astype(np.float32), 1.0, atol=1e-3)


def test_spec_round_trip() -> None:
    spec = default_spec(size=(48, 64), mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6))
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("kwargs", [{"resize": "zoom"}, {"color": "hsv"}, {"std": (0.0, 1.0, 1.0)},
                                    {"mean": (0.5, 0.5), "std": (0.5, 0.5)}])
def test_bad_spec_is_a_clear_error(kwargs: dict) -> None:
    with pytest.raises(InputError):
        PreprocessSpec(**kwargs)


def test_load_image_reads_and_rejects(tmp_path) -> None:
    good = tmp_path / "ok.png"
    cv2.imwrite(str(good), np.full((5, 6, 3), 9, np.uint8))
    assert load_image(good).shape == (5, 6, 3)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(InputError, match="bad.jpg: not a readable image"):
        load_image(bad)
    with pytest.raises(InputError, match="missing.png"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(InputError, match="expected a non-empty"):
        preprocess_image(np.zeros((0, 0, 3), np.uint8), default_spec())
