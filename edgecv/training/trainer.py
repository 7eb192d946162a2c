"""The training API behind ``edgecv train``: :class:`TrainConfig` and :func:`train`.

One function runs a whole experiment: data -> model -> epochs -> checkpoints and reports in
``cfg.out``. Every epoch ends with ``last.pt`` (and ``best.pt`` when validation accuracy
improves) written atomically, holding everything needed to resume bit-exactly: weights,
optimiser, LR schedule, AMP scaler, RNG states, epoch, history and best metric. The same code
runs single-process or as one rank of a ``torchrun`` job (only rank 0 writes).

Example::

    import edgecv
    result = edgecv.train("data/shapes", model="simple_cnn", img_size=32, epochs=5, out="runs/shapes")
    print(result.best_val_acc, result.best_checkpoint)
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.errors import CheckpointError, InputError, short_message
from edgecv.io import check_writable_dir, write_json_atomic
from edgecv.training import setup
from edgecv.training.config import TrainConfig
from edgecv.training.distributed import (
    DistInfo,
    broadcast_object,
    cleanup_distributed,
    init_distributed,
    unwrap,
)
from edgecv.training.outputs import (
    RunLog,
    write_confusion,
    write_metrics_csv,
    write_plots,
    write_summary,
)
from edgecv.training.setup import DataBundle, select_device
from edgecv.training.state import (
    RunState,
    resume_config,
    rng_state,
    seed_everything,
    set_rng_state,
)


@dataclass
class TrainResult:
    """What :func:`train` hands back: the numbers and paths a caller (CLI, demo, notebook) needs
    without reopening the run folder."""

    out_dir: Path
    model: str
    classes: list[str]
    best_val_acc: float
    best_epoch: int
    history: list[dict[str, Any]]
    last_checkpoint: Path
    best_checkpoint: Path
    skipped_images: list[str]

    def summary(self) -> dict[str, Any]:
        """Plain JSON-ready data (``edgecv train --json``)."""
        return {"model": self.model, "classes": self.classes, "best_val_acc": self.best_val_acc,
                "best_epoch": self.best_epoch, "epochs": len(self.history),
                "final": self.history[-1] if self.history else None, "out": str(self.out_dir),
                "last_checkpoint": str(self.last_checkpoint), "best_checkpoint": str(self.best_checkpoint),
                "skipped_images": len(self.skipped_images)}


def train(data: str | None = None, *, resume: str | None = None, overwrite: bool = False,
          quiet: bool = False, config: TrainConfig | None = None, **options: Any) -> TrainResult:
    """Train a classifier; see :class:`TrainConfig` for ``options``. With ``resume`` (a
    ``last.pt``), the run continues from its checkpoint; ``options`` may raise ``epochs`` or
    change ``device``/``workers``/``out``, and ``model`` must match the checkpoint's."""
    ckpt = None
    if resume is not None:
        cfg, ckpt = resume_config(resume, data, options)
    else:
        cfg = config or TrainConfig()
        cfg = TrainConfig.from_dict({**asdict(cfg), **options, **({"data": str(data)} if data else {})})
        unknown = set(options) - {f.name for f in fields(TrainConfig)}
        if unknown:
            raise InputError(f"unknown training option(s): {', '.join(sorted(unknown))}")
    cfg.validate()

    device = select_device(cfg.device)
    dist = init_distributed(device.type)
    succeeded = False
    try:
        if dist.enabled and device.type == "cuda":
            import torch

            device = torch.device("cuda", dist.local_rank)
        result = _run(cfg, device=device, dist=dist, ckpt=ckpt, overwrite=overwrite or resume is not None,
                      quiet=quiet)
        succeeded = True
        return result
    finally:
        cleanup_distributed(dist, succeeded=succeeded)


def _prepare_out(out: Path, *, overwrite: bool) -> None:
    """Check ``out`` can take a run and create it, before any data is read: a file in the way or
    a folder that cannot be written must fail now, not at the first checkpoint an epoch later."""
    check_writable_dir(out, option="--out")
    if (out / "last.pt").exists() and not overwrite:
        raise InputError(f"{out}: already holds a training run (last.pt); continue it with "
                         f"--resume {out / 'last.pt'}, replace it with --overwrite, or choose another --out")
    for name in ("last.pt", "best.pt", "train.log"):  # an existing run is replaced file by file
        if (out / name).is_dir():
            raise InputError(f"--out {out}: {out / name} is a folder; expected a run folder where "
                             f"{name} can be written")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a race with the check above, or a file system that refuses folders
        raise InputError(f"--out {out}: cannot create the folder ({short_message(exc)}); "
                         "expected a writable folder") from None


