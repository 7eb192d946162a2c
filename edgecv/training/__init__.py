"""Training (imports torch): configuration, data sets and augmentation, the epoch loop,
checkpoints, distributed helpers and the outputs of a run. Public entry: :func:`train`."""
from __future__ import annotations

from edgecv.training.config import TrainConfig
from edgecv.training.trainer import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
