"""One training epoch and one evaluation pass, with metrics summed across DDP ranks.

Sums are accumulated in float64 on the CPU in a fixed order, so a CPU run with a fixed seed
gives bit-identical losses whether it runs straight through or is resumed.

Progress: a tqdm bar when stdout is a terminal; otherwise (a log file, CI, ``nohup``) no bar,
whose carriage returns would fill the log, but a :class:`Heartbeat` line at most every
:data:`HEARTBEAT_SECONDS` inside a pass, so a long epoch never looks like a hung job.
"""
from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from edgecv.training.distributed import DistInfo, all_reduce_sum, gather_lists


@dataclass
class EpochResult:
    """One pass over a loader, already summed over all ranks, so every rank logs the same numbers."""

    loss: float
    acc: float
    samples: int
    seconds: float
    bad: list[str] = field(default_factory=list)  # unreadable files met in this pass
    confusion: np.ndarray | None = None  # (C, C) true x predicted, evaluation only

    @property
    def samples_per_s(self) -> float:
        """Throughput of the pass (0 for an empty one, rather than dividing by zero)."""
        return self.samples / self.seconds if self.seconds > 0 else 0.0


HEARTBEAT_SECONDS = 30.0  # the longest silence inside a pass when stdout is not a terminal


class Heartbeat:
    """Time-based progress lines for output that is not a terminal: ``beat`` says where the pass
    stands when at least ``interval`` seconds passed since the start or the last line. Time,
    not batch counts, decides: a batch takes milliseconds on a GPU and seconds on a Raspberry Pi."""

    def __init__(self, say: Callable[[str], None], *, desc: str, total: int, interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.say, self.desc, self.total, self.clock = say, desc, total, clock
        self.interval = HEARTBEAT_SECONDS if interval is None else interval
        self.start = self.last = clock()

    def beat(self, done: int, detail: str = "") -> bool:
        """Print a line if one is due (``done`` batches of ``total``); True when it did."""
        now = self.clock()
        if now - self.last < self.interval:
            return False
        self.last = now
        elapsed = now - self.start
        self.say(f"{self.desc}  batch {done}/{self.total}  {detail}{'  ' if detail else ''}"
                 f"{int(elapsed // 60)}m{int(elapsed % 60):02d}s")
        return True


def _heartbeat(say: Callable[[str], None] | None, bar: Any, *, desc: str, total: int) -> Heartbeat | None:
    """A heartbeat where there is no bar and someone to tell (rank 0, not quiet)."""
    return Heartbeat(say, desc=desc, total=total) if say is not None and bar is None else None


def _progress(iterable: Iterable[Any], *, total: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar on a terminal (rank 0 only); the plain iterable otherwise."""
    if not enabled or not sys.stdout.isatty():
        return None
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True, unit="batch")


def _set_frozen_norm_eval(model: Any) -> None:
    """Batch-norm layers whose parameters are all frozen keep their running statistics: a frozen
    pretrained backbone must not drift towards the statistics of a few small batches."""
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()


@contextlib.contextmanager
def _norm_stats_kept(model: Any) -> Iterator[None]:
    """Batch-norm layers in eval mode for the duration: a placeholder step must not pull the
    running statistics towards an all-zero image."""
    from torch import nn

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    modes = [m.training for m in norms]
    for m in norms:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(norms, modes):
            m.train(mode)


def _step(model: Any, x: Any, y: Any, *, optimizer: Any, scaler: Any, criterion: Any, device: Any,
          amp: bool, grad_clip: float | None, weight: float = 1.0) -> tuple[Any, Any]:
    """One optimiser step on (x, y); returns (logits, loss). ``weight`` 0 makes the step a
    placeholder: the gradients are zero, but backward() still takes part in DDP's all-reduce
    and the optimiser applies the averaged update like every other rank."""
    import torch

    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
        logits = model(x)  # (B, num_classes)
        loss = criterion(logits, y)
        if weight != 1.0:
            loss = loss * weight
    if scaler is not None:
        scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
    return logits, loss


def train_one_epoch(model: Any, loader: Any, *, optimizer: Any, scheduler: Any, scaler: Any,
                    criterion: Any, device: Any, dist: DistInfo, amp: bool, grad_clip: float | None,
                    placeholder: Any = None, desc: str = "train", show_progress: bool = True,
                    heartbeat: Callable[[str], None] | None = None) -> EpochResult:
    """Train for one pass over ``loader``; the LR schedule steps once per batch, also for a batch
    whose images all failed to decode, so it ends where it was planned to.

    Under DDP every rank must take part in every step: the gradient all-reduce inside backward()
    waits for all ranks, so a rank that skipped an empty batch would hang the job (and drift out
    of the schedule). Such a rank runs ``placeholder`` (a one-sample input, e.g. from
    :func:`edgecv.training.setup.placeholder_input`; else its last good sample) with zero weight.
    ``heartbeat(line)`` receives the :class:`Heartbeat` lines when no bar is shown."""
    import torch

    model.train()
    _set_frozen_norm_eval(model)
    loss_sum, correct, seen, bad = 0.0, 0, 0, []
    spare = placeholder.to(device) if placeholder is not None else None
    step = {"optimizer": optimizer, "scaler": scaler, "criterion": criterion, "device": device, "amp": amp,
            "grad_clip": grad_clip}
    start = time.perf_counter()
    bar = _progress(loader, total=len(loader), desc=desc, enabled=show_progress and dist.is_main)
    pulse = _heartbeat(heartbeat if dist.is_main else None, bar, desc=desc, total=len(loader))
    for index, batch in enumerate(bar if bar is not None else loader, start=1):
        bad.extend(batch["bad"])
        if batch["x"] is None:
            if dist.enabled:
                if spare is None:
                    raise RuntimeError("a DDP rank met a batch without readable samples and has no placeholder")
                with _norm_stats_kept(model):
                    _step(model, spare, torch.zeros(spare.shape[0], dtype=torch.int64, device=device),
                          weight=0.0, **step)
            scheduler.step()
            continue
        x = batch["x"].to(device, non_blocking=True)  # (B, C, H, W) float32 or (B, T) int64
        y = batch["y"].to(device, non_blocking=True)  # (B,)
        if spare is None:
            spare = x[:1].detach().clone()
        logits, loss = _step(model, x, y, **step)
        scheduler.step()
        n = int(y.shape[0])
        loss_sum += float(loss.detach()) * n
        correct += int((logits.detach().argmax(dim=1) == y).sum())
        seen += n
        if bar is not None or pulse is not None:
            speed = seen * dist.world_size / max(time.perf_counter() - start, 1e-9)
            if bar is not None:
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}", samples_s=f"{speed:.0f}")
            else:
                pulse.beat(index, f"loss {loss_sum / seen:.4f} acc {correct / seen:.4f}  {speed:.0f} samples/s")
    if bar is not None:
        bar.close()
    return _reduce(loss_sum, correct, seen, time.perf_counter() - start, bad, None, dist)


def evaluate(model: Any, loader: Any, *, criterion: Any, device: Any, num_classes: int,
             dist: DistInfo, amp: bool, desc: str = "validation",
             heartbeat: Callable[[str], None] | None = None) -> EpochResult:
    """Loss, accuracy and confusion matrix over ``loader`` (no augmentation, no gradients);
    ``heartbeat`` as in :func:`train_one_epoch` (a large validation set takes time too)."""
    import torch

    model.eval()
    loss_sum, correct, seen, bad = 0.0, 0, 0, []
    confusion = torch.zeros((num_classes, num_classes), dtype=torch.int64)
    start = time.perf_counter()
    pulse = _heartbeat(heartbeat if dist.is_main else None, None, desc=desc, total=len(loader))
    with torch.no_grad():
        for index, batch in enumerate(loader, start=1):
            bad.extend(batch["bad"])
            if batch["x"] is None:
                continue
            x = batch["x"].to(device, non_blocking=True)
            y = batch["y"].to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
                logits = model(x)  # (B, num_classes)
                loss = criterion(logits.float(), y)
            pred = logits.argmax(dim=1)
            n = int(y.shape[0])
            loss_sum += float(loss) * n
            correct += int((pred == y).sum())
            seen += n
            # Flattened (true, predicted) pairs counted into the (C, C) matrix.
            confusion += torch.bincount((y * num_classes + pred).cpu(),
                                        minlength=num_classes * num_classes).reshape(num_classes, num_classes)
            if pulse is not None:
                pulse.beat(index, f"acc {correct / seen:.4f}")
    return _reduce(loss_sum, correct, seen, time.perf_counter() - start, bad, confusion, dist)


def _reduce(loss_sum: float, correct: int, seen: int, seconds: float, bad: list[str],
            confusion: Any, dist: DistInfo) -> EpochResult:
    """Sum the per-rank totals (and confusion counts) so every rank reports the global metrics."""
    import torch

    if dist.enabled:
        totals = torch.tensor([loss_sum, float(correct), float(seen)], dtype=torch.float64)
        all_reduce_sum(totals, dist)
        loss_sum, correct, seen = float(totals[0]), int(totals[1]), int(totals[2])
        if confusion is not None:
            all_reduce_sum(confusion, dist)
        bad = gather_lists(bad, dist)
    cm = confusion.numpy() if confusion is not None else None
    return EpochResult(loss=loss_sum / seen if seen else float("nan"), acc=correct / seen if seen else 0.0,
                       samples=seen, seconds=seconds, bad=bad, confusion=cm)


def metrics_row(epoch: int, tr: Any, va: Any, *, lr: float) -> dict[str, Any]:
    """One epoch's line of ``metrics.csv`` (and of the checkpoint's history)."""
    return {"epoch": epoch, "train_loss": tr.loss, "train_acc": tr.acc, "val_loss": va.loss, "val_acc": va.acc,
            "lr": lr, "seconds": round(tr.seconds + va.seconds, 3), "samples_per_s": round(tr.samples_per_s, 1)}


def epoch_line(row: dict[str, Any], tr: Any, va: Any, *, epochs: int, is_best: bool) -> str:
    """The one plain line an epoch prints (and appends to ``train.log``)."""
    return (f"epoch {row['epoch']}/{epochs}  train loss {tr.loss:.4f} acc {tr.acc:.4f}  val loss {va.loss:.4f} "
            f"acc {va.acc:.4f}  lr {row['lr']:.2e}  {row['seconds']:.1f}s  {tr.samples_per_s:.0f} samples/s"
            f"{'  *best*' if is_best else ''}")