@dataclass
class RunParts:
    """Everything a run builds once before its first epoch and uses in every epoch after it.
    Holds the plain model only: the DDP wrapper stays local to the epoch loop, so nothing keeps
    it alive once training ends (see :func:`~edgecv.training.distributed.cleanup_distributed`)."""

    cfg: TrainConfig
    out: Path
    device: Any
    dist: DistInfo
    data: DataBundle
    model: Any
    optimizer: Any
    scheduler: Any
    scaler: Any  # torch.amp.GradScaler with mixed precision, else None
    criterion: Any
    train_loader: Any
    val_loader: Any
    sampler: Any  # reshuffles per epoch (set_epoch)
    amp: bool
    grad_clip: float | None
    placeholder: Any = None  # one-sample input for a DDP step whose images all failed to decode


def _run(cfg: TrainConfig, *, device: Any, dist: DistInfo, ckpt: dict[str, Any] | None, overwrite: bool,
         quiet: bool) -> TrainResult:
    """One run on this rank: claim the output folder, build everything, train the remaining
    epochs and write the final outputs (rank 0)."""
    out = Path(cfg.out)
    _claim_out(out, dist, overwrite=overwrite, fresh=ckpt is None)
    log = RunLog(out, enabled=dist.is_main, quiet=quiet)
    seed_everything(cfg.seed)
    data = _load_data(cfg, ckpt, log)
    parts = _build_parts(cfg, data, out=out, device=device, dist=dist, ckpt=ckpt, log=log)
    state, start_epoch = RunState(), 1
    if ckpt is not None:
        state = RunState.from_checkpoint(ckpt)
        start_epoch = _restore(ckpt, parts)
    _announce(parts, state, ckpt, log)
    skipped = _train_epochs(parts, state, start_epoch=start_epoch, log=log, quiet=quiet)
    return _finish(parts, state, skipped, log)


def _claim_out(out: Path, dist: DistInfo, *, overwrite: bool, fresh: bool) -> None:
    """Rank 0 checks and creates the output folder; a fresh run (not a resume) starts a fresh log."""
    problem = None
    if dist.is_main:
        try:
            _prepare_out(out, overwrite=overwrite)
        except InputError as exc:
            problem = str(exc)
    # Every rank learns rank 0's verdict, so no rank waits forever for one that gave up.
    problem = broadcast_object(problem, dist)
    if problem:
        raise InputError(problem)
    if dist.is_main and fresh and (out / "train.log").exists():
        (out / "train.log").unlink()  # a fresh run (--overwrite) starts a fresh log; resume appends


def _load_data(cfg: TrainConfig, ckpt: dict[str, Any] | None, log: RunLog) -> DataBundle:
    """The run's data; a resumed run reuses its saved tokenizer and must see the same classes."""
    data = setup.build_data(cfg, tokenizer_dict=ckpt.get("tokenizer") if ckpt else None)
    if ckpt is not None and list(ckpt.get("classes", [])) != data.classes:
        raise CheckpointError(f"checkpoint classes {ckpt.get('classes')} differ from the data's {data.classes}")
    for message in data.warnings:
        log.warn(message)
    _report_skipped(log, data.skipped, "unreadable image files were skipped")
    return data


def _build_parts(cfg: TrainConfig, data: DataBundle, *, out: Path, device: Any, dist: DistInfo,
                 ckpt: dict[str, Any] | None, log: RunLog) -> RunParts:
    """Model (with --weights and a frozen backbone), loaders, optimiser, schedule and loss.
    The order is fixed: building the model draws from the seeded RNG."""
    import torch

    model = setup.build_model(cfg, data)
    if cfg.weights and ckpt is None:
        log(_load_pretrained(model, cfg.weights))
    if cfg.freeze_backbone:
        setup.set_backbone_frozen(model, True)
    model.to(device)
    amp = bool(cfg.amp and device.type == "cuda")
    train_loader, val_loader, sampler = setup.make_loaders(data, cfg, dist, device)
    optimizer = setup.build_optimizer(cfg, model, data.task)
    return RunParts(
        cfg=cfg, out=out, device=device, dist=dist, data=data, model=model, optimizer=optimizer,
        scheduler=setup.build_scheduler(cfg, optimizer, len(train_loader)),
        scaler=torch.amp.GradScaler("cuda") if amp else None,
        criterion=torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing),
        train_loader=train_loader, val_loader=val_loader, sampler=sampler, amp=amp,
        grad_clip=cfg.grad_clip if cfg.grad_clip is not None else (1.0 if data.task == "text" else None),
        placeholder=setup.placeholder_input(data))


