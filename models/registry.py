"""A tiny model registry: ``register_model``, ``create_model``, ``list_models``, ``get_model_spec``,
``builder_parameters``.

Torch-free on purpose (specs are plain data); the builders it stores import torch.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from edgecv.errors import ModelError

F = TypeVar("F", bound=Callable[..., Any])


class UnknownModelError(ModelError, KeyError):
    """Raised for a model name that is not registered; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class ModelSpec:
    """What the rest of edgecv needs to know about an architecture without building it."""

    name: str
    task: str  # "image" | "text"
    input_size: tuple[int, ...]  # image: (C, H, W); text: (T,) default sequence length
    mean: tuple[float, ...] | None = None  # image normalisation after scaling to [0, 1]
    std: tuple[float, ...] | None = None
    description: str = ""
    torchvision_compatible: bool = False  # state_dict keys/shapes identical to torchvision's


_REGISTRY: dict[str, tuple[Callable[..., Any], ModelSpec]] = {}


def register_model(
    name: str | None = None,
    *,
    task: str,
    input_size: tuple[int, ...],
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    description: str = "",
    torchvision_compatible: bool = False,
) -> Callable[[F], F]:
    """Decorator registering a builder under ``name`` (default: the function's name)."""
    if task not in ("image", "text"):
        raise ValueError(f"task must be 'image' or 'text', got {task!r}")

    def decorator(builder: F) -> F:
        key = name or builder.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} is already registered")
        doc = description or (builder.__doc__ or "").strip().splitlines()[0:1]
        spec = ModelSpec(key, task, tuple(input_size), mean, std,
                         doc if isinstance(doc, str) else "".join(doc), torchvision_compatible)
        _REGISTRY[key] = (builder, spec)
        return builder

    return decorator


def list_models(task: str | None = None) -> list[str]:
    """Registered names, sorted; optionally only ``"image"`` or ``"text"`` models."""
    return sorted(n for n, (_, s) in _REGISTRY.items() if task is None or s.task == task)


def get_model_spec(name: str) -> ModelSpec:
    return _lookup(name)[1]


def get_model_builder(name: str) -> Callable[..., Any]:
    """The registered builder itself (e.g. to see which keyword arguments it accepts)."""
    return _lookup(name)[0]


def builder_parameters(name: str) -> set[str]:
    """Keyword arguments the registered builder accepts, so callers pass only what it understands
    (``input_size``, ``in_channels``, ``dropout``, ...). Unknown names raise ``UnknownModelError``
    listing the valid ones."""
    return set(inspect.signature(get_model_builder(name)).parameters)


def create_model(name: str, **kwargs: Any) -> Any:
    """Build a registered model. The instance remembers how it was built:
    ``model.edgecv_name``, ``model.edgecv_kwargs`` and ``model.edgecv_spec``."""
    builder, spec = _lookup(name)
    try:
        model = builder(**kwargs)
    except TypeError as exc:
        raise ModelError(f"model {name!r}: bad arguments {sorted(kwargs)} ({exc})") from None
    model.edgecv_name = name
    model.edgecv_kwargs = dict(kwargs)
    model.edgecv_spec = spec
    return model


def _lookup(name: str) -> tuple[Callable[..., Any], ModelSpec]:
    if name not in _REGISTRY:
        raise UnknownModelError(f"unknown model {name!r}; valid models: {', '.join(list_models())}")
    return _REGISTRY[name]
