"""Everything that defines a training run: :class:`TrainConfig` (saved as ``config.json`` and in
every checkpoint). Kept apart from the run itself so setup, loop and outputs can all read it."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields
from typing import Any

from edgecv.errors import InputError
from edgecv.training.augment import AUGMENT_PRESETS, DEFAULT_AUGMENT


@dataclass
class TrainConfig:
    """Everything that defines a run; saved as ``config.json`` and inside every checkpoint."""

    data: str | None = None  # image folder, or .csv/.tsv/.jsonl file
    model: str = "mobilenet_v2"
    out: str | None = None  # None -> the next free runs/exp, runs/exp2, ... (see setup.claim_run_dir)
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
    augment: str = DEFAULT_AUGMENT  # "none" | "light" | "standard" | "strong" (edgecv.training.augment)
    hflip: bool = False  # mirror half the images: natural photos yes, characters/digits/text no
    min_crop_scale: float | None = None  # None -> the preset's smallest crop area
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

    def __post_init__(self) -> None:
        # augment=True/False (the Python API and configs saved before the presets) -> a preset name
        if self.augment is True:
            self.augment = DEFAULT_AUGMENT
        elif self.augment is False:
            self.augment = "none"

    def validate(self) -> None:
        """Reject impossible settings up front with an error naming the option, before any data
        is read or a process group is joined (the optimiser, the split and the data loader would
        otherwise fail much later, with a traceback). ``edgecv train`` enforces the same bounds
        as click ranges; this keeps the Python API to the same promise."""
        for name, low, high, kind in _NUMERIC_BOUNDS:
            value = getattr(self, name)
            if value is None and name in _OPTIONAL:
                continue
            _check_number(name, value, low=low, high=high, kind=kind)
        if self.unfreeze_at is not None and not self.freeze_backbone:
            raise InputError("--unfreeze-at needs --freeze-backbone")
        if self.optimizer not in ("adamw", "sgd"):
            raise InputError(f"--optimizer {self.optimizer!r}: expected 'adamw' or 'sgd'")
        if self.resize not in ("stretch", "short_side"):
            raise InputError(f"--resize {self.resize!r}: expected 'stretch' or 'short_side'")
        if not isinstance(self.augment, str) or self.augment not in AUGMENT_PRESETS:
            raise InputError(f"--augment {self.augment!r}: expected one of {', '.join(AUGMENT_PRESETS)}")
        if not isinstance(self.hflip, bool):
            raise InputError(f"--hflip {self.hflip!r}: expected true or false")


MIN_IMG_SIZE = 8  # smallest input any registered image model accepts (edgecv train's --img-size)
MIN_VOCAB_SIZE = 3  # <pad>, <unk> and at least one real word

# field, lower bound, upper bound, kind; a bound is (value, inclusive). The CLI's click ranges in
# edgecv/commands/train.py say the same.
_NUMERIC_BOUNDS: tuple[tuple[str, tuple[float, bool] | None, tuple[float, bool] | None, type], ...] = (
    ("epochs", (1, True), None, int),
    ("batch_size", (1, True), None, int),
    ("lr", (0.0, False), None, float),
    ("weight_decay", (0.0, True), None, float),
    ("warmup_epochs", (0.0, True), None, float),
    ("label_smoothing", (0.0, True), (1.0, False), float),
    ("grad_clip", (0.0, False), None, float),
    ("seed", (0, True), None, int),
    ("val_split", (0.0, False), (1.0, False), float),
    ("workers", (0, True), None, int),
    ("unfreeze_at", (1, True), None, int),
    ("img_size", (MIN_IMG_SIZE, True), None, int),
    ("min_crop_scale", (0.0, False), (1.0, True), float),
    ("vocab_size", (MIN_VOCAB_SIZE, True), None, int),
    ("min_freq", (1, True), None, int),
    ("max_len", (1, True), None, int),
)
_OPTIONAL = {"lr", "grad_clip", "workers", "unfreeze_at", "img_size", "min_crop_scale"}  # None: the default applies


def _check_number(name: str, value: Any, *, low: tuple[float, bool] | None, high: tuple[float, bool] | None,
                  kind: type) -> None:
    """One numeric option against its range, as one line naming the CLI option and the range."""
    option = "--" + name.replace("_", "-")
    expected = _describe_range(low, high, kind)
    wanted = numbers.Integral if kind is int else numbers.Real
    if not isinstance(value, wanted) or isinstance(value, bool) or not math.isfinite(value):
        raise InputError(f"{option} {value!r}: expected {expected}")
    too_low = low is not None and (value < low[0] if low[1] else value <= low[0])
    too_high = high is not None and (value > high[0] if high[1] else value >= high[0])
    if too_low or too_high:
        raise InputError(f"{option} {value!r}: expected {expected}")


def _describe_range(low: tuple[float, bool] | None, high: tuple[float, bool] | None, kind: type) -> str:
    what = "an integer" if kind is int else "a number"
    parts = []
    if low is not None:
        parts.append(f"{'>=' if low[1] else '>'} {low[0]}")
    if high is not None:
        parts.append(f"{'<=' if high[1] else '<'} {high[0]}")
    return f"{what} {' and '.join(parts)}" if parts else what
