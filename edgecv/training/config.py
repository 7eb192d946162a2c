"""Everything that defines a training run: :class:`TrainConfig` (saved as ``config.json`` and in
every checkpoint). Kept apart from the run itself so setup, loop and outputs can all read it."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from edgecv.errors import InputError


@dataclass
class TrainConfig:
    """Everything that defines a run; saved as ``config.json`` and inside every checkpoint."""

    data: str | None = None  # image folder, or .csv/.tsv/.jsonl file
    model: str = "mobilenet_v2"
    out: str = "runs/exp"
    epochs: int = 10
    batch_size: int = 32  # per process under torchrun
    lr: float | None = None  # None -> 1e-3 (AdamW) or 0.05 (SGD)
    optimizer: str = "adamw"  # "adamw" | "sgd"
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    grad_clip: float | None = None  # None -> 1.0 for text models, off for image models
    seed: int = 0
    val_split: float = 0.2
    device: str = "auto"
    amp: bool = True  # mixed precision, only ever used on CUDA
    workers: int | None = None  # None -> up to 4 for images, 0 for text
    weights: str | None = None
    freeze_backbone: bool = False
    unfreeze_at: int | None = None  # epoch (1-based) from which the whole model trains
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    # image options
    img_size: int | None = None  # None -> the architecture's default
    resize: str = "stretch"  # "stretch" | "short_side": eval/runtime resize, stored in the checkpoint
    grayscale: bool = False
    augment: bool = True
    min_crop_scale: float = 0.25
    # text options
    text_column: str = "text"
    label_column: str = "label"
    vocab_size: int = 20000
    min_freq: int = 1
    max_len: int = 64
    lower: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """From a saved config (checkpoint, ``config.json``); unknown keys are ignored, so runs
        written by an older or newer edgecv still load."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def validate(self) -> None:
        """Reject impossible settings up front with an error naming the option, before any data
        is read or a process group is joined."""
        if self.epochs < 1:
            raise InputError(f"--epochs {self.epochs}: expected >= 1")
        if self.batch_size < 1:
            raise InputError(f"--batch-size {self.batch_size}: expected >= 1")
        if self.unfreeze_at is not None and not self.freeze_backbone:
            raise InputError("--unfreeze-at needs --freeze-backbone")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise InputError(f"--label-smoothing {self.label_smoothing}: expected 0 <= value < 1")
        if self.resize not in ("stretch", "short_side"):
            raise InputError(f"--resize {self.resize!r}: expected 'stretch' or 'short_side'")
        if not 0.0 < self.min_crop_scale <= 1.0:
            raise InputError(f"--min-crop-scale {self.min_crop_scale}: expected 0 < value <= 1")
