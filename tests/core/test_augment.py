"""``--augment`` presets: reproducible from the seed, and each does what docs and --help say.

Torch-free: augmentation is numpy + OpenCV, so these run on any install.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgecv.errors import InputError
from edgecv.preprocess import default_spec, preprocess_image
from edgecv.training.augment import (
    AUGMENT_PRESETS,
    DEFAULT_AUGMENT,
    TrainAugment,
    build_augment,
    crop_box,
)
from edgecv.training.config import TrainConfig

SPEC = default_spec(size=16, resize="stretch")
CROPPING = [name for name, p in AUGMENT_PRESETS.items() if p.scale is not None]


def _photo(seed: int = 0, shape: tuple[int, int] = (40, 52)) -> np.ndarray:
    """A textured BGR image with a left/right asymmetry, so flips and crops show."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    image[:, : shape[1] // 3] = (20, 200, 90)
    return image


def _rng(seed: int, epoch: int = 0, index: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, index])  # what ImageDataset seeds per sample


def test_the_documented_presets_exist_and_light_is_the_default() -> None:
    assert list(AUGMENT_PRESETS) == ["none", "light", "standard", "strong"]
    assert DEFAULT_AUGMENT == "light" and TrainConfig().augment == "light" and TrainConfig().hflip is False
    assert TrainAugment(spec=SPEC) == build_augment(SPEC, DEFAULT_AUGMENT)  # the class defaults are the default
    table = {name: (p.scale, p.jitter) for name, p in AUGMENT_PRESETS.items()}
    assert table == {"none": (None, 0.0), "light": ((0.8, 1.0), 0.0), "standard": ((0.5, 1.0), 0.2),
                     "strong": ((0.25, 1.0), 0.3)}
    # strength grows with the preset: smaller crops, stronger colour changes
    lows = [AUGMENT_PRESETS[n].scale[0] for n in CROPPING]
    assert lows == sorted(lows, reverse=True)
    assert [AUGMENT_PRESETS[n].jitter for n in CROPPING] == sorted(AUGMENT_PRESETS[n].jitter for n in CROPPING)


@pytest.mark.parametrize("preset", CROPPING)
@pytest.mark.parametrize("hflip", [False, True])
def test_same_seed_gives_identical_pixels(preset: str, hflip: bool) -> None:
    aug = build_augment(SPEC, preset, hflip=hflip)
    image = _photo()
    a, b = aug(image, _rng(7, 2, 5)), aug(image, _rng(7, 2, 5))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, 16, 16) and a.dtype == np.float32
    others = [aug(image, _rng(s, 2, 5)) for s in range(8, 12)]
    assert any(not np.array_equal(a, o) for o in others)  # another seed, another crop


def test_none_means_the_evaluation_pixels() -> None:
    assert build_augment(SPEC, "none") is None  # the data set then calls preprocess_image itself
    flip = build_augment(SPEC, "none", hflip=True)  # flips only, nothing else
    image = _photo()
    plain = preprocess_image(image, SPEC)
    mirrored = preprocess_image(np.ascontiguousarray(image[:, ::-1]), SPEC)
    seen = {0: 0, 1: 0}
    for seed in range(40):
        out = flip(image, _rng(seed))
        same, flipped = np.array_equal(out, plain), np.allclose(out, mirrored, atol=1e-6)
        assert same or flipped
        seen[int(flipped)] += 1
    assert seen[0] > 5 and seen[1] > 5  # about half are mirrored


@pytest.mark.parametrize("preset", CROPPING)
def test_no_preset_flips_unless_asked(preset: str) -> None:
    assert build_augment(SPEC, preset).hflip is False
    assert build_augment(SPEC, preset, hflip=True).hflip is True


@pytest.mark.parametrize("preset", CROPPING)
def test_crop_area_and_aspect_stay_in_the_documented_range(preset: str) -> None:
    p = AUGMENT_PRESETS[preset]
    rng = np.random.default_rng(0)
    areas, aspects = [], []
    for _ in range(400):
        top, left, h, w = crop_box(120, 120, rng, scale=p.scale, ratio=p.ratio)
        assert 0 <= top <= 120 - h and 0 <= left <= 120 - w
        areas.append(h * w / 120**2)
        aspects.append(w / h)
    tol = 0.03  # rounding to whole pixels
    assert min(areas) >= p.scale[0] - tol and max(areas) <= 1.0
    assert min(areas) <= p.scale[0] + 0.05  # the whole range is used, down to the smallest crop
    assert min(aspects) >= p.ratio[0] - tol and max(aspects) <= p.ratio[1] + tol


@pytest.mark.parametrize("preset", CROPPING)
def test_colour_jitter_strength_is_as_documented(preset: str) -> None:
    jitter = AUGMENT_PRESETS[preset].jitter
    grey = np.full((24, 24, 3), 100, dtype=np.uint8)  # flat: crops change nothing, only colour does
    raw_spec = SPEC.replace(mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3)  # tensor values back in 0-255 units
    aug = build_augment(raw_spec, preset)
    values = np.array([aug(grey, _rng(s))[0, 0, 0] for s in range(200)])
    assert np.all(np.abs(values - 100) <= 100 * jitter + 1)
    if jitter == 0:
        assert np.all(values == 100)  # light: colours untouched
    else:
        assert np.abs(values - 100).max() >= 100 * jitter * 0.6  # and it really reaches that far


def test_min_crop_scale_overrides_the_preset() -> None:
    aug = build_augment(SPEC, "standard", min_crop_scale=0.9)
    assert aug.scale == (0.9, 1.0) and aug.jitter == AUGMENT_PRESETS["standard"].jitter
    assert build_augment(SPEC, "none", min_crop_scale=0.5) is None
    with pytest.raises(InputError, match="--augment 'heavy'"):
        build_augment(SPEC, "heavy")


def test_config_accepts_presets_and_the_old_booleans() -> None:
    assert TrainConfig(augment=False).augment == "none"  # augment=False / --no-augment
    assert TrainConfig(augment=True).augment == DEFAULT_AUGMENT
    saved = TrainConfig.from_dict({"augment": True, "min_crop_scale": 0.25})  # a config.json of an older edgecv
    saved.validate()
    assert saved.augment == "light" and saved.min_crop_scale == 0.25
    for bad in ({"augment": "heavy"}, {"hflip": "yes"}, {"min_crop_scale": 0.0}):
        with pytest.raises(InputError):
            TrainConfig(**bad).validate()
    TrainConfig(augment="strong", hflip=True, min_crop_scale=None).validate()


def test_the_cli_offers_exactly_the_presets() -> None:
    from click.testing import CliRunner

    from edgecv.cli import cli
    from edgecv.commands.train import AUGMENT_CHOICES

    assert list(AUGMENT_CHOICES) == list(AUGMENT_PRESETS)
    text = CliRunner().invoke(cli, ["train", "--help"]).output
    for name, p in AUGMENT_PRESETS.items():
        assert f"\n    {name} " in text
        if p.scale is not None:
            assert f"{round(p.scale[0] * 100)}-100%" in text
            assert f"[{1 - p.jitter:.1f}, {1 + p.jitter:.1f}]" in text if p.jitter else "colours" in text
    assert "--hflip / --no-hflip" in text and "(the default)" in text
