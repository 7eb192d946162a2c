"""Image-folder and text-table loading: class order, splits, bad files, augmentation."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgecv.data import read_text_table, scan_image_folder
from edgecv.demo.synthetic import make_shapes_dataset
from edgecv.errors import InputError
from edgecv.preprocess import default_spec, load_image, preprocess_image
from edgecv.training.augment import TrainAugment, color_jitter, random_resized_crop
from edgecv.training.datasets import ImageDataset, collate_images, collate_text, stratified_split


@pytest.fixture()
def shapes(tmp_path):
    return make_shapes_dataset(tmp_path / "shapes", classes=("square", "circle", "triangle"), per_class=6, size=24)


def test_classes_are_sorted_folder_names(shapes):
    scan = scan_image_folder(shapes)
    assert scan.classes == ["circle", "square", "triangle"]
    assert scan.counts() == [6, 6, 6] and not scan.skipped and not scan.warnings


def test_empty_class_folder_is_a_warning_and_left_out(shapes):
    (shapes / "aaa_empty").mkdir()
    scan = scan_image_folder(shapes)
    assert scan.classes == ["circle", "square", "triangle"]
    assert len(scan.warnings) == 1 and "aaa_empty" in scan.warnings[0]


def test_single_class_and_no_images_are_errors(tmp_path, shapes):
    for name in ("square", "triangle"):
        for p in (shapes / name).iterdir():
            p.unlink()
    with pytest.raises(InputError, match="only one class"):
        scan_image_folder(shapes)
    (tmp_path / "none" / "a").mkdir(parents=True)
    (tmp_path / "none" / "a" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="no images found"):
        scan_image_folder(tmp_path / "none")
    (tmp_path / "flat").mkdir()
    with pytest.raises(InputError, match="no class sub-folders"):
        scan_image_folder(tmp_path / "flat")
    with pytest.raises(InputError, match="not a folder"):
        scan_image_folder(tmp_path / "missing")


def test_unreadable_images_are_skipped_and_listed(shapes):
    (shapes / "circle" / "garbage.jpg").write_text("this is not a jpeg")
    (shapes / "circle" / "empty.png").write_bytes(b"")
    # A valid PNG header with a truncated body passes the header check but fails to decode.
    good = (shapes / "square" / "square_0000.png").read_bytes()
    (shapes / "square" / "truncated.png").write_bytes(good[:40])
    scan = scan_image_folder(shapes)
    assert sorted(p.rsplit("/", 1)[-1] for p in scan.skipped) == ["empty.png", "garbage.jpg"]
    spec = default_spec(size=16)
    ds = ImageDataset(scan.samples, spec)
    batch = collate_images([ds[i] for i in range(len(ds))])
    assert [p.rsplit("/", 1)[-1] for p in batch["bad"]] == ["truncated.png"]
    assert batch["x"].shape == (18, 3, 16, 16) and batch["y"].tolist().count(1) == 6


def test_val_folder_must_use_training_classes(tmp_path, shapes):
    val = make_shapes_dataset(tmp_path / "val", classes=("circle", "star"), per_class=2, size=24)
    with pytest.raises(InputError, match="not in the training classes"):
        scan_image_folder(val, classes=["circle", "square", "triangle"])


def test_stratified_split_is_seeded_and_per_class():
    labels = [0] * 10 + [1] * 20 + [2] * 1
    train, val, warnings = stratified_split(labels, val_fraction=0.2, seed=1, names=["a", "b", "c"])
    assert sorted(train + val) == list(range(31)) and not set(train) & set(val)
    assert [sum(1 for i in val if labels[i] == c) for c in range(3)] == [2, 4, 0]
    assert warnings == ["class 'c' has only 1 example; it is used for training only"]
    assert stratified_split(labels, val_fraction=0.2, seed=1)[1] == val
    assert stratified_split(labels, val_fraction=0.2, seed=2)[1] != val
    with pytest.raises(InputError, match="--val-split"):
        stratified_split(labels, val_fraction=1.5, seed=0)


def test_eval_dataset_uses_the_runtime_preprocessing(shapes):
    spec = default_spec(size=20, resize="stretch")
    scan = scan_image_folder(shapes)
    x, label, path = ImageDataset(scan.samples, spec)[3]
    np.testing.assert_array_equal(x, preprocess_image(load_image(path), spec))
    assert label == scan.samples[3][1]


def test_augmentation_is_seeded_and_shaped(shapes):
    spec = default_spec(size=16, resize="stretch")
    scan = scan_image_folder(shapes)
    aug = TrainAugment(spec=spec)
    ds = ImageDataset(scan.samples, spec, transform=aug, seed=5)
    a, b = ds[2][0], ds[2][0]
    np.testing.assert_array_equal(a, b)  # same (seed, epoch, index) -> same crop
    ds.epoch = 1
    assert not np.array_equal(a, ds[2][0])
    assert a.shape == (3, 16, 16) and a.dtype == np.float32


def test_crop_and_jitter_primitives():
    image = np.random.default_rng(0).integers(0, 255, size=(40, 60, 3), dtype=np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(20):
        out = random_resized_crop(image, (12, 10), rng, scale=(0.1, 1.0))
        assert out.shape == (12, 10, 3)
    grey = np.full((8, 8, 3), 100, dtype=np.uint8)
    jittered = color_jitter(grey, np.random.default_rng(1), strength=0.3)
    assert jittered.dtype == np.uint8 and abs(int(jittered[0, 0, 0]) - 100) <= 31


@pytest.mark.parametrize("suffix", ["csv", "tsv", "jsonl"])
def test_text_table_formats_and_columns(tmp_path, suffix):
    rows = [("good film", "pos"), ("bad film", "neg"), ("fine", "pos"), ("", "neg")]
    path = tmp_path / f"t.{suffix}"
    if suffix == "jsonl":
        path.write_text("".join(json.dumps({"sentence": t, "y": l}) + "\n" for t, l in rows))
    else:
        sep = "," if suffix == "csv" else "\t"
        path.write_text(f"sentence{sep}y\n" + "".join(f"{t}{sep}{l}\n" for t, l in rows))
    data = read_text_table(path, text_column="sentence", label_column="y")
    assert data.texts == ["good film", "bad film", "fine"] and data.labels == [1, 0, 1]
    assert data.classes == ["neg", "pos"]
    assert any("skipped 1 rows" in w for w in data.warnings)
    assert any("only one example" in w and "neg" in w for w in data.warnings)
    with pytest.raises(InputError, match=r"no column 'text' \(columns: sentence, y; choose one with --text-column\)"):
        read_text_table(path)


def test_text_table_single_label_and_missing_file(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("text,label\na,x\nb,x\n")
    with pytest.raises(InputError, match="only one label"):
        read_text_table(path)
    with pytest.raises(InputError, match="file not found"):
        read_text_table(tmp_path / "nope.csv")


def test_collate_text_pads_with_zero():
    batch = collate_text([([5, 6, 7], 1), ([9], 0)])
    assert batch["x"].tolist() == [[5, 6, 7], [9, 0, 0]] and batch["y"].tolist() == [1, 0]
