"""Files a training run leaves in ``--out``: metrics, summary, confusion matrix, plots and log.

Everything is written atomically (``edgecv.io``), so an interrupted run never leaves a
half-written CSV or JSON. Plots use matplotlib, imported lazily with the Agg backend; a missing
matplotlib only skips the PNGs (with a warning), never the run.
"""
from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgecv.io import write_json_atomic, write_text_atomic
from edgecv.plots import pyplot, save_figure, write_confusion_png

METRIC_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "samples_per_s")


class RunLog:
    """Prints one-line messages (rank 0 only) and appends them to ``out/train.log``."""

    def __init__(self, out_dir: Path | None, *, enabled: bool = True, quiet: bool = False) -> None:
        self.path = out_dir / "train.log" if out_dir is not None else None
        self.enabled = enabled
        self.quiet = quiet

    def __call__(self, message: str, *, err: bool = False) -> None:
        if not self.enabled:
            return
        if not self.quiet or err:
            print(message, file=sys.stderr if err else sys.stdout, flush=True)
        self.write(message)

    def write(self, message: str) -> None:
        """Log file only (e.g. a long list of skipped images)."""
        if self.enabled and self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(message.rstrip("\n") + "\n")

    def warn(self, message: str) -> None:
        """Warnings go to stderr even with ``quiet``: they point at problems in the data."""
        self(f"Warning: {message}", err=True)


def write_metrics_csv(path: Path, history: Sequence[dict[str, Any]]) -> Path:
    """The whole history as CSV (rewritten each epoch, so a resumed run continues the same file)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(METRIC_COLUMNS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: _round(row.get(k)) for k in METRIC_COLUMNS})
    return write_text_atomic(path, buf.getvalue())


def _round(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


def per_class_metrics(confusion: np.ndarray, classes: Sequence[str]) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support per class (``per_class.csv``), computed by the same
    :func:`edgecv.metrics.per_class` that ``edgecv val`` reports, rounded for the file."""
    from edgecv.metrics import per_class

    return [m.to_dict() for m in per_class(confusion, classes)]


def write_confusion(out_dir: Path, confusion: np.ndarray, classes: Sequence[str]) -> None:
    """``confusion_matrix.csv`` (rows = true class, columns = predicted) and ``per_class.csv``."""
    cm = np.asarray(confusion, dtype=np.int64)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["true\\predicted", *classes])
    for name, row in zip(classes, cm):
        writer.writerow([name, *row.tolist()])
    write_text_atomic(out_dir / "confusion_matrix.csv", buf.getvalue())
    rows = per_class_metrics(cm, classes)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["class", "precision", "recall", "f1", "support"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out_dir / "per_class.csv", buf.getvalue())


def write_summary(out_dir: Path, summary: dict[str, Any]) -> Path:
    """``summary.json``, rewritten every epoch, so an interrupted run still says where it stands."""
    return write_json_atomic(out_dir / "summary.json", summary)


def best_epoch(history: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The row ``best.pt`` was saved from: highest validation accuracy, ties broken by lower
    validation loss (the rule of ``RunState.record``), so the plot marks the checkpoint's epoch."""
    best: dict[str, Any] | None = None
    inf = float("inf")
    for row in history:
        acc, loss = row.get("val_acc"), row.get("val_loss", inf)
        if acc is None:
            continue
        if best is None or acc > best["val_acc"] or (acc == best["val_acc"] and loss < best.get("val_loss", inf)):
            best = row
    return best


def _mark_best(ax: Any, best: dict[str, Any], key: str, *, text: str) -> None:
    """A dashed line at the best epoch and a star on its validation value, with the number."""
    ax.axvline(best["epoch"], color="tab:green", linestyle="--", linewidth=1, alpha=0.8)
    if best.get(key) is not None:
        ax.plot([best["epoch"]], [best[key]], marker="*", markersize=14, color="tab:green", zorder=5,
                label=f"best epoch {best['epoch']}")
        ax.annotate(text, (best["epoch"], best[key]), xytext=(6, -14 if key == "val_acc" else 10),
                    textcoords="offset points", fontsize=9, color="tab:green")


def _lr_panel(ax: Any, history: Sequence[dict[str, Any]], best: dict[str, Any] | None) -> bool:
    """Learning rate per epoch (log scale when it spans more than 10x); False without ``lr``."""
    points = [(r["epoch"], r["lr"]) for r in history if isinstance(r.get("lr"), (int, float))]
    ax.set(xlabel="epoch", ylabel="learning rate", title="Learning rate")
    if not points:
        ax.text(0.5, 0.5, "no learning rate recorded", ha="center", va="center", transform=ax.transAxes)
        return False
    ax.plot([e for e, _ in points], [v for _, v in points], "o-", color="tab:purple")
    values = [v for _, v in points]
    if min(values) > 0 and max(values) / min(values) > 10:  # cosine/step decay spans decades
        ax.set_yscale("log")
    if best is not None:
        ax.axvline(best["epoch"], color="tab:green", linestyle="--", linewidth=1, alpha=0.8)
    ax.grid(alpha=0.3)
    return True


def plot_curves(path: Path, history: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``curves.png``: loss, accuracy and learning rate per epoch, the best epoch (the one
    ``best.pt`` holds) marked on each; returns what was marked (``best_epoch``, ``lr_panel``)."""
    plt = pyplot()
    epochs = [r["epoch"] for r in history]
    best = best_epoch(history)
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(15, 4.2))
    try:
        for ax, key, title in ((ax_loss, "loss", "Loss"), (ax_acc, "acc", "Accuracy")):
            ax.plot(epochs, [r.get(f"train_{key}") for r in history], "o-", label="train")
            ax.plot(epochs, [r.get(f"val_{key}") for r in history], "o-", label="validation")
            ax.set(xlabel="epoch", ylabel="accuracy" if key == "acc" else "loss", title=title)
        ax_acc.set_ylim(0, 1.05)
        if best is not None:
            _mark_best(ax_loss, best, "val_loss", text=f"val loss {best.get('val_loss', 0):.3f}")
            _mark_best(ax_acc, best, "val_acc", text=f"val acc {best['val_acc']:.3f}")
        for ax in (ax_loss, ax_acc):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        lr = _lr_panel(ax_lr, history, best)
        if best is not None:
            fig.suptitle(f"best epoch {best['epoch']} of {len(history)}: validation accuracy "
                         f"{best['val_acc']:.3f} (saved as best.pt)", fontsize=11)
        save_figure(fig, path)
    finally:
        plt.close(fig)
    return {"path": path, "best_epoch": best["epoch"] if best else None, "lr_panel": lr}


def write_plots(out_dir: Path, history: Sequence[dict[str, Any]], confusion: np.ndarray | None,
                classes: Sequence[str], log: RunLog) -> list[Path]:
    """``curves.png`` (loss, accuracy and learning rate per epoch, best epoch marked) and
    ``confusion_matrix.png`` (best epoch: counts and row-normalised, the picture ``edgecv val``
    draws too)."""
    try:
        pyplot()
    except ImportError:
        log.warn("matplotlib is not installed; skipping curves.png and confusion_matrix.png "
                 "(pip install 'edgecv[train]')")
        return []
    written = []
    if history:
        written.append(plot_curves(out_dir / "curves.png", history)["path"])
    if confusion is not None:
        # the same two-panel picture (counts and row-normalised) as `edgecv val` writes
        write_confusion_png(out_dir / "confusion_matrix.png", confusion, list(classes),
                            title="Confusion matrix (best epoch, validation)")
        written.append(out_dir / "confusion_matrix.png")
    return written
