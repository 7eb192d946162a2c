"""Model architectures (plain PyTorch) and their registry; installed as ``edgecv.models``.

Importing this package registers every architecture (and imports torch).
"""
from __future__ import annotations

from edgecv.models.registry import (
    ModelSpec,
    UnknownModelError,
    create_model,
    get_model_spec,
    list_models,
    register_model,
)
from edgecv.models import simple_cnn  # noqa: F401  (registers)

__all__ = ["ModelSpec", "UnknownModelError", "create_model", "get_model_spec", "list_models", "register_model"]
