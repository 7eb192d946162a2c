"""Plots that training and evaluation share (torch-free; matplotlib imported only when drawing).

The confusion matrix is drawn twice side by side: the counts (what happened) and each row
normalised to the true class's samples (what a class's recall looks like, so a small class is as
visible as a large one). Training (``edgecv train``) and evaluation (``edgecv val``) write the
same picture, so a confusion seen after training can be compared with the deployed file's.
matplotlib is an optional dependency: callers catch ``ImportError`` and skip the PNG with a
warning instead of failing the run.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgecv.io import write_bytes_atomic

MAX_ANNOTATED = 30  # classes above this are too small to print a number in every cell


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed); raises ImportError without it."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike[str], *, dpi: int = 110) -> Path:
    """Render ``fig`` to PNG and write it atomically (an interrupted run leaves no half file)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return write_bytes_atomic(path, buf.getvalue())


def row_normalised(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (rows without samples stay 0)."""
    cm = np.asarray(counts, dtype=np.float64)
    sums = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, sums, out=np.zeros_like(cm), where=sums > 0)


def _panel(fig: Any, ax: Any, values: np.ndarray, rows: Sequence[str], columns: Sequence[str], *,
           title: str, fmt: str, vmax: float | None) -> None:
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=vmax, aspect="auto")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set(xticks=range(len(columns)), yticks=range(len(rows)), xlabel="predicted", ylabel="true", title=title)
    ax.set_xticklabels(columns, rotation=45, ha="right")
    ax.set_yticklabels(rows)
    if max(len(rows), len(columns)) <= MAX_ANNOTATED:
        limit = (vmax if vmax is not None else (values.max() if values.size else 0)) / 2
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                ax.text(j, i, format(values[i, j], fmt), ha="center", va="center", fontsize=8,
                        color="white" if values[i, j] > limit else "black")


def write_confusion_png(path: str | os.PathLike[str], counts: np.ndarray, rows: Sequence[str],
                        columns: Sequence[str] | None = None, *, title: str = "Confusion matrix") -> Path:
    """``path``: counts (left) and row-normalised rates (right); rows = true class, columns =
    predicted (``columns`` may add an ``(other)`` column for predictions outside ``rows``)."""
    plt = pyplot()
    cm = np.asarray(counts, dtype=np.int64)
    cols = list(columns) if columns is not None else list(rows)
    side = min(12.0, 2 + 0.6 * max(len(rows), len(cols)))
    fig, (ax_counts, ax_rates) = plt.subplots(1, 2, figsize=(2 * side + 2, side),
                                             gridspec_kw={"wspace": 0.45})
    try:
        # the shared title above both panels: as panel titles, two long titles ran into each other
        fig.suptitle(f"{title}: {int(cm.sum())} samples", fontsize=12)
        _panel(fig, ax_counts, cm, rows, cols, title="counts", fmt="d", vmax=None)
        _panel(fig, ax_rates, row_normalised(cm), rows, cols, title="row-normalised: share of each true class",
               fmt=".2f", vmax=1.0)
        return save_figure(fig, path)
    finally:
        plt.close(fig)
