"""edgecv.train: outputs, checkpoints, exact resume, atomic saves, transfer learning."""
from __future__ import annotations

import csv
import json

import pytest

torch = pytest.importorskip("torch")

import edgecv  # noqa: E402
from edgecv.demo.synthetic import make_shapes_dataset, make_text_dataset  # noqa: E402
from edgecv.errors import CheckpointError, InputError  # noqa: E402
from edgecv.models.checkpoint import load_checkpoint  # noqa: E402
from edgecv.training.trainer import TrainConfig  # noqa: E402

TINY = {"model": "simple_cnn", "img_size": 16, "batch_size": 16, "workers": 0, "quiet": True,
        "model_kwargs": {"dropout": 0.1}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes_dataset(tmp_path_factory.mktemp("data") / "shapes", per_class=12, size=20, seed=0,
                               classes=("circle", "square", "triangle"))


def test_image_run_writes_every_output(shapes, tmp_path):
    out = tmp_path / "run"
    result = edgecv.train(str(shapes), out=str(out), epochs=2, **TINY)
    for name in ("last.pt", "best.pt", "metrics.csv", "summary.json", "config.json", "curves.png",
                 "confusion_matrix.png", "confusion_matrix.csv", "per_class.csv", "train.log"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"} <= set(rows[0])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["classes"] == ["circle", "square", "triangle"] and summary["model"] == "simple_cnn"
    assert summary["best_epoch"] == result.best_epoch and summary["best_val_acc"] == pytest.approx(result.best_val_acc)
    ckpt = load_checkpoint(out / "best.pt")  # weights_only=True
    assert ckpt["model"] == "simple_cnn" and ckpt["task"] == "image" and ckpt["epoch"] == result.best_epoch
    assert ckpt["model_kwargs"] == {"dropout": 0.1, "num_classes": 3, "in_channels": 3, "input_size": 16}
    assert ckpt["preprocess"]["size"] == [16, 16] and ckpt["preprocess"]["resize"] == "stretch"
    assert ckpt["classes"] == ["circle", "square", "triangle"] and ckpt["tokenizer"] is None
    cm = list(csv.reader(open(out / "confusion_matrix.csv")))
    assert cm[0] == ["true\\predicted", "circle", "square", "triangle"]
    assert sum(int(v) for row in cm[1:] for v in row[1:]) == 6  # 20 % of 12 per class, 3 classes
    per_class = list(csv.DictReader(open(out / "per_class.csv")))
    assert [r["class"] for r in per_class] == ["circle", "square", "triangle"]
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 0 and config["model"] == "simple_cnn" and config["epochs"] == 2


def _interrupt_in_epoch(monkeypatch, epoch):
    """Make the run die with Ctrl-C inside epoch ``epoch`` (after ``epoch - 1`` were saved)."""
    import edgecv.training.loop as loop

    real, calls = loop.train_one_epoch, []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == epoch:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "train_one_epoch", wrapped)


def test_resume_is_bit_exact(shapes, tmp_path, monkeypatch):
    """3 epochs straight == a 3-epoch run interrupted in epoch 3 and resumed (weights, optimiser, metrics)."""
    opts = dict(TINY, seed=7, warmup_epochs=1)
    edgecv.train(str(shapes), out=str(tmp_path / "straight"), epochs=3, **opts)
    with monkeypatch.context() as patch:
        _interrupt_in_epoch(patch, 3)
        with pytest.raises(KeyboardInterrupt):
            edgecv.train(str(shapes), out=str(tmp_path / "split"), epochs=3, **opts)
    assert load_checkpoint(tmp_path / "split" / "last.pt")["epoch"] == 2
    edgecv.train(resume=str(tmp_path / "split" / "last.pt"), quiet=True, workers=0)
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "split" / "last.pt")
    assert a["epoch"] == b["epoch"] == 3
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(pa["exp_avg"], pb["exp_avg"])
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_s")} for r in rows]  # noqa: E731
    assert strip(a["history"]) == strip(b["history"])
    assert len(list(csv.DictReader(open(tmp_path / "split" / "metrics.csv")))) == 3


def test_interrupted_save_keeps_previous_checkpoint(shapes, tmp_path, monkeypatch):
    out = tmp_path / "run"
    edgecv.train(str(shapes), out=str(out), epochs=1, **TINY)
    before = (out / "last.pt").read_bytes()
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        with open(f, "r+b") as handle:  # half-written file, then the process "dies"
            handle.truncate(100)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        edgecv.train(resume=str(out / "last.pt"), epochs=2, quiet=True, workers=0)
    monkeypatch.setattr(torch, "save", real_save)
    assert (out / "last.pt").read_bytes() == before
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    result = edgecv.train(resume=str(out / "last.pt"), epochs=2, quiet=True, workers=0)
    assert [r["epoch"] for r in result.history] == [1, 2]


