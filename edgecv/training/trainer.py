"""The training API behind ``edgecv train``: :class:`TrainConfig` and :func:`train`.

One function runs a whole experiment: data -> model -> epochs -> checkpoints and reports in
``cfg.out``. Every epoch ends with ``last.pt`` (and ``best.pt`` when validation accuracy
improves) written atomically, holding everything needed to resume bit-exactly: weights,
optimiser, LR schedule, AMP scaler, RNG states, epoch, history and best metric. The same code
runs single-process or as one rank of a ``torchrun`` job (only rank 0 writes).

Without ``out``, a run goes to the next free ``runs/exp``, ``runs/exp2``, ... (``name`` replaces
``exp``), so training twice never refuses and never replaces the first run.

Example::

    import edgecv
    result = edgecv.train("data/shapes", model="simple_cnn", img_size=32, epochs=5)  # -> runs/exp
    print(result.best_val_acc, result.best_checkpoint)
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.errors import CheckpointError, EdgecvError, InputError
from edgecv.io import write_json_atomic
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
from edgecv.training.setup import DataBundle, claim_run_dir, prepare_out, select_device
from edgecv.training.state import (
    RunState,
    restore_run,
    resume_config,
    rng_state,
    seed_everything,
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


@dataclass(frozen=True)
class RunOptions:
    """How a run is launched and reported, as opposed to what it trains (:class:`TrainConfig`):
    nothing here changes the weights, so none of it is saved in the checkpoint."""

    overwrite: bool = False  # replace a run in --out (or runs/NAME)
    quiet: bool = False  # only warnings and the final line
    silent: bool = False  # only warnings: the caller prints its own result (--json)
    name: str | None = None  # runs/NAME instead of runs/exp when out is not given
    exist_ok: bool = False  # take runs/NAME as it is (no numbering); a run there is replaced


def train(data: str | None = None, *, resume: str | None = None, overwrite: bool = False,
          quiet: bool = False, silent: bool = False, name: str | None = None, exist_ok: bool = False,
          config: TrainConfig | None = None, **options: Any) -> TrainResult:
    """Train a classifier; see :class:`TrainConfig` for ``options``. With ``resume`` (a
    ``last.pt``), the run continues from its checkpoint; ``options`` may raise ``epochs`` or
    change ``device``/``workers``/``out``, and ``model`` must match the checkpoint's.

    Without ``out`` the run goes to the next free ``runs/NAME``, ``runs/NAME2``, ... (``name``
    defaults to ``exp``; ``exist_ok`` takes ``runs/NAME`` as it is). ``quiet`` prints only
    warnings and the final line, ``silent`` only warnings (see :class:`RunOptions`)."""
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
    if name is not None and cfg.out is not None:
        raise InputError(f"--name {name!r} names a folder under runs/; give either --out or --name, not both")
    run_opts = RunOptions(overwrite=overwrite or resume is not None, quiet=quiet, silent=silent, name=name,
                          exist_ok=exist_ok)

    device = select_device(cfg.device)
    dist = init_distributed(device.type)
    succeeded = False
    try:
        if dist.enabled and device.type == "cuda":
            import torch

            device = torch.device("cuda", dist.local_rank)
        result = _run(cfg, device=device, dist=dist, ckpt=ckpt, opts=run_opts)
        succeeded = True
        return result
    finally:
        cleanup_distributed(dist, succeeded=succeeded)


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


def _run(cfg: TrainConfig, *, device: Any, dist: DistInfo, ckpt: dict[str, Any] | None,
         opts: RunOptions) -> TrainResult:
    """One run on this rank: claim the output folder, build everything, train the remaining
    epochs and write the final outputs (rank 0)."""
    numbered = cfg.out is None and not (opts.exist_ok or opts.overwrite)
    out = _claim_out(cfg, dist, opts, fresh=ckpt is None)
    log = RunLog(out, enabled=dist.is_main, quiet=opts.quiet or opts.silent)
    try:
        seed_everything(cfg.seed)
        data = _load_data(cfg, ckpt, log)
        parts = _build_parts(cfg, data, out=out, device=device, dist=dist, ckpt=ckpt, log=log)
    except EdgecvError:
        if numbered and dist.is_main:
            _drop_empty_run(out)  # a typo in the data path must not use up runs/exp, exp2, ...
        raise
    state, start_epoch = RunState(), 1
    if ckpt is not None:
        state = RunState.from_checkpoint(ckpt)
        start_epoch = restore_run(ckpt, parts)
    _announce(parts, state, ckpt, log)
    skipped = _train_epochs(parts, state, start_epoch=start_epoch, log=log, opts=opts)
    return _finish(parts, state, skipped, log, opts)


def _claim_out(cfg: TrainConfig, dist: DistInfo, opts: RunOptions, *, fresh: bool) -> Path:
    """Rank 0 picks (``runs/expN``), checks and creates the output folder and every rank takes
    its choice, which ``cfg.out`` then records; a fresh run (not a resume) starts a fresh log."""
    problem, out = None, cfg.out
    if dist.is_main:
        try:
            if cfg.out is None:
                out = str(claim_run_dir(opts.name, exist_ok=opts.exist_ok or opts.overwrite))
            else:
                prepare_out(Path(cfg.out), overwrite=opts.overwrite or opts.exist_ok)
        except InputError as exc:
            problem = str(exc)
    # Every rank learns rank 0's verdict, so no rank waits forever for one that gave up.
    problem, out = broadcast_object((problem, out), dist)
    if problem:
        raise InputError(problem)
    cfg.out = out
    path = Path(out)
    if dist.is_main and fresh and (path / "train.log").exists():
        (path / "train.log").unlink()  # a fresh run (--overwrite) starts a fresh log; resume appends
    return path


def _drop_empty_run(out: Path) -> None:
    """Remove a numbered run folder that this run created and that holds no checkpoint."""
    if (out / "last.pt").exists():
        return
    for name in ("train.log", "config.json"):
        (out / name).unlink(missing_ok=True)
    try:
        out.rmdir()
    except OSError:  # something else is in there: leave it
        pass


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


def _train_epochs(parts: RunParts, state: RunState, *, start_epoch: int, log: RunLog,
                  opts: RunOptions) -> list[str]:
    """The epoch loop: train, validate, log, checkpoint (rank 0). Returns every skipped image.
    On a terminal each epoch shows a progress bar; elsewhere (a log file, CI) a plain line per
    epoch and a heartbeat line inside long epochs (:class:`~edgecv.training.loop.Heartbeat`)."""
    # Looked up per run (not at import), so tests can interrupt an epoch by patching the loop module.
    from edgecv.training.loop import epoch_line, evaluate, metrics_row, train_one_epoch

    cfg, dist = parts.cfg, parts.dist
    ddp_model = _wrap(parts.model, dist, parts.device)
    all_skipped = list(parts.data.skipped)
    frozen = cfg.freeze_backbone  # _build_parts froze it; unfrozen from --unfreeze-at on
    chatty = dist.is_main and not (opts.quiet or opts.silent)
    say = _print_line if chatty else None
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
                             desc=f"epoch {epoch}/{cfg.epochs}", show_progress=chatty, heartbeat=say)
        # The plain module, not the DDP wrapper: DDP's forward broadcasts buffers, a collective
        # that a rank with fewer (or no readable) validation batches would never join.
        va = evaluate(parts.model, parts.val_loader, criterion=parts.criterion, device=parts.device,
                      num_classes=len(parts.data.classes), dist=dist, amp=parts.amp,
                      desc=f"epoch {epoch}/{cfg.epochs} validation", heartbeat=say)
        new_bad = sorted(set(tr.bad + va.bad) - set(all_skipped))
        all_skipped += new_bad
        _report_skipped(log, new_bad, "images failed to decode and were skipped")
        row = metrics_row(epoch, tr, va, lr=parts.optimizer.param_groups[0]["lr"])
        is_best = state.record(row, confusion=va.confusion)
        log(epoch_line(row, tr, va, epochs=cfg.epochs, is_best=is_best))
        if dist.is_main:
            _save_epoch(parts, _payload(parts, state, epoch, row), is_best=is_best, state=state)
    return all_skipped


def _print_line(message: str) -> None:
    print(message, flush=True)


def _finish(parts: RunParts, state: RunState, skipped: list[str], log: RunLog, opts: RunOptions) -> TrainResult:
    """The run's result; rank 0 also writes the curves and the best epoch's confusion matrix,
    and prints the final line, which ``quiet`` keeps (only ``silent`` drops it)."""
    out = parts.out
    result = TrainResult(out_dir=out, model=parts.cfg.model, classes=parts.data.classes,
                         best_val_acc=state.best_val_acc, best_epoch=state.best_epoch, history=state.history,
                         last_checkpoint=out / "last.pt", best_checkpoint=out / "best.pt", skipped_images=skipped)
    if parts.dist.is_main:
        confusion = np.asarray(state.best_confusion) if state.best_confusion is not None else None
        write_plots(out, state.history, confusion, parts.data.classes, log)
        final = f"best val acc {result.best_val_acc:.4f} at epoch {result.best_epoch}; outputs in {out}"
        log(final)
        if opts.quiet and not opts.silent:
            _print_line(final)  # RunLog keeps quiet; the final line is the one thing -q promises
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
    """One checkpoint: everything :func:`~edgecv.training.state.restore_run` and
    :meth:`RunState.from_checkpoint` need to continue bit-exactly, plus what export and inference
    read (model, classes, preprocessing)."""
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


def load_config_json(path: str) -> TrainConfig:
    """A :class:`TrainConfig` from a run's ``config.json`` (to reproduce it)."""
    return TrainConfig.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
