"""Class names for a model: from its contract, a labels file, or the built-in ImageNet-1k list.

The ImageNet names ship as package data (``imagenet_labels.txt``, 1000 lines in the standard
torchvision index order: 0 = tench ... 999 = toilet tissue), so ``--labels imagenet`` needs no
network on the edge device.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Sequence

from edgecv.errors import InputError

IMAGENET = "imagenet"
_IMAGENET_FILE = Path(__file__).with_name("imagenet_labels.txt")


@functools.lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, index i -> name."""
    names = tuple(line.strip() for line in _IMAGENET_FILE.read_text(encoding="utf-8").splitlines() if line.strip())
    if len(names) != 1000:  # a damaged install; fail loudly rather than mislabel
        raise InputError(f"{_IMAGENET_FILE}: expected 1000 ImageNet class names, found {len(names)}")
    return names


def load_labels(spec: str | os.PathLike[str]) -> list[str]:
    """``"imagenet"`` -> the built-in list; otherwise a text file with one class name per line
    (blank lines ignored; a ``index, name`` / ``index name`` prefix numbering lines 0.. is stripped)."""
    if str(spec).lower() == IMAGENET:
        return list(imagenet_labels())
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"{path}: labels file not found (expected a text file with one class name "
                         f"per line, or 'imagenet')")
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read labels file ({exc})") from None
    names = [ln for ln in lines if ln]
    if not names:
        raise InputError(f"{path}: labels file is empty (expected one class name per line)")
    return _strip_numbering(names)


def _strip_numbering(names: list[str]) -> list[str]:
    """``0, tench`` / ``0 tench`` / ``0: tench`` -> ``tench`` when every line is numbered 0, 1, 2, ..."""
    stripped = []
    for i, name in enumerate(names):
        head, _, rest = name.replace(",", " ", 1).replace(":", " ", 1).partition(" ")
        if head != str(i) or not rest.strip():
            return names
        stripped.append(rest.strip())
    return stripped


def fit_labels(labels: Sequence[str] | None, num_classes: int, *, source: str = "model",
               labels_from: str | None = None) -> list[str]:
    """Labels for ``num_classes`` outputs: given names must match the count; none -> ``class_<i>``.

    ``labels_from`` names where the labels came from (a file), so a mismatch names both inputs."""
    if not labels:
        return [f"class_{i}" for i in range(num_classes)]
    if len(labels) != num_classes:
        given = f"{len(labels)} labels given" + (f" in {labels_from}" if labels_from else "")
        raise InputError(f"{source}: {given} but the model has {num_classes} outputs "
                         f"(expected exactly {num_classes} class names)")
    return list(labels)
