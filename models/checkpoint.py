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


# What torch.save writes: a zip archive (torch >= 1.6) or, in the legacy format, a pickle stream.
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = b"\x80"
EXPECTED = "expected a PyTorch checkpoint (.pt/.pth) such as the best.pt or last.pt written by 'edgecv train'"


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint or bare state dict safely (``weights_only=True``, on CPU).

    Files that are not in a torch.save format at all are named for what they are before torch
    sees them: torch would report them as "unsupported pickle operands", which edgecv used to
    mistake for a checkpoint holding Python objects."""
    import torch

    p = check_model_path(path)
    if is_lfs_pointer(p):
        raise CheckpointError(f"{p}: not a checkpoint, it is a Git LFS pointer (run 'git lfs pull')")
    what = _not_a_torch_file(p)
    if what is not None:
        raise CheckpointError(f"{p}: {what}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # zipfile/pickle/unpickling errors: all mean "unreadable"
        raise CheckpointError(f"{p}: {_load_failure(exc)}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{p}: expected a state dict or edgecv checkpoint, got {type(obj).__name__}")
    return obj


def _not_a_torch_file(path: Path) -> str | None:
    """Why ``path`` cannot be a torch.save file (an ONNX model, text, other bytes), or None when
    it starts like one (a zip archive or a pickle) and torch has to judge it."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)):
        return None
    if _is_onnx_model(path, head):
        return ("is an ONNX model, not a PyTorch checkpoint; pass the .pt written by 'edgecv train' "
                "(e.g. runs/exp/best.pt), from which 'edgecv export' makes the .onnx")
    try:
        head.decode("utf-8")
        kind = "a text file"
    except UnicodeDecodeError:
        kind = "neither a zip archive nor a pickle, the formats torch.save writes"
    return f"not a PyTorch checkpoint ({kind}); {EXPECTED}"


def _is_onnx_model(path: Path, head: bytes) -> bool:
    """An ONNX ModelProto opens with its ir_version field (protobuf tag 0x08); parse to be sure."""
    if not (path.suffix.lower() == ".onnx" or head[:1] == b"\x08"):
        return False
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # not protobuf: not ONNX
        return False
    return model.HasField("graph") and len(model.graph.node) > 0


def _load_failure(exc: BaseException) -> str:
    """torch.load's error as a readable reason. Its weights-only text talks about its own 2.6
    default change; what matters here is the line after "WeightsUnpickler error:"."""
    text = " ".join(str(exc).split())
    reason = text.split("WeightsUnpickler error:", 1)[1].strip() if "WeightsUnpickler error:" in text else ""
    if "Unsupported global" in reason:
        name = reason.split("GLOBAL", 1)[-1].split()[0] if "GLOBAL" in reason else "?"
        return (f"contains Python objects that are not plain weights ({name}); edgecv only loads "
                "tensors and plain containers (weights_only=True) for safety")
    if reason:
        return f"not a readable PyTorch checkpoint (corrupt pickle data: {reason.split(' Check the ')[0][:120]})"
    first = text.split(". ")[0] if text else type(exc).__name__
    return f"not a readable PyTorch checkpoint ({first[:160]})"


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