def test_resume_guards(shapes, tmp_path):
    out = tmp_path / "run"
    edgecv.train(str(shapes), out=str(out), epochs=1, **TINY)
    with pytest.raises(CheckpointError, match="checkpoint is for model 'simple_cnn', not 'squeezenet1_1'"):
        edgecv.train(resume=str(out / "last.pt"), model="squeezenet1_1", epochs=3)
    with pytest.raises(InputError, match="already trained 1 of 1 epochs"):
        edgecv.train(resume=str(out / "last.pt"))
    with pytest.raises(InputError, match="already holds a training run"):
        edgecv.train(str(shapes), out=str(out), epochs=1, **TINY)
    torch.save({"w": torch.zeros(1)}, tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="not an edgecv training checkpoint"):
        edgecv.train(resume=str(tmp_path / "bare.pt"), epochs=2)


def test_weights_and_frozen_backbone(shapes, tmp_path):
    first = edgecv.train(str(shapes), out=str(tmp_path / "a"), epochs=1, **TINY)
    # Two classes now: the head is re-initialised, the backbone comes from the first run.
    two = tmp_path / "two"
    for name in ("circle", "square"):
        (two / name).mkdir(parents=True)
        for p in sorted((shapes / name).iterdir())[:6]:
            (two / name / p.name).write_bytes(p.read_bytes())
    src = load_checkpoint(first.last_checkpoint)["state_dict"]
    result = edgecv.train(str(two), out=str(tmp_path / "b"), epochs=1, weights=str(first.last_checkpoint),
                          freeze_backbone=True, **TINY)
    dst = load_checkpoint(result.last_checkpoint)["state_dict"]
    # simple_cnn's head is its last Linear ("classifier.4"); everything before it stays frozen.
    for key in ("features.0.weight", "features.3.bias", "classifier.1.weight"):
        assert torch.equal(src[key], dst[key]), key
    assert src["classifier.4.weight"].shape[0] == 3 and dst["classifier.4.weight"].shape[0] == 2
    assert "kept a fresh head" in (tmp_path / "b" / "train.log").read_text()


def test_unfreeze_at_trains_the_backbone_later(shapes, tmp_path):
    result = edgecv.train(str(shapes), out=str(tmp_path / "u"), epochs=2, freeze_backbone=True, unfreeze_at=2,
                          **TINY)
    log = (tmp_path / "u" / "train.log").read_text()
    assert "epoch 2: backbone unfrozen" in log and len(result.history) == 2


def test_text_run_saves_tokenizer(tmp_path):
    path = make_text_dataset(tmp_path / "t.csv", n=90, seed=1)
    result = edgecv.train(str(path), model="lstm_classifier", out=str(tmp_path / "t"), epochs=1, batch_size=16,
                          quiet=True, vocab_size=30, max_len=12, model_kwargs={"embed_dim": 16, "hidden_size": 16})
    ckpt = load_checkpoint(result.last_checkpoint)
    assert ckpt["task"] == "text" and ckpt["preprocess"] is None
    assert ckpt["tokenizer"]["max_len"] == 12 and len(ckpt["tokenizer"]["vocab"]) == 30
    assert ckpt["model_kwargs"]["vocab_size"] == 30 and ckpt["classes"] == ["negative", "neutral", "positive"]
    assert ckpt["config"]["grad_clip"] is None  # default: 1.0 is applied for text models


def test_config_validation():
    for bad in ({"epochs": 0}, {"unfreeze_at": 2}, {"label_smoothing": 1.0}, {"resize": "crop"}):
        with pytest.raises(InputError):
            TrainConfig(**bad).validate()
    with pytest.raises(InputError, match="unknown training option"):
        edgecv.train("x", colour="red")


def test_torchvision_style_state_dict_as_weights(shapes, tmp_path):
    from edgecv.models import create_model

    torch.manual_seed(3)
    donor = create_model("simple_cnn", num_classes=10, in_channels=3, input_size=16, dropout=0.1)
    torch.save(donor.state_dict(), tmp_path / "donor.pth")  # bare state dict, 10-class head
    result = edgecv.train(str(shapes), out=str(tmp_path / "r"), epochs=1, weights=str(tmp_path / "donor.pth"),
                          freeze_backbone=True, **TINY)
    state = load_checkpoint(result.last_checkpoint)["state_dict"]
    assert torch.equal(state["features.0.weight"], donor.state_dict()["features.0.weight"])
    assert state["classifier.4.weight"].shape[0] == 3
    log = (tmp_path / "r" / "train.log").read_text()
    assert "donor.pth: loaded" in log and "kept a fresh head (classifier.4.weight, classifier.4.bias)" in log


def test_train_and_val_folders_are_used_as_given(tmp_path):
    data = make_shapes_dataset(tmp_path / "d", classes=("circle", "star"), per_class=8, size=20, split=True,
                               val_fraction=0.25)
    result = edgecv.train(str(data), out=str(tmp_path / "r"), epochs=1, **TINY)
    assert result.classes == ["circle", "star"]
    log = (tmp_path / "r" / "train.log").read_text()
    assert f"12 train / 4 val images, 2 classes ({data}/train + {data}/val)" in log
