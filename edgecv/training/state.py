"""What a training run carries across epochs and across a resume: :class:`RunState` (history and
best epoch), the RNG states and the config a resumed run continues with. Kept apart from the run
loop in :mod:`edgecv.training.trainer`; resuming must be bit-exact, so everything random is saved
(:func:`rng_state`) and restored (:func:`set_rng_state`) with the weights.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.errors import CheckpointError, InputError
from edgecv.training.config import TrainConfig


@dataclass
class RunState:
    """What a run carries from epoch to epoch and saves in every checkpoint, so a resumed run
    continues the same history and best-epoch bookkeeping."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_val_acc: float = -1.0
    best_val_loss: float = float("inf")
    best_epoch: int = 0
    best_confusion: list[list[int]] | None = None  # (C, C) true x predicted of the best epoch

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> RunState:
        """The state a training checkpoint holds (``history``, ``best_metric``, ``best_confusion``)."""
        best = ckpt.get("best_metric") or {}
        return cls(history=list(ckpt.get("history", [])), best_val_acc=float(best.get("val_acc", -1.0)),
                   best_val_loss=float(best.get("val_loss", float("inf"))), best_epoch=int(best.get("epoch", 0)),
                   best_confusion=ckpt.get("best_confusion"))

    def record(self, row: dict[str, Any], *, confusion: Any) -> bool:
        """Append an epoch's metrics row; True when it is the new best epoch (higher validation
        accuracy, ties broken by lower validation loss), whose confusion matrix is then kept."""
        self.history.append(row)
        acc, loss = row["val_acc"], row["val_loss"]
        is_best = acc > self.best_val_acc or (acc == self.best_val_acc and loss < self.best_val_loss)
        if is_best:
            self.best_val_acc, self.best_val_loss, self.best_epoch = acc, loss, row["epoch"]
            self.best_confusion = confusion.tolist()
        return is_best

    def best_metric(self) -> dict[str, Any]:
        """The checkpoint's ``best_metric`` entry (also read by tools that only want the score)."""
        return {"val_acc": self.best_val_acc, "val_loss": self.best_val_loss, "epoch": self.best_epoch}


def resume_config(resume: str, data: str | None, options: dict[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
    """The config and checkpoint to continue ``resume`` (a ``last.pt``) with. A resumed run keeps its
    saved recipe, so only ``epochs``/``device``/``workers``/``out``/``amp`` may change; ``options``
    loses its ``model`` entry, which must match the checkpoint's."""
    from edgecv.models.checkpoint import is_edgecv_checkpoint, load_checkpoint

    ckpt = load_checkpoint(resume)
    if not is_edgecv_checkpoint(ckpt) or "optimizer" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{resume}: not an edgecv training checkpoint (to start from weights, use --weights)")
    saved = TrainConfig.from_dict(ckpt["config"])
    model = options.pop("model", None)
    if model and model != ckpt.get("model"):
        raise CheckpointError(f"{resume}: checkpoint is for model {ckpt.get('model')!r}, not {model!r}; "
                              f"resume with --model {ckpt.get('model')} or start a new run")
    allowed = {"epochs", "device", "workers", "out", "amp"}
    changed = {k for k, v in options.items() if v is not None and v != getattr(saved, k, v) and k not in allowed}
    if changed:
        raise InputError(f"--resume continues a run with its saved settings; cannot change {', '.join(sorted(changed))}")
    cfg = TrainConfig.from_dict({**asdict(saved), **{k: v for k, v in options.items() if k in allowed and v is not None}})
    if "out" not in options or options["out"] is None:
        cfg.out = str(Path(resume).parent)
    if data:
        cfg.data = str(data)
    if cfg.epochs <= int(ckpt["epoch"]):
        raise InputError(f"{resume}: already trained {ckpt['epoch']} of {cfg.epochs} epochs; "
                         "pass a larger --epochs to continue")
    return cfg, ckpt


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, so a run is repeatable from its config alone."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """All RNG states as tensors and plain Python data (loadable with ``weights_only=True``)."""
    import torch

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Undo :func:`rng_state`: a resumed run draws the same shuffles and augmentations as an unbroken one."""
    import torch

    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def restore_run(ckpt: dict[str, Any], parts: Any) -> int:
    """Load weights, optimiser, schedule, scaler and RNG states from a checkpoint into ``parts``
    (the trainer's ``RunParts``; the metrics history comes back through
    :meth:`RunState.from_checkpoint`); returns the first epoch still to run."""
    try:
        parts.model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:160]
        raise CheckpointError(f"checkpoint weights do not fit model {parts.cfg.model!r} ({first})") from None
    parts.optimizer.load_state_dict(ckpt["optimizer"])
    parts.scheduler.load_state_dict(ckpt["scheduler"])
    # A larger --epochs on resume stretches the cosine schedule to the new end.
    for fn in getattr(parts.scheduler, "lr_lambdas", []):
        if hasattr(fn, "total_steps"):
            fn.total_steps = max(1, parts.cfg.epochs * len(parts.train_loader))
    if parts.scaler is not None and ckpt.get("scaler"):
        parts.scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"])
    return int(ckpt["epoch"]) + 1
