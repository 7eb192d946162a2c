"""Classification metrics from predictions and labels (numpy only).

Evaluation on the device reports what a user needs to choose a file: top-1 / top-k accuracy,
macro F1 (every class counts the same, so a rare class that the int8 file breaks is not hidden
by a large easy one), precision/recall/F1 per class, the confusion matrix and the pairs that are
confused most. The matrix may have one more column than rows: ``(other)`` collects predictions of
model classes that have no folder in the data (a 1000-class ImageNet model evaluated on five
folders), so every sample is counted exactly once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

OTHER = "(other)"  # column of predictions outside the evaluated classes


@dataclass
class ClassMetrics:
    """Precision, recall, F1 and support of one class."""

    name: str
    precision: float
    recall: float
    f1: float
    support: int

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.name, "precision": round(self.precision, 4), "recall": round(self.recall, 4),
                "f1": round(self.f1, 4), "support": self.support}


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes + 1) counts, rows = true class, columns = predicted class; a
    prediction outside ``[0, num_classes)`` (marked -1 by the caller) lands in the last column."""
    t = np.asarray(truth, dtype=np.int64)
    p = np.asarray(predicted, dtype=np.int64)
    p = np.where((p < 0) | (p >= num_classes), num_classes, p)
    flat = np.bincount(t * (num_classes + 1) + p, minlength=num_classes * (num_classes + 1))
    return flat.reshape(num_classes, num_classes + 1)


def per_class(confusion: np.ndarray, classes: Sequence[str]) -> list[ClassMetrics]:
    """Per-class figures from a confusion matrix (extra ``(other)`` columns count as wrong)."""
    cm = np.asarray(confusion, dtype=np.float64)
    rows = []
    for i, name in enumerate(classes):
        tp = cm[i, i]
        predicted, actual = cm[:, i].sum(), cm[i, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(ClassMetrics(name, float(precision), float(recall), float(f1), int(actual)))
    return rows


def macro_f1(rows: Sequence[ClassMetrics]) -> float:
    """Mean F1 over the classes that have samples."""
    scored = [r.f1 for r in rows if r.support > 0]
    return float(np.mean(scored)) if scored else 0.0


def top_k_hits(ranked: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(N, k) ranked class indices and (N,) true indices -> (N,) bool: truth among the k."""
    return (np.asarray(ranked) == np.asarray(truth)[:, None]).any(axis=1)


def worst_confusions(confusion: np.ndarray, classes: Sequence[str], *, limit: int = 5) -> list[dict[str, Any]]:
    """The off-diagonal cells with the most samples, largest first: what the model mixes up.
    ``rate`` is the share of the true class's samples that went to that prediction."""
    cm = np.asarray(confusion, dtype=np.int64)
    names = list(classes) + ([OTHER] if cm.shape[1] > len(classes) else [])
    cells = []
    for i in range(cm.shape[0]):
        support = int(cm[i].sum())
        for j in range(cm.shape[1]):
            if i != j and cm[i, j] > 0:
                cells.append({"true": names[i], "predicted": names[j], "count": int(cm[i, j]),
                              "rate": round(cm[i, j] / support, 4) if support else 0.0})
    cells.sort(key=lambda c: (-c["count"], -c["rate"], c["true"], c["predicted"]))
    return cells[:limit]


def column_names(confusion: np.ndarray, classes: Sequence[str]) -> list[str]:
    """Column labels of a confusion matrix: the classes, plus ``(other)`` when it has that column."""
    return list(classes) + ([OTHER] if np.asarray(confusion).shape[1] > len(classes) else [])


def trim_other(confusion: np.ndarray) -> np.ndarray:
    """Drop the ``(other)`` column when no prediction fell there (a model with the data's classes)."""
    cm = np.asarray(confusion)
    if cm.shape[1] > cm.shape[0] and not cm[:, cm.shape[0]:].any():
        return cm[:, : cm.shape[0]]
    return cm
