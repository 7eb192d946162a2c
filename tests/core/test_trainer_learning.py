"""Training must actually learn: generated shapes and sentences to >= 95 % validation accuracy.

These are the in-repo stand-ins for the real data sets the maintainers check by hand; they run
on the CPU in seconds with one intra-op thread (settings chosen for that, recorded here).
"""
from __future__ import annotations

import time

import pytest

torch = pytest.importorskip("torch")

import edgecv  # noqa: E402
from edgecv.demo.synthetic import make_shapes_dataset, make_text_dataset  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_simple_cnn_learns_coloured_shapes(tmp_path):
    # 4 classes x 700 images of random colour, size, position, rotation and background noise;
    # 16 px input keeps the FC layer small so the CNN generalises across positions quickly.
    data = make_shapes_dataset(tmp_path / "shapes", per_class=700, size=32, seed=0)
    start = time.perf_counter()
    result = edgecv.train(str(data), model="simple_cnn", img_size=16, epochs=15, batch_size=64, lr=2e-3,
                          min_crop_scale=0.8, model_kwargs={"dropout": 0.0}, workers=0, quiet=True,
                          out=str(tmp_path / "run"))
    seconds = time.perf_counter() - start
    assert result.best_val_acc >= 0.95, (result.best_val_acc, [round(r["val_acc"], 3) for r in result.history])
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] / 3
    print(f"shapes: best val acc {result.best_val_acc:.4f} at epoch {result.best_epoch} in {seconds:.1f}s")


@pytest.mark.parametrize("model, options", [
    ("lstm_classifier", {"lr": 3e-3, "epochs": 20, "model_kwargs": {"embed_dim": 32, "hidden_size": 32}}),
    ("attention_classifier", {"lr": 1e-3, "epochs": 12,
                              "model_kwargs": {"embed_dim": 64, "num_heads": 4, "num_layers": 2, "ff_dim": 128}}),
])
def test_text_models_learn_negation(tmp_path, model, options):
    # Labels need word order ("not good" is negative, "not blue" neutral): bag-of-words fails.
    path = make_text_dataset(tmp_path / "reviews.csv", n=1500, seed=0)
    start = time.perf_counter()
    result = edgecv.train(str(path), model=model, batch_size=32, quiet=True, out=str(tmp_path / "run"),
                          **options)
    seconds = time.perf_counter() - start
    assert result.best_val_acc >= 0.95, (result.best_val_acc, [round(r["val_acc"], 3) for r in result.history])
    print(f"{model}: best val acc {result.best_val_acc:.4f} at epoch {result.best_epoch} in {seconds:.1f}s")
