"""Loading ``.onnx`` files with one-line errors for the ways they go wrong in the field."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgecv.errors import InputError, ModelError, short_message


def check_model_path(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` if it is a non-empty regular file; otherwise raise a one-line error."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, expected a model file")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: file is empty")
    return p


def is_lfs_pointer(path: Path) -> bool:
    """True for a Git LFS pointer file (a clone without ``git lfs pull``), a common field mistake."""
    with open(path, "rb") as handle:
        return handle.read(64).startswith(b"version https://git-lfs")


def load_onnx(path: str | os.PathLike[str], *, load_external_data: bool = True) -> Any:
    """``onnx.load`` with clear errors for missing, empty, Git LFS pointer, text and truncated files."""
    import onnx

    p = check_model_path(path)
    if is_lfs_pointer(p):
        raise ModelError(f"{p}: not an ONNX model, it is a Git LFS pointer (run 'git lfs pull')")
    try:
        model = onnx.load(str(p), load_external_data=load_external_data)
    except Exception as exc:  # protobuf raises DecodeError / RuntimeError variants
        raise ModelError(f"{p}: not a valid ONNX model ({short_message(exc, limit=160)})") from None
    if not model.HasField("graph") or not model.graph.node:
        raise ModelError(f"{p}: not a valid ONNX model (no graph nodes; truncated or not ONNX)")
    return model


def graph_inputs(model: Any) -> list[Any]:
    """Real graph inputs: old exporters also list initializers (weights) as inputs."""
    weights = {init.name for init in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in weights]
