"""Loading weights into edgecv models, and the classifier-head convention used for transfer learning.

Head convention. Every architecture names its final classification layer in a class attribute
``head_name`` (a dotted module path): ``"classifier.1"`` for MobileNetV2 and SqueezeNet (a 1x1
conv there), ``"classifier.3"`` for MobileNetV3, ``"head"`` for the text models. A model without
the attribute (e.g. a user's own module) falls back to its last ``nn.Linear``/``nn.Conv2d``.
``replace_head`` swaps that layer, ``head_parameter_names``/``freeze_backbone`` let training
update only the head, and ``load_weights(skip_head=True)`` keeps a fresh head when loading a
backbone (e.g. 1000-class ImageNet weights into a 5-class model).

Accepted sources: a path to an edgecv checkpoint or a bare (torchvision-format) state dict, or an
already-loaded dict of either kind. Files are read with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from edgecv.errors import CheckpointError, ModelError
from edgecv.models.checkpoint import (
    extract_state_dict,
    is_edgecv_checkpoint,
    load_checkpoint,
)

_SHOW = 3  # keys named in an error message before "... (+N more)"


@dataclass
class LoadReport:
    """What ``load_weights`` did. ``skipped`` are head keys left freshly initialised."""

    source: str
    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # only non-empty with strict=False
    unexpected: list[str] = field(default_factory=list)  # only non-empty with strict=False
    mismatched: list[str] = field(default_factory=list)  # only non-empty with strict=False

    @property
    def head_skipped(self) -> bool:
        return bool(self.skipped)

    def summary(self) -> str:
        parts = [f"{self.source}: loaded {len(self.loaded)} tensors"]
        if self.skipped:
            parts.append(f"kept a fresh head ({', '.join(self.skipped)})")
        for label, keys in (("missing", self.missing), ("unexpected", self.unexpected),
                            ("wrong shape", self.mismatched)):
            if keys:
                parts.append(f"{len(keys)} {label} ({_preview(keys)})")
        return "; ".join(parts)


def head_name(model: nn.Module) -> str:
    """Dotted name of the model's final classification layer (see the module docstring)."""
    name = getattr(model, "head_name", None)
    if isinstance(name, str):
        return name
    last = None
    for module_name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            last = module_name
    if last is None:
        raise ModelError(f"{type(model).__name__}: has no Linear or Conv2d layer to use as the head")
    return last


def get_classifier(model: nn.Module) -> nn.Module:
    """The head module itself (an ``nn.Linear`` or a 1x1 ``nn.Conv2d``)."""
    return model.get_submodule(head_name(model))


def head_parameter_names(model: nn.Module) -> list[str]:
    """Names (as in ``named_parameters``) of the head's parameters, e.g. ``["classifier.1.weight", ...]``."""
    prefix = head_name(model) + "."
    return [name for name, _ in model.named_parameters() if name.startswith(prefix)]


