"""edgecv checkpoints: one ``.pt`` file that holds everything needed to rebuild, resume and export.

Written atomically (temp file + rename); read with ``torch.load(weights_only=True)``, so a
checkpoint may only contain tensors and plain Python containers/scalars (no numpy arrays or
pickled objects). Keys of an edgecv checkpoint (``format == "edgecv-checkpoint"``):

    format, version, edgecv_version
    model          registry name, e.g. "mobilenet_v2"
    model_kwargs   builder kwargs, e.g. {"num_classes": 2, "width_mult": 1.0}
    task           "image" | "text"
    state_dict     model weights (no "module." prefixes)
    classes        list of class names (index -> name)
    preprocess     PreprocessSpec.to_dict() (image) or None
    tokenizer      WordTokenizer.to_dict() (text) or None
    epoch, metrics, best_metric, optimizer, scheduler, scaler, rng, config   (training state)

A bare torchvision-format ``state_dict`` is accepted wherever weights are read.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgecv._version import __version__
from edgecv.errors import CheckpointError
from edgecv.io import atomic_path
from edgecv.onnx_file import check_model_path, is_lfs_pointer

CHECKPOINT_FORMAT = "edgecv-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Atomically write an edgecv checkpoint; a crash mid-write leaves the old file intact."""
    import torch

    data = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "edgecv_version": __version__}
    data.update(payload)
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint or bare state dict safely (``weights_only=True``, on CPU)."""
    import torch

    p = check_model_path(path)
    if is_lfs_pointer(p):
        raise CheckpointError(f"{p}: not a checkpoint, it is a Git LFS pointer (run 'git lfs pull')")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # zipfile/pickle/unpickling errors: all mean "unreadable"
        text = " ".join(str(exc).split())
        if "weights_only" in text or "Unsupported global" in text:
            # torch's own text here talks about its 2.6 default change; say what it means for us.
            raise CheckpointError(
                f"{p}: contains Python objects that are not plain weights; edgecv only loads "
                f"tensors and plain containers (weights_only=True) for safety"
            ) from None
        raise CheckpointError(f"{p}: not a readable PyTorch checkpoint ({text[:160]})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{p}: expected a state dict or edgecv checkpoint, got {type(obj).__name__}")
    return obj


def is_edgecv_checkpoint(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT


def extract_state_dict(obj: dict[str, Any], *, source: str = "checkpoint") -> dict[str, Any]:
    """The weights inside an edgecv checkpoint, a ``{"state_dict"|"model": ...}`` wrapper, or a
    bare state dict; DDP's ``module.`` prefixes are removed."""
    import torch

    state = obj
    if is_edgecv_checkpoint(obj):
        state = obj["state_dict"]
    else:
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                state = obj[key]
                break
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{source}: contains no weight tensors (expected a state dict)")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors
