"""Labelled data on disk: a folder per class of images, or a CSV/TSV/JSONL table of texts and labels.

Torch-free, because three layers read the same data: training, the exporter's calibration and
parity samples, and on-device evaluation. Finding problems early and saying them in one line is
the point of this module: an empty class folder, a single class, unreadable images, a missing
column or a label with one example are reported before any work starts. Images that cannot be
decoded are never fatal: they are skipped (by a quick header check up front), counted and listed.

Index -> class name order is the sorted folder names (images) or sorted label strings (text),
so the same data always gives the same class ids.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgecv.errors import InputError
from edgecv.preprocess import IMAGE_EXTENSIONS

TEXT_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")
# Leading bytes of the formats OpenCV decodes here; anything else is skipped without decoding.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"II*\x00", b"MM\x00*")


@dataclass
class ImageFolderData:
    """Result of scanning an image folder: samples as (path, class index) and what was skipped."""

    root: Path
    classes: list[str]
    samples: list[tuple[str, int]]
    skipped: list[str] = field(default_factory=list)  # unreadable files (header check)
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> list[int]:
        out = [0] * len(self.classes)
        for _, label in self.samples:
            out[label] += 1
        return out


@dataclass
class TextData:
    """Texts and integer labels read from a table; ``classes`` are the sorted label strings."""

    path: Path
    texts: list[str]
    labels: list[int]
    classes: list[str]
    warnings: list[str] = field(default_factory=list)


def is_text_source(path: str | os.PathLike[str]) -> bool:
    """True for a ``.csv``/``.tsv``/``.jsonl`` file (text training), False for a folder."""
    p = Path(path)
    return p.suffix.lower() in TEXT_SUFFIXES and not p.is_dir()


def _looks_like_image(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    return any(head.startswith(m) for m in _MAGIC)


def scan_image_folder(root: str | os.PathLike[str], *, classes: Sequence[str] | None = None) -> ImageFolderData:
    """List the images of ``root/<class>/**``; ``classes`` forces the class list (for a val folder).

    Raises :class:`InputError` when ``root`` is missing, has no class folders or no images, or
    fewer than two classes have images. An empty class folder is a warning and is left out.
    """
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"{base}: not a folder (expected DATA_DIR/<class>/*.jpg or a .csv/.tsv/.jsonl file)")
    folders = sorted(d.name for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not folders:
        raise InputError(f"{base}: no class sub-folders (expected {base}/<class_name>/<image files>)")
    found: dict[str, list[Path]] = {}
    for name in folders:
        files = sorted(p for p in (base / name).rglob("*")
                       if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
        found[name] = files
    data = ImageFolderData(root=base, classes=[], samples=[])
    if classes is None:
        empty = [n for n in folders if not found[n]]
        if len(empty) == len(folders):
            raise InputError(f"{base}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)} in "
                             f"{len(folders)} class folders)")
        for name in empty:
            data.warnings.append(f"class folder {base / name} has no images; leaving class {name!r} out")
        class_list = [n for n in folders if found[n]]
    else:
        class_list = list(classes)
        unknown = [n for n in folders if n not in class_list and found[n]]
        if unknown:
            raise InputError(f"{base}: class folders {unknown} are not in the training classes {class_list}")
    if len(class_list) < 2:
        raise InputError(f"{base}: only one class ({class_list[0]!r}); a classifier needs at least two "
                         "class folders")
    data.classes = class_list
    for label, name in enumerate(class_list):
        for path in found.get(name, []):
            if _looks_like_image(path):
                data.samples.append((str(path), label))
            else:
                data.skipped.append(str(path))
    if not data.samples:
        raise InputError(f"{base}: none of the image files could be read")
    return data


def read_text_table(path: str | os.PathLike[str], *, text_column: str = "text",
                    label_column: str = "label") -> TextData:
    """Read texts and labels from CSV, TSV (by suffix) or JSON lines. Empty rows are skipped
    with a warning; a missing column is an :class:`InputError` naming the columns present."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found (expected a .csv, .tsv or .jsonl file)")
    rows: list[dict[str, Any]]
    suffix = p.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson"):
            rows = []
            with open(p, encoding="utf-8") as handle:
                for n, line in enumerate(handle, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError:
                            raise InputError(f"{p}:{n}: not valid JSON (expected one object per line)") from None
            columns = sorted({k for r in rows if isinstance(r, dict) for k in r})
        else:
            with open(p, encoding="utf-8-sig", newline="") as handle:
                reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
                rows = list(reader)
                columns = list(reader.fieldnames or [])
    except UnicodeDecodeError:
        raise InputError(f"{p}: not UTF-8 text (expected a UTF-8 .csv, .tsv or .jsonl file)") from None
    for col, opt in ((text_column, "--text-column"), (label_column, "--label-column")):
        if col not in columns:
            raise InputError(f"{p}: no column {col!r} (columns: {', '.join(map(str, columns)) or 'none'}; "
                             f"choose one with {opt})")
    texts, raw_labels, dropped = [], [], 0
    for r in rows:
        text, label = (r.get(text_column), r.get(label_column)) if isinstance(r, dict) else (None, None)
        if text is None or label is None or not str(text).strip() or str(label).strip() == "":
            dropped += 1
            continue
        texts.append(str(text))
        raw_labels.append(str(label).strip())
    if not texts:
        raise InputError(f"{p}: no rows with both {text_column!r} and {label_column!r}")
    classes = sorted(set(raw_labels))
    if len(classes) < 2:
        raise InputError(f"{p}: only one label ({classes[0]!r}) in column {label_column!r}; "
                         "a classifier needs at least two")
    index = {c: i for i, c in enumerate(classes)}
    data = TextData(path=p, texts=texts, labels=[index[c] for c in raw_labels], classes=classes)
    if dropped:
        data.warnings.append(f"{p}: skipped {dropped} rows with an empty text or label")
    counts = np.bincount(data.labels, minlength=len(classes))
    singles = [classes[i] for i in range(len(classes)) if counts[i] == 1]
    if singles:
        data.warnings.append(f"{p}: labels with only one example (training only, never validated): "
                             f"{', '.join(singles[:10])}{' ...' if len(singles) > 10 else ''}")
    return data