def freeze_backbone(model: nn.Module, *, frozen: bool = True) -> list[str]:
    """Set ``requires_grad = not frozen`` on every parameter outside the head; returns the
    trainable names. BatchNorm running statistics still update in ``train()`` mode; put the
    backbone in ``eval()`` as well for a truly fixed feature extractor."""
    head = set(head_parameter_names(model))
    for name, param in model.named_parameters():
        param.requires_grad = name in head or not frozen
    return [name for name, param in model.named_parameters() if param.requires_grad]


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Swap the final layer for a freshly initialised one with ``num_classes`` outputs; returns it.

    The new layer keeps the old one's type, input width, kernel, bias, device and dtype, and is
    initialised like torchvision's heads (N(0, 0.01) weights, zero bias).
    """
    if num_classes < 1:
        raise ModelError(f"num_classes must be >= 1, got {num_classes}")
    name = head_name(model)
    old = model.get_submodule(name)
    factory = {"device": old.weight.device, "dtype": old.weight.dtype}
    if isinstance(old, nn.Linear):
        new: nn.Module = nn.Linear(old.in_features, num_classes, bias=old.bias is not None, **factory)
    elif isinstance(old, nn.Conv2d):
        new = nn.Conv2d(old.in_channels, num_classes, old.kernel_size, old.stride, old.padding,
                        bias=old.bias is not None, **factory)
    else:
        raise ModelError(f"{type(model).__name__}: head {name!r} is a {type(old).__name__}, "
                         f"expected Linear or Conv2d")
    nn.init.normal_(new.weight, mean=0.0, std=0.01)
    if new.bias is not None:
        nn.init.zeros_(new.bias)
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
    if isinstance(getattr(model, "num_classes", None), int):
        model.num_classes = num_classes
    if isinstance(getattr(model, "edgecv_kwargs", None), dict) and "num_classes" in model.edgecv_kwargs:
        model.edgecv_kwargs["num_classes"] = num_classes
    return new


def load_weights(model: nn.Module, path_or_state: str | os.PathLike[str] | dict[str, Any], *,
                 skip_head: bool = False, strict: bool = True) -> LoadReport:
    """Load a checkpoint or state dict into ``model`` in place and report what happened.

    ``skip_head=True``, or a head whose shape differs (other ``num_classes``), leaves the head
    freshly initialised: the transfer-learning path. With ``strict=True`` (default) any other
    missing, unexpected or wrongly shaped key raises ``CheckpointError`` naming them and the
    source; with ``strict=False`` what fits is loaded and the rest is listed in the report.
    A checkpoint sharing no key with the model is always an error (wrong architecture).
    """
    if isinstance(path_or_state, dict):
        source, obj = "state dict", path_or_state
    else:
        source, obj = os.fspath(path_or_state), load_checkpoint(path_or_state)
    state = extract_state_dict(obj, source=source)
    arch = getattr(model, "edgecv_name", None) or type(model).__name__
    trained_as = obj.get("model") if is_edgecv_checkpoint(obj) else None

    target = model.state_dict()
    head_prefix = head_name(model) + "."
    head_keys = [k for k in target if k.startswith(head_prefix)]
    head_differs = any(k in state and tuple(state[k].shape) != tuple(target[k].shape) for k in head_keys)
    skipped = head_keys if (skip_head or head_differs) else []
    skip = set(skipped)

    # BatchNorm fills in a missing num_batches_tracked itself (checkpoints from before torch 0.4.1).
    missing = [k for k in target if k not in state and k not in skip
               and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in target]
    mismatched = [k for k in state if k in target and k not in skip
                  and tuple(state[k].shape) != tuple(target[k].shape)]
    usable = {k: v for k, v in state.items() if k in target and k not in skip and k not in mismatched}

    if not usable or (strict and (missing or unexpected or mismatched)):
        raise CheckpointError(_mismatch_message(source, arch, trained_as, missing, unexpected,
                                                mismatched, state, target))
    model.load_state_dict(usable, strict=False)
    return LoadReport(source=source, loaded=sorted(usable), skipped=skipped, missing=missing,
                      unexpected=unexpected, mismatched=mismatched)


def _preview(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (f", ... (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")


def _mismatch_message(source: str, arch: str, trained_as: Any, missing: list[str],
                      unexpected: list[str], mismatched: list[str], state: dict[str, Any],
                      target: dict[str, Any]) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys ({_preview(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys ({_preview(unexpected)})")
    if mismatched:
        shapes = [f"{k} {list(state[k].shape)} vs {list(target[k].shape)}" for k in mismatched]
        parts.append(f"{len(mismatched)} with the wrong shape ({_preview(shapes)})")
    if not parts:
        parts.append("no tensor in it matches the model")
    hint = f" (checkpoint was saved from {trained_as!r})" if trained_as and trained_as != arch else ""
    return f"{source}: does not fit {arch}{hint}: " + ", ".join(parts)
