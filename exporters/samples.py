"""Real inputs for parity checks and int8 calibration, prepared exactly as the runtime will.

``--data`` is an image folder (``DIR/<class>/*.jpg`` or a flat folder of images) or a text table
(``.csv``/``.tsv``/``.jsonl`` with ``text`` and ``label`` columns). Images go through the model's
own :class:`~edgecv.preprocess.PreprocessSpec` and texts through its own tokenizer, so the numbers
measured here are the numbers the deployed model will produce. Without ``--data``, random inputs
are generated and every report says so.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from edgecv.errors import InputError
from edgecv.preprocess import (
    IMAGE_EXTENSIONS,
    PreprocessSpec,
    load_image,
    preprocess_image,
)
from edgecv.tokenizer import PAD_ID, WordTokenizer

TEXT_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")


@dataclass
class SampleSet:
    """Model inputs with optional labels (index into the model's labels; -1 = unknown)."""

    task: str
    source: str  # the --data path, or "random"
    real: bool
    images: list[str] = field(default_factory=list)  # image paths (arrays loaded lazily)
    texts: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unreadable files
    random_arrays: np.ndarray | None = None  # (N, ...) when not real

    def __len__(self) -> int:
        if self.random_arrays is not None:
            return len(self.random_arrays)
        return len(self.images) if self.task == "image" else len(self.texts)

    @property
    def has_labels(self) -> bool:
        return any(label >= 0 for label in self.labels)


@dataclass
class SampleSplit:
    """The export's two uses of ``--data``, never sharing a sample: ``parity`` (every stage is
    compared with PyTorch, and int8 accuracy is measured, on these) and ``calibration`` (the
    images static int8 takes its activation ranges from; None when nothing is calibrated). int8
    figures measured on the images it was calibrated on would flatter it."""

    parity: SampleSet
    calibration: SampleSet | None = None
    notes: list[str] = field(default_factory=list)  # e.g. fewer samples than asked for

    def describe(self) -> dict[str, Any]:
        """Counts and sources of both sets, for the export report."""
        out: dict[str, Any] = {"parity": {"samples": len(self.parity), "source": self.parity.source}}
        if self.calibration is not None:
            out["calibration"] = {"samples": len(self.calibration), "source": self.calibration.source,
                                  "disjoint_from_parity": not set(self.calibration.images) & set(self.parity.images)}
        return out


def split_samples(data: str | os.PathLike[str], *, task: str, labels: Sequence[str], verify_size: int,
                  calib_size: int | None, seed: int = 0) -> SampleSplit:
    """Parity samples and (with ``calib_size``) int8 calibration images from ``data``, disjoint.

    With ``data/train`` and ``data/val`` folders, parity comes from val and calibration from train
    (the split the model was trained with). Otherwise both are drawn from one seeded order of the
    folder's images without overlap; when the folder holds fewer than ``verify_size +
    calib_size`` images, calibration gets at most half of them and a note says so."""
    p = Path(data)
    if not p.exists():
        raise InputError(f"--data {p}: not found (expected an image folder or a .csv/.tsv/.jsonl file)")
    if task == "text" or calib_size is None:
        root = p / "val" if task == "image" and _has_train_val(p) else p
        return SampleSplit(find_samples(root, task=task, labels=labels, limit=verify_size, seed=seed))
    if not p.is_dir():
        raise InputError(f"--data {p}: expected an image folder for this image model")
    if _has_train_val(p):
        return SampleSplit(_image_samples(p / "val", labels=labels, limit=verify_size, seed=seed),
                           _image_samples(p / "train", labels=labels, limit=calib_size, seed=seed + 1))
    files = _image_files(p)
    n_calib, n_parity = calib_size, verify_size
    notes = []
    if len(files) < 2:
        raise InputError(f"--data {p}: int8 needs at least 2 images (calibration and the parity check "
                         "must use different ones); add images or give DIR/train and DIR/val")
    if len(files) < verify_size + calib_size:
        n_calib = min(calib_size, len(files) // 2)
        n_parity = min(verify_size, len(files) - n_calib)
        notes.append(f"--data {p} holds {len(files)} images, fewer than --verify-size {verify_size} + "
                     f"--calib-size {calib_size}: int8 is calibrated on up to {n_calib} of them and every "
                     f"stage is checked on up to {n_parity} others")
    order = iter(np.random.default_rng(seed).permutation(len(files)).tolist())
    parity = _pick_images(p, files, order, labels=labels, limit=n_parity)  # the same order, continued:
    calib = _pick_images(p, files, order, labels=labels, limit=n_calib)  # never an image twice
    return SampleSplit(parity, calib, notes)


def _has_train_val(root: Path) -> bool:
    return (root / "train").is_dir() and (root / "val").is_dir()


def find_samples(data: str | os.PathLike[str], *, task: str, labels: Sequence[str], limit: int,
                 seed: int = 0) -> SampleSet:
    """Pick up to ``limit`` samples from ``data`` (seeded, spread over classes).

    Class names from folder names / the label column are matched to ``labels`` by name, so
    accuracy can be measured when the data set uses the model's classes.
    """
    p = Path(data)
    if not p.exists():
        raise InputError(f"--data {p}: not found (expected an image folder or a .csv/.tsv/.jsonl file)")
    if task == "text":
        return _text_samples(p, labels=labels, limit=limit, seed=seed)
    if not p.is_dir():
        raise InputError(f"--data {p}: expected an image folder for this image model")
    return _image_samples(p, labels=labels, limit=limit, seed=seed)


def _image_files(root: Path) -> list[Path]:
    files = sorted(f for f in root.rglob("*")
                   if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
                   and not any(part.startswith(".") for part in f.relative_to(root).parts))
    if not files:
        raise InputError(f"--data {root}: no image files found (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return files


def _image_samples(root: Path, *, labels: Sequence[str], limit: int, seed: int) -> SampleSet:
    files = _image_files(root)
    order = iter(np.random.default_rng(seed).permutation(len(files)).tolist())
    return _pick_images(root, files, order, labels=labels, limit=limit)


def _pick_images(root: Path, files: list[Path], order: Iterator[int], *, labels: Sequence[str],
                 limit: int) -> SampleSet:
    """Take images in ``order`` until ``limit`` decode; ``order`` is consumed, so a second call
    with the same iterator continues where the first stopped (disjoint sets)."""
    index = {name: i for i, name in enumerate(labels)}
    chosen, skipped = [], []
    while len(chosen) < limit:
        i = next(order, None)
        if i is None:
            break
        f = files[int(i)]
        if _decodes(f):
            chosen.append(f)
        else:
            skipped.append(str(f))
    if not chosen and limit > 0:
        raise InputError(f"--data {root}: none of the {len(files)} image files could be read")
    # The class is the nearest folder name that is one of the model's labels (DIR/<class>/x.jpg,
    # DIR/val/<class>/x.jpg ...); -1 when no folder matches.
    sample_labels = [next((index[part] for part in reversed(f.relative_to(root).parts[:-1])
                           if part in index), -1) for f in chosen]
    return SampleSet(task="image", source=str(root), real=True, images=[str(f) for f in chosen],
                     labels=sample_labels, skipped=skipped)


def _decodes(path: Path) -> bool:
    try:
        load_image(path)
    except InputError:
        return False
    return True


def _text_samples(path: Path, *, labels: Sequence[str], limit: int, seed: int) -> SampleSet:
    if path.is_dir() or path.suffix.lower() not in TEXT_SUFFIXES:
        raise InputError(f"--data {path}: expected a .csv, .tsv or .jsonl file for this text model")
    from edgecv.data import read_text_table

    table = read_text_table(path)
    index = {name: i for i, name in enumerate(labels)}
    order = np.random.default_rng(seed).permutation(len(table.texts))[:limit]
    texts = [table.texts[int(i)] for i in order]
    sample_labels = [index.get(table.classes[table.labels[int(i)]], -1) for i in order]
    return SampleSet(task="text", source=str(path), real=True, texts=texts, labels=sample_labels)


def random_samples(*, task: str, n: int, input_shape: Sequence[int] | None = None,
                   vocab_size: int = 100, seq_len: int = 12, seed: int = 0) -> SampleSet:
    """Random inputs when no ``--data`` is given: N(0, 1) images, or id rows with varied padding."""
    rng = np.random.default_rng(seed)
    if task == "text":
        ids = rng.integers(2, max(3, vocab_size), size=(n, seq_len), dtype=np.int64)
        lengths = rng.integers(max(1, seq_len // 3), seq_len + 1, size=n)
        ids[np.arange(seq_len)[None, :] >= lengths[:, None]] = PAD_ID  # right padding
        arrays = ids
    else:
        if input_shape is None:
            raise InputError("random samples for an image model need the input shape (C, H, W)")
        arrays = rng.standard_normal((n, *input_shape)).astype(np.float32)
    return SampleSet(task=task, source="random", real=False, labels=[-1] * n, random_arrays=arrays)


def batch_arrays(samples: SampleSet, *, sizes: Sequence[int], spec: PreprocessSpec | None = None,
                 tokenizer: WordTokenizer | None = None,
                 max_len: int | None = None) -> Iterator[tuple[np.ndarray, list[int]]]:
    """Yield (inputs, labels) batches of the given sizes (the last size repeats until done).

    Text batches alternate between each batch's natural length and that length + 2 (extra
    padding), so at least two sequence lengths are exercised; lengths never exceed ``max_len``.
    """
    n, start, k = len(samples), 0, 0
    while start < n:
        size = sizes[min(k, len(sizes) - 1)]
        stop = min(n, start + size)
        labels = samples.labels[start:stop]
        if samples.random_arrays is not None:
            batch = samples.random_arrays[start:stop]
            if samples.task == "text":
                batch = _repad(batch, extra=2 if k % 2 else 0, max_len=max_len)
        elif samples.task == "image":
            if spec is None:
                raise InputError("image samples need the model's preprocessing spec")
            batch = np.stack([preprocess_image(load_image(p), spec) for p in samples.images[start:stop]])
        else:
            if tokenizer is None:
                raise InputError("text samples need the model's tokenizer")
            batch = _repad(tokenizer.encode_batch(samples.texts[start:stop]),
                           extra=2 if k % 2 else 0, max_len=max_len)
        yield batch, list(labels)
        start, k = stop, k + 1


def _repad(ids: np.ndarray, *, extra: int, max_len: int | None) -> np.ndarray:
    """Trim all-padding columns, then add ``extra`` padding columns (capped at ``max_len``)."""
    used = int(np.max(np.nonzero((ids != PAD_ID).any(axis=0))[0], initial=0)) + 1
    width = used + extra
    if max_len:
        width = min(width, int(max_len))
    out = np.full((ids.shape[0], width), PAD_ID, dtype=np.int64)
    keep = min(width, ids.shape[1])
    out[:, :keep] = ids[:, :keep]
    return out


def describe_source(samples: SampleSet) -> str:
    if not samples.real:
        return f"{len(samples)} random inputs (no --data given)"
    text = f"{len(samples)} samples from {samples.source}"
    if samples.skipped:
        text += f" ({len(samples.skipped)} unreadable skipped)"
    return text


def spec_input_shape(spec: PreprocessSpec) -> tuple[int, ...]:
    """(C, H, W) or (H, W, C) without the batch axis."""
    return tuple(int(d) for d in spec.input_shape(1)[1:])


__all__ = ["SampleSet", "SampleSplit", "split_samples", "find_samples", "random_samples", "batch_arrays",
           "describe_source", "spec_input_shape"]