def _announce(parts: RunParts, state: RunState, ckpt: dict[str, Any] | None, log: RunLog) -> None:
    """Log what is about to train and write ``config.json`` (rank 0)."""
    cfg, data, dist, model = parts.cfg, parts.data, parts.dist, parts.model
    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log(f"{data.description}")
    log(f"model {cfg.model}: {n_params:,} parameters ({n_train:,} trainable); device {parts.device}"
        f"{' with mixed precision' if parts.amp else ''}; {dist.world_size} process(es)"
        f"{f' ({dist.backend})' if dist.enabled else ''}")
    if dist.is_main:  # rewritten on resume: a larger --epochs is part of the recipe
        write_json_atomic(parts.out / "config.json", {**asdict(cfg), "classes": data.classes,
                                                      "preprocess": data.preprocess.to_dict() if data.preprocess else None})
    if ckpt is not None:
        log(f"resumed from epoch {ckpt['epoch']} (best val acc {state.best_val_acc:.4f} at epoch {state.best_epoch})")


def _train_epochs(parts: RunParts, state: RunState, *, start_epoch: int, log: RunLog, quiet: bool) -> list[str]:
    """The epoch loop: train, validate, log, checkpoint (rank 0). Returns every skipped image."""
    # Looked up per run (not at import), so tests can interrupt an epoch by patching the loop module.
    from edgecv.training.loop import evaluate, train_one_epoch

    cfg, dist = parts.cfg, parts.dist
    ddp_model = _wrap(parts.model, dist, parts.device)
    all_skipped = list(parts.data.skipped)
    frozen = cfg.freeze_backbone  # _build_parts froze it; unfrozen from --unfreeze-at on
    for epoch in range(start_epoch, cfg.epochs + 1):
        if frozen and cfg.unfreeze_at is not None and epoch >= cfg.unfreeze_at:
            frozen = False
            setup.set_backbone_frozen(parts.model, False)
            ddp_model = _wrap(parts.model, dist, parts.device)  # DDP must see the new trainable set
            log(f"epoch {epoch}: backbone unfrozen")
        parts.sampler.set_epoch(epoch)
        parts.data.train_set.epoch = epoch
        tr = train_one_epoch(ddp_model, parts.train_loader, optimizer=parts.optimizer, scheduler=parts.scheduler,
                             scaler=parts.scaler, criterion=parts.criterion, device=parts.device, dist=dist,
                             amp=parts.amp, grad_clip=parts.grad_clip, placeholder=parts.placeholder,
                             desc=f"epoch {epoch}/{cfg.epochs}", show_progress=not quiet)
        # The plain module, not the DDP wrapper: DDP's forward broadcasts buffers, a collective
        # that a rank with fewer (or no readable) validation batches would never join.
        va = evaluate(parts.model, parts.val_loader, criterion=parts.criterion, device=parts.device,
                      num_classes=len(parts.data.classes), dist=dist, amp=parts.amp)
        new_bad = sorted(set(tr.bad + va.bad) - set(all_skipped))
        all_skipped += new_bad
        _report_skipped(log, new_bad, "images failed to decode and were skipped")
        row = _metrics_row(epoch, tr, va, lr=parts.optimizer.param_groups[0]["lr"])
        is_best = state.record(row, confusion=va.confusion)
        log(_epoch_line(row, tr, va, epochs=cfg.epochs, is_best=is_best))
        if dist.is_main:
            _save_epoch(parts, _payload(parts, state, epoch, row), is_best=is_best, state=state)
    return all_skipped


def _metrics_row(epoch: int, tr: Any, va: Any, *, lr: float) -> dict[str, Any]:
    """One epoch's line of ``metrics.csv`` (and of the checkpoint's history)."""
    return {"epoch": epoch, "train_loss": tr.loss, "train_acc": tr.acc, "val_loss": va.loss, "val_acc": va.acc,
            "lr": lr, "seconds": round(tr.seconds + va.seconds, 3), "samples_per_s": round(tr.samples_per_s, 1)}


