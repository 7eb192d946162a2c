"""Files a training run leaves in ``--out``: metrics, summary, confusion matrix, plots and log.

Everything is written atomically (``edgecv.io``), so an interrupted run never leaves a
half-written CSV or JSON. Plots use matplotlib, imported lazily with the Agg backend; a missing
matplotlib only skips the PNGs (with a warning), never the run.
"""
from __future__ import annotations

import csv
import io
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgecv.io import write_bytes_atomic, write_json_atomic, write_text_atomic
from edgecv.plots import write_confusion_png

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
    """Precision, recall, F1 and support per class from a (true, predicted) count matrix."""
    cm = np.asarray(confusion, dtype=np.float64)
    rows = []
    for i, name in enumerate(classes):
        tp = cm[i, i]
        predicted, actual = cm[:, i].sum(), cm[i, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"class": name, "precision": round(precision, 4), "recall": round(recall, 4),
                     "f1": round(f1, 4), "support": int(actual)})
    return rows


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


def _pyplot() -> Any:
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    write_bytes_atomic(path, buf.getvalue())


def write_plots(out_dir: Path, history: Sequence[dict[str, Any]], confusion: np.ndarray | None,
                classes: Sequence[str], log: RunLog) -> list[Path]:
    """``curves.png`` (loss and accuracy per epoch) and ``confusion_matrix.png`` (best epoch)."""
    try:
        plt = _pyplot()
    except ImportError:
        log.warn("matplotlib is not installed; skipping curves.png and confusion_matrix.png "
                 "(pip install 'edgecv[train]')")
        return []
    written = []
    if history:
        epochs = [r["epoch"] for r in history]
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
        ax_loss.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
        ax_loss.plot(epochs, [r["val_loss"] for r in history], "o-", label="validation")
        ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
        ax_acc.plot(epochs, [r["train_acc"] for r in history], "o-", label="train")
        ax_acc.plot(epochs, [r["val_acc"] for r in history], "o-", label="validation")
        ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy", ylim=(0, 1.02))
        for ax in (ax_loss, ax_acc):
            ax.grid(alpha=0.3)
            ax.legend()
        _save_figure(fig, out_dir / "curves.png")
        plt.close(fig)
        written.append(out_dir / "curves.png")
    if confusion is not None:
        # the same two-panel picture (counts and row-normalised) as `edgecv val` writes
        write_confusion_png(out_dir / "confusion_matrix.png", confusion, list(classes),
                            title="Confusion matrix (best epoch, validation)")
        written.append(out_dir / "confusion_matrix.png")
    return written
