"""Training data sets (torch tensors at collate time): images decoded and augmented per sample,
texts tokenised up front, and the stratified train/val split. Scanning and reading the data on
disk lives in :mod:`edgecv.data` (torch-free, shared with export and evaluation).

Images that cannot be decoded are never fatal: the header check in :mod:`edgecv.data` skips
most, and a worker that meets a truncated file drops that sample from its batch and counts it.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from edgecv.errors import InputError
from edgecv.preprocess import PreprocessSpec, load_image, preprocess_image


def stratified_split(labels: Sequence[int], *, val_fraction: float, seed: int,
                     names: Sequence[str] | None = None) -> tuple[list[int], list[int], list[str]]:
    """Indices (train, val) with ``val_fraction`` of every class in val (at least one where the
    class has two or more examples). Seeded, and independent of the order classes appear in."""
    if not 0.0 < val_fraction < 1.0:
        raise InputError(f"--val-split {val_fraction}: expected a fraction between 0 and 1")
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(int(label), []).append(i)
    train, val, warnings = [], [], []
    for label in sorted(by_class):
        idx = np.array(by_class[label])
        rng = np.random.default_rng([seed, label])
        idx = idx[rng.permutation(len(idx))]
        n_val = 0 if len(idx) < 2 else min(len(idx) - 1, max(1, int(round(len(idx) * val_fraction))))
        if len(idx) < 2:
            name = repr(names[label]) if names is not None else f"index {label}"
            warnings.append(f"class {name} has only 1 example; it is used for training only")
        val.extend(idx[:n_val].tolist())
        train.extend(idx[n_val:].tolist())
    return sorted(train), sorted(val), warnings


class ImageDataset:
    """Map-style dataset over (path, label) samples. Loads with OpenCV in the DataLoader worker.

    ``transform(image, rng)`` is the training augmentation (see :mod:`edgecv.training.augment`); without
    it the shared runtime preprocessing is used. Augmentation randomness comes from a generator
    seeded by (seed, epoch, index), so results do not depend on worker count or scheduling and a
    resumed run sees exactly the same crops as an uninterrupted one. An unreadable image yields
    ``None`` for its array; :func:`collate_images` drops it and reports the path.
    """

    def __init__(self, samples: Sequence[tuple[str, int]], spec: PreprocessSpec, *,
                 transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
                 seed: int = 0) -> None:
        self.samples = list(samples)
        self.spec = spec
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[np.ndarray | None, int, str]:
        path, label = self.samples[index]
        try:
            image = load_image(path)
        except InputError:
            return None, label, path
        if self.transform is None:
            return preprocess_image(image, self.spec), label, path
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return self.transform(image, rng), label, path


def collate_images(batch: Sequence[tuple[np.ndarray | None, int, str]]) -> dict[str, Any]:
    """Stack arrays into ``x`` (B, C, H, W) float32 and ``y`` (B,) int64; ``bad`` lists the
    paths that failed to decode (left out of the batch)."""
    import torch

    good = [(x, y) for x, y, _ in batch if x is not None]
    bad = [p for x, _, p in batch if x is None]
    if not good:
        return {"x": None, "y": None, "bad": bad}
    x = torch.from_numpy(np.stack([g[0] for g in good]))
    y = torch.tensor([g[1] for g in good], dtype=torch.int64)
    return {"x": x, "y": y, "bad": bad}


# ----------------------------------------------------------------------------- text
class TextDataset:
    """Pre-tokenised texts: item = (ids list, label). Tokenising once up front keeps workers idle."""

    def __init__(self, ids: Sequence[Sequence[int]], labels: Sequence[int]) -> None:
        self.ids = [list(i) for i in ids]
        self.labels = list(labels)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[list[int], int]:
        return self.ids[index], self.labels[index]


def collate_text(batch: Sequence[tuple[list[int], int]]) -> dict[str, Any]:
    """Pad to the longest sequence in the batch: ``x`` (B, T) int64 with 0 = padding, ``y`` (B,)."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    x = torch.zeros((len(batch), width), dtype=torch.int64)
    for row, (ids, _) in enumerate(batch):
        x[row, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
    y = torch.tensor([label for _, label in batch], dtype=torch.int64)
    return {"x": x, "y": y, "bad": []}
