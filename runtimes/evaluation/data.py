"""The labelled data ``edgecv val`` evaluates, and how its class names meet a model's classes.

DATA is a folder per class, a data set root with ``test/`` or ``val/`` inside (``test`` first:
it is the split nobody tuned on), or a CSV/TSV/JSONL table of texts and labels. Reading is
:mod:`edgecv.data`'s, so evaluation sees the same classes in the same order as training and the
exporter's calibration. Class names are matched to a model's labels exactly, then ignoring case,
``_``/``-`` and spaces (a folder ``golden_retriever`` is ImageNet's ``golden retriever``); a
folder that matches no class is an error that lists every such folder, because a silently
dropped class would make the accuracy look better than it is.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgecv.data import is_text_source, read_text_table, scan_image_folder
from edgecv.errors import InputError

SPLITS = ("test", "val")  # preferred sub-folders of a data set root, in this order


@dataclass
class EvalData:
    """Samples (image paths or texts) with class indices into ``classes``."""

    given: Path  # what the user passed
    path: Path  # what is evaluated (DATA, DATA/test or DATA/val)
    kind: str  # "images" | "texts"
    classes: list[str]
    samples: list[str]
    labels: np.ndarray  # (N,) int64 into classes
    skipped: list[str] = field(default_factory=list)  # files that are not images (header check)
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def describe(self) -> str:
        """One line: what is evaluated, how many samples and classes, what was skipped."""
        what = "image folders" if self.kind == "images" else "texts"
        skipped = f"; {len(self.skipped)} unreadable skipped" if self.skipped else ""
        return f"{self.path} ({what}, {len(self.classes)} classes, {len(self.samples)} samples{skipped})"

    def to_dict(self) -> dict[str, Any]:
        return {"given": str(self.given), "path": str(self.path), "kind": self.kind, "classes": list(self.classes),
                "samples": len(self.samples), "counts": np.bincount(self.labels, minlength=len(self.classes)).tolist(),
                "skipped": list(self.skipped), "warnings": list(self.warnings)}


def split_folder(root: Path) -> Path:
    """``root/test`` or ``root/val`` when one of them holds class folders, else ``root``."""
    for name in SPLITS:
        candidate = root / name
        if candidate.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in candidate.iterdir()):
            return candidate
    return root


def load_data(data: str | os.PathLike[str], *, text_column: str = "text", label_column: str = "label") -> EvalData:
    """Read ``data`` (see the module docstring); every problem is a one-line :class:`InputError`."""
    given = Path(data)
    if is_text_source(given):
        table = read_text_table(given, text_column=text_column, label_column=label_column)
        return EvalData(given=given, path=given, kind="texts", classes=list(table.classes), samples=list(table.texts),
                        labels=np.asarray(table.labels, dtype=np.int64), warnings=list(table.warnings))
    if given.is_file():
        raise InputError(f"{given}: not a folder or a .csv/.tsv/.jsonl file (expected DATA/<class>/*.jpg, "
                         f"DATA/test/<class>/..., or a text table)")
    if not given.exists():
        raise InputError(f"{given}: not found (expected a folder per class or a .csv/.tsv/.jsonl file)")
    root = split_folder(given)
    scan = scan_image_folder(root)
    return EvalData(given=given, path=root, kind="images", classes=list(scan.classes),
                    samples=[path for path, _ in scan.samples],
                    labels=np.asarray([label for _, label in scan.samples], dtype=np.int64),
                    skipped=list(scan.skipped), warnings=list(scan.warnings))


def normalise(name: str) -> str:
    """``"Golden_Retriever"`` -> ``"golden retriever"``: the loose form class names are matched in."""
    return " ".join(part for part in re.split(r"[\s_\-]+", name.strip().lower()) if part)


def match_classes(data: EvalData, labels: Sequence[str], *, model: str) -> np.ndarray:
    """(len(data.classes),) index of each data class among the model's ``labels``.

    Raises :class:`InputError` listing every data class the model does not know, and when two
    data classes fall on the same model class (their figures could not be told apart)."""
    exact = {}
    loose = {}
    for i, name in enumerate(labels):
        exact.setdefault(name, i)
        loose.setdefault(normalise(name), i)
    index = [exact.get(name, loose.get(normalise(name), -1)) for name in data.classes]
    missing = [name for name, i in zip(data.classes, index) if i < 0]
    if missing:
        what = "class folders" if data.kind == "images" else "labels"
        shown = ", ".join(labels[:8]) + (f", ... ({len(labels)} in all)" if len(labels) > 8 else "")
        raise InputError(f"{data.path}: {what} not among the classes of {model}: {', '.join(missing)} "
                         f"(model classes: {shown}); give the model's class names with --labels FILE|imagenet "
                         f"or rename them")
    seen: dict[int, str] = {}
    for name, i in zip(data.classes, index):
        if i in seen:
            raise InputError(f"{data.path}: classes {seen[i]!r} and {name!r} both match {labels[i]!r} of {model}; "
                             f"expected one folder per model class")
        seen[i] = name
    return np.asarray(index, dtype=np.int64)


def model_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes on disk of an ONNX file plus the external data files its tensors point to (what
    has to be copied to the device)."""
    import onnx

    p = Path(path)
    total = p.stat().st_size
    with open(p, "rb") as handle:  # no external tensor without a "location" entry: skip the parse
        if b"location" not in handle.read():
            return total
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception:  # noqa: BLE001 - an unreadable file fails later, when it is opened
        return total
    seen: set[Path] = set()
    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        tensors = list(graph.initializer) + [a.t for n in graph.node for a in n.attribute if a.HasField("t")]
        graphs += [a.g for n in graph.node for a in n.attribute if a.HasField("g")]
        for tensor in tensors:
            if tensor.data_location != onnx.TensorProto.EXTERNAL:
                continue
            location = next((e.value for e in tensor.external_data if e.key == "location"), None)
            data = p.parent / location if location else None
            if data is not None and data.is_file() and data not in seen:
                seen.add(data)
                total += data.stat().st_size
    return total
