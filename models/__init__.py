"""Model architectures (plain PyTorch) and their registry; installed as ``edgecv.models``.

Importing this package registers every architecture (and imports torch).
"""
from __future__ import annotations

from edgecv.models import (  # noqa: F401  (importing registers the architectures)
    attention,
    lstm,
    mobilenet_v2,
    mobilenet_v3,
    resnet,
    rnn,
    simple_cnn,
    squeezenet,
)
from edgecv.models.registry import (
    ModelSpec,
    UnknownModelError,
    create_model,
    get_model_builder,
    get_model_spec,
    list_models,
    register_model,
)
from edgecv.models.weights import (
    LoadReport,
    freeze_backbone,
    get_classifier,
    head_name,
    head_parameter_names,
    load_weights,
    replace_head,
)

__all__ = [
    "LoadReport",
    "ModelSpec",
    "UnknownModelError",
    "create_model",
    "freeze_backbone",
    "get_model_builder",
    "get_classifier",
    "get_model_spec",
    "head_name",
    "head_parameter_names",
    "list_models",
    "load_weights",
    "register_model",
    "replace_head",
]
