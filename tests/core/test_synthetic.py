"""The generated data sets are deterministic, well-formed and follow their documented rules."""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecv.data import read_text_table, scan_image_folder
from edgecv.demo.synthetic import (
    SHAPES,
    load_video_truth,
    make_shapes_dataset,
    make_shapes_video,
    make_text_dataset,
    make_text_sentence,
    render_shape_image,
)
from edgecv.errors import InputError


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.png")):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def test_shapes_dataset_layout_and_determinism(tmp_path):
    a = make_shapes_dataset(tmp_path / "a", per_class=5, size=32, seed=3)
    b = make_shapes_dataset(tmp_path / "b", per_class=5, size=32, seed=3)
    c = make_shapes_dataset(tmp_path / "c", per_class=5, size=32, seed=4)
    assert sorted(d.name for d in a.iterdir()) == ["circle", "square", "star", "triangle"]
    assert len(list(a.rglob("*.png"))) == 20
    assert _digest(a) == _digest(b) != _digest(c)
    image = cv2.imread(str(next(a.rglob("*.png"))))
    assert image.shape == (32, 32, 3)


def test_shapes_dataset_split_and_formats(tmp_path):
    root = make_shapes_dataset(tmp_path / "s", classes=("circle", "cross"), per_class=8, size=24,
                               split=True, fmt="jpg", val_fraction=0.25)
    assert len(list((root / "train" / "cross").glob("*.jpg"))) == 6
    assert len(list((root / "val" / "circle").glob("*.jpg"))) == 2
    scan = scan_image_folder(root / "train")
    assert scan.classes == ["circle", "cross"] and not scan.skipped


@pytest.mark.parametrize("kwargs", [{"classes": ("circle", "blob")}, {"fmt": "gif"}, {"per_class": 0}])
def test_shapes_dataset_rejects_bad_arguments(tmp_path, kwargs):
    with pytest.raises(InputError):
        make_shapes_dataset(tmp_path / "x", **kwargs)


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_draws_a_visible_object(shape):
    image = render_shape_image(shape, size=48, rng=np.random.default_rng(0))
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8
    # The shape colour is far from the background, so the image has strong contrast somewhere.
    assert float(image.reshape(-1, 3).std(axis=0).max()) > 20


def test_shapes_video_frames_and_truth(tmp_path):
    path = make_shapes_video(tmp_path / "v.mp4", seconds=1, fps=10, size=(160, 120), seed=1)
    cap = cv2.VideoCapture(str(path))
    frames = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (120, 160, 3)
        frames += 1
    cap.release()
    truth = load_video_truth(path)
    assert frames == len(truth["frames"]) == 10
    assert truth["fps"] == 10 and truth["size"] == [160, 120]
    labels = [f["label"] for f in truth["frames"]]
    assert labels[:5] == ["circle"] * 5 and labels[5:] == ["square"] * 5  # a new class every 0.5 s
    for f in truth["frames"]:
        x, y, w, h = f["box"]
        assert 0 <= x and 0 <= y and x + w <= 160 and y + h <= 120


@pytest.mark.parametrize("suffix", ["csv", "tsv", "jsonl"])
def test_text_dataset_formats_read_back(tmp_path, suffix):
    path = make_text_dataset(tmp_path / f"t.{suffix}", n=60, seed=2)
    table = read_text_table(path)
    assert len(table.texts) == 60
    assert table.classes == ["negative", "neutral", "positive"]
    assert make_text_dataset(tmp_path / f"u.{suffix}", n=60, seed=2).read_bytes() == path.read_bytes()


def test_text_rule_needs_word_order():
    rng = np.random.default_rng(0)
    rows = [make_text_sentence(rng) for _ in range(3000)]
    counts = {label: sum(1 for _, l in rows if l == label) for label in ("negative", "neutral", "positive")}
    assert min(counts.values()) > 800  # roughly balanced
    negated_positive = [(t, l) for t, l in rows if " not " in f" {t} " and any(
        f" {w}" in f" {t}".split("not", 1)[1] for w in ("good", "great", "excellent"))]
    assert negated_positive and all(label == "negative" for _, label in negated_positive)
    plain = [(t, l) for t, l in rows if " not " not in f" {t} " and t.split()[-1] in ("good", "great")]
    assert plain and all(label == "positive" for _, label in plain)
