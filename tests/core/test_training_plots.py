"""The pictures ``edgecv train`` leaves: curves.png (best epoch marked, learning-rate panel) and the
two-panel confusion matrix. torch-free: the writers take plain history rows and a count matrix."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgecv.training.outputs import RunLog, best_epoch, plot_curves, write_plots

pytest.importorskip("matplotlib")


def _history(epochs: int = 8) -> list[dict]:
    rows = []
    for e in range(1, epochs + 1):
        acc = min(0.9, 0.3 + 0.1 * e)  # 0.9 from epoch 6 on: a tie, broken by the lower loss
        rows.append({"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e if e != 7 else 0.05,
                     "train_acc": acc, "val_acc": acc, "lr": 0.1 * 0.5 ** (e - 1), "seconds": 1.0})
    return rows


def test_best_epoch_follows_the_checkpoint_rule() -> None:
    history = _history()
    assert best_epoch(history)["epoch"] == 7  # the same val acc as 6 and 8, lower val loss
    assert best_epoch([]) is None
    history[2]["val_acc"] = 0.95
    assert best_epoch(history)["epoch"] == 3


def test_curves_mark_the_best_epoch_and_plot_the_learning_rate(tmp_path) -> None:
    drawn = plot_curves(tmp_path / "curves.png", _history())
    assert drawn["best_epoch"] == 7 and drawn["lr_panel"] is True
    picture = cv2.imread(str(tmp_path / "curves.png"))
    assert picture is not None and 300 <= picture.shape[0] <= 1000 and picture.shape[1] > 2 * picture.shape[0]
    no_lr = [{k: v for k, v in row.items() if k != "lr"} for row in _history(3)]
    assert plot_curves(tmp_path / "nolr.png", no_lr)["lr_panel"] is False


def test_training_writes_both_pictures_with_a_two_panel_confusion_matrix(tmp_path) -> None:
    confusion = np.array([[20, 2, 1], [3, 18, 0], [0, 4, 25]])
    written = write_plots(tmp_path, _history(), confusion, ["circle", "square", "triangle"], RunLog(None))
    assert [p.name for p in written] == ["curves.png", "confusion_matrix.png"]
    picture = cv2.imread(str(tmp_path / "confusion_matrix.png"))
    assert picture is not None and picture.shape[1] > 1.6 * picture.shape[0]  # counts | row-normalised
