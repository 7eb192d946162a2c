"""What is being exported: a model in eval mode plus everything the contract needs about it.

Two sources: an edgecv checkpoint (architecture, kwargs, classes, preprocessing and tokenizer are
inside it), or a bare torchvision-format state dict with ``--model NAME --num-classes N`` (labels:
ImageNet names for 1000 classes, else ``class_0``..; preprocessing: the architecture's defaults).
Random weights only with an explicit ``random_init=True``, and then with a warning.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecv.errors import CheckpointError, InputError, ModelError, short_message
from edgecv.preprocess import PreprocessSpec, default_spec
from edgecv.tokenizer import WordTokenizer


@dataclass
class ExportSource:
    """A model ready to export and the facts that go into its contract."""

    model: Any  # torch.nn.Module in eval mode
    task: str  # "image" | "text"
    architecture: str
    model_kwargs: dict[str, Any]
    labels: list[str]
    source: str  # checkpoint path or "random init"
    spec: PreprocessSpec | None = None  # image models
    tokenizer: WordTokenizer | None = None  # text models
    warnings: list[str] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """(C, H, W) for image models (what the tracing input needs)."""
        if self.spec is None:
            return None
        return tuple(int(d) for d in self.spec.input_shape(1)[1:])

    @property
    def max_len(self) -> int | None:
        """Longest sequence the text model accepts (position table / tokenizer limit)."""
        limits = [getattr(self.model, "max_len", None)]
        if self.tokenizer is not None:
            limits.append(self.tokenizer.max_len)
        limits = [int(v) for v in limits if v]
        return min(limits) if limits else None


def load_source(checkpoint: str | os.PathLike[str] | None = None, *, model_name: str | None = None,
                weights: str | os.PathLike[str] | None = None, num_classes: int | None = None,
                image_size: int | None = None, random_init: bool = False) -> ExportSource:
    """Build the model to export from a checkpoint and/or ``--model``/``--weights`` options."""
    from edgecv.models.checkpoint import is_edgecv_checkpoint, load_checkpoint

    if checkpoint is not None and weights is not None:
        raise InputError("give either a CHECKPOINT argument or --weights, not both")
    path = checkpoint if checkpoint is not None else weights
    if path is None and not random_init:
        raise InputError("nothing to export: give a CHECKPOINT, or --model NAME --weights FILE "
                         "(or --model NAME --random-init for an untrained model)")
    obj = load_checkpoint(path) if path is not None else None
    if obj is not None and is_edgecv_checkpoint(obj):
        return _from_checkpoint(obj, Path(path), model_name=model_name, image_size=image_size)
    if model_name is None:
        raise ModelError(f"{path}: no architecture info (a bare state dict); pass --model NAME "
                         f"(see 'edgecv models')")
    return _from_state_dict(obj, model_name=model_name, source=str(path) if path else "random init",
                            num_classes=num_classes, image_size=image_size)


def _from_checkpoint(obj: dict[str, Any], path: Path, *, model_name: str | None,
                     image_size: int | None) -> ExportSource:
    from edgecv.models import create_model, get_model_spec

    arch = obj.get("model")
    if not isinstance(arch, str) or not arch:
        if model_name is None:
            raise ModelError(f"{path}: checkpoint has no architecture name; pass --model NAME")
        arch = model_name
    elif model_name is not None and model_name != arch:
        raise InputError(f"--model {model_name}: the checkpoint {path} holds a {arch!r} model")
    kwargs = dict(obj.get("model_kwargs") or {})
    task = obj.get("task") or get_model_spec(arch).task
    model = create_model(arch, **kwargs)
    _load(model, obj, source=str(path))
    spec = tokenizer = None
    if task == "image":
        spec = PreprocessSpec.from_dict(obj["preprocess"]) if obj.get("preprocess") else _default_spec(arch)
        if image_size is not None:
            spec = spec.replace(size=[image_size, image_size])
    else:
        if not obj.get("tokenizer"):
            raise CheckpointError(f"{path}: text checkpoint without a tokenizer; cannot export a "
                                  "self-describing text model")
        tokenizer = WordTokenizer.from_dict(obj["tokenizer"])
    classes = [str(c) for c in (obj.get("classes") or [])]
    out = _num_outputs(model, task=task, spec=spec, source=str(path))
    labels = classes or [f"class_{i}" for i in range(out)]
    if len(labels) != out:
        raise CheckpointError(f"{path}: lists {len(labels)} classes but the model has {out} outputs")
    return ExportSource(model=model.eval(), task=task, architecture=arch, model_kwargs=kwargs,
                        labels=labels, source=str(path), spec=spec, tokenizer=tokenizer)


def _from_state_dict(obj: dict[str, Any] | None, *, model_name: str, source: str,
                     num_classes: int | None, image_size: int | None) -> ExportSource:
    from edgecv.models import create_model, get_model_spec

    spec_info = get_model_spec(model_name)
    if spec_info.task == "text":
        raise InputError(f"--model {model_name}: text models need an edgecv checkpoint (it carries "
                         "the tokenizer); bare state dicts are supported for image models only")
    kwargs: dict[str, Any] = {}
    if num_classes is not None:
        kwargs["num_classes"] = int(num_classes)
    model = create_model(model_name, **kwargs)
    warnings: list[str] = []
    if obj is None:
        warnings.append(f"{model_name}: exporting RANDOMLY INITIALISED weights (--random-init); "
                        "its predictions are meaningless")
    else:
        _load(model, obj, source=source)
    spec = _default_spec(model_name)
    if image_size is not None:
        spec = spec.replace(size=[image_size, image_size])
    out = _num_outputs(model, task="image", spec=spec, source=source)
    labels = [f"class_{i}" for i in range(out)]
    if out == 1000:
        try:
            from edgecv.runtimes.labels import imagenet_labels

            labels = list(imagenet_labels())
        except (ImportError, InputError):  # labels file missing from a partial install
            pass
    return ExportSource(model=model.eval(), task="image", architecture=model_name, model_kwargs=kwargs,
                        labels=labels, source=source, spec=spec, warnings=warnings)


def _default_spec(arch: str) -> PreprocessSpec:
    from edgecv.models import get_model_spec

    info = get_model_spec(arch)
    channels, height, width = (tuple(info.input_size) + (224, 224))[:3] if len(info.input_size) >= 3 \
        else (3, 224, 224)
    return default_spec(size=(height, width), channels=channels, mean=info.mean, std=info.std)


def _load(model: Any, obj: dict[str, Any], *, source: str) -> None:
    """Strict weight loading: export must never silently keep a freshly initialised head."""
    from edgecv.models.weights import load_weights

    report = load_weights(model, obj, strict=True)
    if report.skipped:
        arch = getattr(model, "edgecv_name", type(model).__name__)
        raise CheckpointError(f"{source}: classifier head shapes do not fit {arch} "
                              f"({', '.join(report.skipped[:2])}); check --num-classes")


def _num_outputs(model: Any, *, task: str, spec: PreprocessSpec | None, source: str = "model") -> int:
    """Classes the model predicts, from one tiny forward pass (works for any head layout).

    A checkpoint whose preprocessing does not fit its own network (3-channel images for a
    1-channel model, a size the network cannot take) fails here, before any export work, with
    one line naming the input the network got."""
    import torch

    from edgecv.exporters.onnx_export import make_sample_input

    shape = tuple(int(d) for d in spec.input_shape(1)[1:]) if spec is not None else None
    x = make_sample_input(model, task=task, batch=1, input_shape=shape)
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except RuntimeError as exc:
        what = f"its preprocessing gives input {tuple(x.shape)}" if spec is not None else "a sample input"
        raise CheckpointError(f"{source}: {what}, which the network cannot run ({short_message(exc, limit=160)}); "
                              f"expected preprocessing that matches the model's input") from None
    return int(out.reshape(out.shape[0], -1).shape[1])