def _epoch_line(row: dict[str, Any], tr: Any, va: Any, *, epochs: int, is_best: bool) -> str:
    return (f"epoch {row['epoch']}/{epochs}  train loss {tr.loss:.4f} acc {tr.acc:.4f}  val loss {va.loss:.4f} "
            f"acc {va.acc:.4f}  lr {row['lr']:.2e}  {row['seconds']:.1f}s  {tr.samples_per_s:.0f} samples/s"
            f"{'  *best*' if is_best else ''}")


def _finish(parts: RunParts, state: RunState, skipped: list[str], log: RunLog) -> TrainResult:
    """The run's result; rank 0 also writes the curves and the best epoch's confusion matrix."""
    out = parts.out
    result = TrainResult(out_dir=out, model=parts.cfg.model, classes=parts.data.classes,
                         best_val_acc=state.best_val_acc, best_epoch=state.best_epoch, history=state.history,
                         last_checkpoint=out / "last.pt", best_checkpoint=out / "best.pt", skipped_images=skipped)
    if parts.dist.is_main:
        confusion = np.asarray(state.best_confusion) if state.best_confusion is not None else None
        write_plots(out, state.history, confusion, parts.data.classes, log)
        log(f"best val acc {result.best_val_acc:.4f} at epoch {result.best_epoch}; outputs in {out}")
    return result


def _wrap(model: Any, dist: DistInfo, device: Any) -> Any:
    if not dist.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _load_pretrained(model: Any, path: str) -> str:
    from edgecv.models import load_weights

    # The head is skipped (kept fresh) automatically when its shape differs: another class count.
    report = load_weights(model, path)
    return f"weights {report.summary()}"


def _report_skipped(log: RunLog, paths: list[str], what: str) -> None:
    if not paths:
        return
    shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    log.warn(f"{len(paths)} {what} (listed in train.log): {shown}")
    for p in paths:
        log.write(f"skipped: {p}")


def _payload(parts: RunParts, state: RunState, epoch: int, row: dict[str, Any]) -> dict[str, Any]:
    """One checkpoint: everything :func:`_restore` and :meth:`RunState.from_checkpoint` need to
    continue bit-exactly, plus what export and inference read (model, classes, preprocessing)."""
    plain, data, scaler = unwrap(parts.model), parts.data, parts.scaler
    return {
        "model": parts.cfg.model, "model_kwargs": dict(getattr(plain, "edgecv_kwargs", {})), "task": data.task,
        "state_dict": {k: v.detach().cpu() for k, v in plain.state_dict().items()},
        "classes": list(data.classes),
        "preprocess": data.preprocess.to_dict() if data.preprocess is not None else None,
        "tokenizer": data.tokenizer.to_dict() if data.tokenizer is not None else None,
        "epoch": epoch, "metrics": dict(row), "best_metric": state.best_metric(),
        "optimizer": parts.optimizer.state_dict(), "scheduler": parts.scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None, "rng": rng_state(),
        "config": asdict(parts.cfg), "history": list(state.history), "best_confusion": state.best_confusion,
    }


def _save_epoch(parts: RunParts, payload: dict[str, Any], *, is_best: bool, state: RunState) -> None:
    """Write an epoch's checkpoints and reports; ``last.pt`` goes last, so a crash before it
    leaves the previous epoch's complete set."""
    from edgecv.models.checkpoint import save_checkpoint

    out, data, cfg = parts.out, parts.data, parts.cfg
    write_metrics_csv(out / "metrics.csv", state.history)
    if is_best:
        save_checkpoint(payload, out / "best.pt")
        write_confusion(out, np.asarray(state.best_confusion), data.classes)
    save_checkpoint(payload, out / "last.pt")  # last: a crash before this leaves the previous one
    write_summary(out, {"model": cfg.model, "task": data.task, "classes": data.classes,
                        "best_val_acc": state.best_val_acc, "best_val_loss": state.best_val_loss,
                        "best_epoch": state.best_epoch, "epochs_done": payload["epoch"], "epochs": cfg.epochs,
                        "final": state.history[-1], "preprocess": payload["preprocess"],
                        "best_checkpoint": str(out / "best.pt"), "last_checkpoint": str(out / "last.pt")})


def _restore(ckpt: dict[str, Any], parts: RunParts) -> int:
    """Load weights, optimiser, schedule, scaler and RNG states from a checkpoint (the metrics
    history comes back through :meth:`RunState.from_checkpoint`); returns the first epoch still to run."""
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


def load_config_json(path: str) -> TrainConfig:
    """A :class:`TrainConfig` from a run's ``config.json`` (to reproduce it)."""
    return TrainConfig.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
