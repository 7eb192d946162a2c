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
import random
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.errors import CheckpointError, InputError
from edgecv.io import write_json_atomic
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
from edgecv.training.setup import select_device


@dataclass
class TrainResult:
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
        cfg, ckpt = _resume_config(resume, data, options)
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


def _resume_config(resume: str, data: str | None, options: dict[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
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


def _seed_everything(seed: int) -> None:
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
    import torch

    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _prepare_out(out: Path, *, overwrite: bool) -> None:
    if (out / "last.pt").exists() and not overwrite:
        raise InputError(f"{out}: already holds a training run (last.pt); continue it with "
                         f"--resume {out / 'last.pt'}, replace it with --overwrite, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)


def _run(cfg: TrainConfig, *, device: Any, dist: DistInfo, ckpt: dict[str, Any] | None, overwrite: bool,
         quiet: bool) -> TrainResult:
    import torch

    from edgecv.training import setup
    from edgecv.training.loop import evaluate, train_one_epoch

    out = Path(cfg.out)
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
    if dist.is_main and ckpt is None and (out / "train.log").exists():
        (out / "train.log").unlink()  # a fresh run (--overwrite) starts a fresh log; resume appends
    log = RunLog(out, enabled=dist.is_main, quiet=quiet)
    _seed_everything(cfg.seed)
    data = setup.build_data(cfg, tokenizer_dict=ckpt.get("tokenizer") if ckpt else None)
    if ckpt is not None and list(ckpt.get("classes", [])) != data.classes:
        raise CheckpointError(f"checkpoint classes {ckpt.get('classes')} differ from the data's {data.classes}")
    for message in data.warnings:
        log.warn(message)
    _report_skipped(log, data.skipped, "unreadable image files were skipped")
    model = setup.build_model(cfg, data)
    if cfg.weights and ckpt is None:
        log(_load_pretrained(model, cfg.weights))
    frozen = cfg.freeze_backbone  # the epoch loop unfreezes from --unfreeze-at on
    if frozen:
        setup.set_backbone_frozen(model, True)
    model.to(device)
    amp = bool(cfg.amp and device.type == "cuda")
    train_loader, val_loader, sampler = setup.make_loaders(data, cfg, dist, device)
    optimizer = setup.build_optimizer(cfg, model, data.task)
    scheduler = setup.build_scheduler(cfg, optimizer, len(train_loader))
    scaler = torch.amp.GradScaler("cuda") if amp else None
    grad_clip = cfg.grad_clip if cfg.grad_clip is not None else (1.0 if data.task == "text" else None)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    state = {"history": [], "best_val_acc": -1.0, "best_val_loss": float("inf"), "best_epoch": 0,
             "best_confusion": None}
    start_epoch = 1
    if ckpt is not None:
        start_epoch = _restore(ckpt, model, optimizer, scheduler, scaler, state, cfg, len(train_loader))
    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log(f"{data.description}")
    log(f"model {cfg.model}: {n_params:,} parameters ({n_train:,} trainable); device {device}"
        f"{' with mixed precision' if amp else ''}; {dist.world_size} process(es)"
        f"{f' ({dist.backend})' if dist.enabled else ''}")
    if dist.is_main:  # rewritten on resume: a larger --epochs is part of the recipe
        write_json_atomic(out / "config.json", {**asdict(cfg), "classes": data.classes,
                                                "preprocess": data.preprocess.to_dict() if data.preprocess else None})
    if ckpt is not None:
        log(f"resumed from epoch {ckpt['epoch']} (best val acc {state['best_val_acc']:.4f} at epoch {state['best_epoch']})")
    ddp_model = _wrap(model, dist, device)
    all_skipped = list(data.skipped)
    for epoch in range(start_epoch, cfg.epochs + 1):
        if frozen and cfg.unfreeze_at is not None and epoch >= cfg.unfreeze_at:
            frozen = False
            setup.set_backbone_frozen(model, False)
            ddp_model = _wrap(model, dist, device)  # DDP must see the new trainable set
            log(f"epoch {epoch}: backbone unfrozen")
        sampler.set_epoch(epoch)
        data.train_set.epoch = epoch
        tr = train_one_epoch(ddp_model, train_loader, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                             criterion=criterion, device=device, dist=dist, amp=amp, grad_clip=grad_clip,
                             desc=f"epoch {epoch}/{cfg.epochs}", show_progress=not quiet)
        va = evaluate(ddp_model, val_loader, criterion=criterion, device=device,
                      num_classes=len(data.classes), dist=dist, amp=amp)
        new_bad = sorted(set(tr.bad + va.bad) - set(all_skipped))
        all_skipped += new_bad
        _report_skipped(log, new_bad, "images failed to decode and were skipped")
        row = {"epoch": epoch, "train_loss": tr.loss, "train_acc": tr.acc, "val_loss": va.loss, "val_acc": va.acc,
               "lr": optimizer.param_groups[0]["lr"], "seconds": round(tr.seconds + va.seconds, 3),
               "samples_per_s": round(tr.samples_per_s, 1)}
        state["history"].append(row)
        is_best = va.acc > state["best_val_acc"] or (va.acc == state["best_val_acc"] and va.loss < state["best_val_loss"])
        if is_best:
            state.update(best_val_acc=va.acc, best_val_loss=va.loss, best_epoch=epoch,
                         best_confusion=va.confusion.tolist())
        log(f"epoch {epoch}/{cfg.epochs}  train loss {tr.loss:.4f} acc {tr.acc:.4f}  val loss {va.loss:.4f} "
            f"acc {va.acc:.4f}  lr {row['lr']:.2e}  {row['seconds']:.1f}s  {tr.samples_per_s:.0f} samples/s"
            f"{'  *best*' if is_best else ''}")
        if dist.is_main:
            payload = _payload(cfg, model, data, optimizer, scheduler, scaler, state, epoch, row)
            _save_epoch(out, payload, is_best=is_best, state=state, data=data, cfg=cfg)
    result = TrainResult(out_dir=out, model=cfg.model, classes=data.classes, best_val_acc=state["best_val_acc"],
                         best_epoch=state["best_epoch"], history=state["history"], last_checkpoint=out / "last.pt",
                         best_checkpoint=out / "best.pt", skipped_images=all_skipped)
    if dist.is_main:
        confusion = np.asarray(state["best_confusion"]) if state["best_confusion"] is not None else None
        write_plots(out, state["history"], confusion, data.classes, log)
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


def _payload(cfg: TrainConfig, model: Any, data: Any, optimizer: Any, scheduler: Any, scaler: Any,
             state: dict[str, Any], epoch: int, row: dict[str, Any]) -> dict[str, Any]:
    plain = unwrap(model)
    return {
        "model": cfg.model, "model_kwargs": dict(getattr(plain, "edgecv_kwargs", {})), "task": data.task,
        "state_dict": {k: v.detach().cpu() for k, v in plain.state_dict().items()},
        "classes": list(data.classes),
        "preprocess": data.preprocess.to_dict() if data.preprocess is not None else None,
        "tokenizer": data.tokenizer.to_dict() if data.tokenizer is not None else None,
        "epoch": epoch, "metrics": dict(row), "best_metric": {"val_acc": state["best_val_acc"],
                                                              "val_loss": state["best_val_loss"], "epoch": state["best_epoch"]},
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None, "rng": rng_state(),
        "config": asdict(cfg), "history": list(state["history"]), "best_confusion": state["best_confusion"],
    }


def _save_epoch(out: Path, payload: dict[str, Any], *, is_best: bool, state: dict[str, Any], data: Any,
                cfg: TrainConfig) -> None:
    from edgecv.models.checkpoint import save_checkpoint

    write_metrics_csv(out / "metrics.csv", state["history"])
    if is_best:
        save_checkpoint(payload, out / "best.pt")
        write_confusion(out, np.asarray(state["best_confusion"]), data.classes)
    save_checkpoint(payload, out / "last.pt")  # last: a crash before this leaves the previous one
    write_summary(out, {"model": cfg.model, "task": data.task, "classes": data.classes,
                        "best_val_acc": state["best_val_acc"], "best_val_loss": state["best_val_loss"],
                        "best_epoch": state["best_epoch"], "epochs_done": payload["epoch"], "epochs": cfg.epochs,
                        "final": state["history"][-1], "preprocess": payload["preprocess"],
                        "best_checkpoint": str(out / "best.pt"), "last_checkpoint": str(out / "last.pt")})


def _restore(ckpt: dict[str, Any], model: Any, optimizer: Any, scheduler: Any, scaler: Any,
             state: dict[str, Any], cfg: TrainConfig, steps_per_epoch: int) -> int:
    """Load training state from a checkpoint; returns the first epoch still to run."""
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:160]
        raise CheckpointError(f"checkpoint weights do not fit model {cfg.model!r} ({first})") from None
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    # A larger --epochs on resume stretches the cosine schedule to the new end.
    for fn in getattr(scheduler, "lr_lambdas", []):
        if hasattr(fn, "total_steps"):
            fn.total_steps = max(1, cfg.epochs * steps_per_epoch)
    if scaler is not None and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    state["history"] = list(ckpt.get("history", []))
    best = ckpt.get("best_metric") or {}
    state.update(best_val_acc=float(best.get("val_acc", -1.0)), best_val_loss=float(best.get("val_loss", float("inf"))),
                 best_epoch=int(best.get("epoch", 0)), best_confusion=ckpt.get("best_confusion"))
    set_rng_state(ckpt["rng"])
    return int(ckpt["epoch"]) + 1


def load_config_json(path: str) -> TrainConfig:
    """A :class:`TrainConfig` from a run's ``config.json`` (to reproduce it)."""
    return TrainConfig.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
