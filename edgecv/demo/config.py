"""What ``edgecv demo`` was asked to do, its presets, and what a run produced."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgecv.errors import InputError
from edgecv.hardware import usable_cores

MARKER = ".edgecv-demo"  # written first: marks a folder the demo may clear and rewrite
# Everything the demo writes under --out (removed before a rerun, so nothing stale survives).
OWNED = ("data", "train", "video", "stream", "profile", "val", "model.onnx", "model.int8.onnx",
         "model.fp16.onnx", "model.export.json", "summary.json")
STEPS = 5

# Settings per size; the user's --epochs/--img-size/--per-class override them.
FULL = {"epochs": 20, "img_size": 48, "per_class": 600, "video_seconds": 6.0, "profile_runs": 200}
QUICK = {"epochs": 14, "img_size": 48, "per_class": 320, "video_seconds": 2.0, "profile_runs": 30}


@dataclass
class DemoConfig:
    """What ``edgecv demo`` was asked to do; ``None`` fields take the preset's value."""

    out: str = "edgecv-demo"
    model: str = "squeezenet1_1"
    epochs: int | None = None
    img_size: int | None = None
    per_class: int | None = None
    threads: int | None = None  # None -> usable cores - 1 (one core is left to the data loader)
    seed: int = 0
    quick: bool = False
    force: bool = False
    batch_size: int = 32
    lr: float = 1e-3
    min_crop_scale: float = 0.6  # milder than the trainer's 0.25: a crop must keep the shape
    video_seconds: float | None = None
    video_fps: int = 15
    profile_runs: int | None = None

    def resolved(self) -> DemoConfig:
        """A copy with every preset value filled in and checked."""
        preset = QUICK if self.quick else FULL
        values = asdict(self)
        for key, default in preset.items():
            if values.get(key) is None:
                values[key] = default
        if values["threads"] is None:
            values["threads"] = max(1, usable_cores() - 1)
        cfg = DemoConfig(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.epochs is not None and self.epochs < 1:
            raise InputError(f"--epochs {self.epochs}: expected >= 1")
        if self.img_size is not None and self.img_size < 32:
            raise InputError(f"--img-size {self.img_size}: expected >= 32 pixels")
        if self.per_class is not None and self.per_class < 8:
            raise InputError(f"--per-class {self.per_class}: expected >= 8 images per class")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads {self.threads}: expected >= 1")


@dataclass
class DemoResult:
    """What a demo run produced: the summary document and where it was written."""

    out: Path
    summary: dict[str, Any]
    summary_path: Path
    steps: list[dict[str, Any]] = field(default_factory=list)
