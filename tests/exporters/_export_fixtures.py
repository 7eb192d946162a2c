"""Helpers shared by the exporter tests (imported via sys.path like tests/runtimes' fixtures)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecv.models.checkpoint import save_checkpoint
from edgecv.preprocess import default_spec
from edgecv.tokenizer import WordTokenizer

SHAPES = ["circle", "square", "triangle", "star"]
IMAGE_SIZE = 32


def image_checkpoint(path: Path, model: Any, *, size: int = IMAGE_SIZE,
                     classes: list[str] | None = None) -> Path:
    classes = classes or SHAPES
    return save_checkpoint({
        "model": model.edgecv_name, "model_kwargs": model.edgecv_kwargs, "task": "image",
        "state_dict": model.state_dict(), "classes": classes,
        "preprocess": default_spec(size=size).to_dict(), "tokenizer": None}, path)


def text_checkpoint(path: Path, model: Any, tokenizer: WordTokenizer) -> Path:
    return save_checkpoint({
        "model": model.edgecv_name, "model_kwargs": model.edgecv_kwargs, "task": "text",
        "state_dict": model.state_dict(), "classes": ["negative", "neutral", "positive"],
        "preprocess": None, "tokenizer": tokenizer.to_dict()}, path)


def listing(folder: Path) -> list[str]:
    """Every entry (hidden ones too) under ``folder``, for "nothing left behind" checks."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def ort_run(path: Path, x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})
