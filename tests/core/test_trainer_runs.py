"""edgecv.train's run folders (runs/exp, runs/exp2, ...), its quiet output and its heartbeat."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

import edgecv  # noqa: E402
from edgecv.demo.synthetic import make_shapes_dataset  # noqa: E402
from edgecv.errors import InputError  # noqa: E402
from edgecv.training import loop  # noqa: E402
from edgecv.training.setup import claim_run_dir  # noqa: E402

TINY = {"model": "simple_cnn", "img_size": 16, "batch_size": 16, "workers": 0, "epochs": 1}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes_dataset(tmp_path_factory.mktemp("data") / "shapes", per_class=8, size=20, seed=0,
                               classes=("circle", "square"))


def test_runs_are_numbered_instead_of_refused(shapes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = edgecv.train(str(shapes), silent=True, **TINY)
    second = edgecv.train(str(shapes), silent=True, **TINY)
    assert first.out_dir == tmp_path.joinpath("runs", "exp").relative_to(tmp_path)
    assert str(second.out_dir) == str(tmp_path.joinpath("runs", "exp2").relative_to(tmp_path))
    assert (tmp_path / "runs/exp/last.pt").is_file() and (tmp_path / "runs/exp2/last.pt").is_file()
    # the resolved folder is part of the recorded recipe
    assert json.loads((tmp_path / "runs/exp2/config.json").read_text())["out"] == "runs/exp2"
    named = [edgecv.train(str(shapes), name="shapes", silent=True, **TINY).out_dir for _ in range(2)]
    assert [str(p) for p in named] == ["runs/shapes", "runs/shapes2"]


def test_exist_ok_reuses_the_folder_and_an_explicit_out_still_refuses(shapes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    edgecv.train(str(shapes), silent=True, **TINY)
    before = (tmp_path / "runs/exp/last.pt").stat().st_mtime_ns
    again = edgecv.train(str(shapes), exist_ok=True, silent=True, **TINY)
    assert str(again.out_dir) == "runs/exp" and not (tmp_path / "runs/exp2").exists()
    assert (tmp_path / "runs/exp/last.pt").stat().st_mtime_ns != before  # replaced
    with pytest.raises(InputError, match="already holds a training run.*leave out --out"):
        edgecv.train(str(shapes), out="runs/exp", silent=True, **TINY)
    with pytest.raises(InputError, match="give either --out or --name"):
        edgecv.train(str(shapes), out="runs/other", name="x", silent=True, **TINY)


def test_a_run_that_fails_on_its_data_leaves_no_numbered_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir(parents=True)
    with pytest.raises(InputError, match="no images"):
        edgecv.train(str(tmp_path / "empty"), silent=True, **TINY)
    assert not (tmp_path / "runs" / "exp").exists()


def test_claim_run_dir(tmp_path):
    (tmp_path / "exp").mkdir()  # an existing (even empty) folder is taken
    assert claim_run_dir(root=tmp_path) == tmp_path / "exp2"
    assert claim_run_dir(root=tmp_path) == tmp_path / "exp3"
    assert claim_run_dir("exp", root=tmp_path, exist_ok=True) == tmp_path / "exp"
    assert claim_run_dir("a", root=tmp_path) == tmp_path / "a" and (tmp_path / "a").is_dir()
    for bad in ("", "a/b", "..", "a\\b"):
        with pytest.raises(InputError, match="--name"):
            claim_run_dir(bad, root=tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        claim_run_dir("x", root=tmp_path / "file")


def test_quiet_prints_exactly_the_final_line_and_silent_nothing(shapes, tmp_path, capsys):
    result = edgecv.train(str(shapes), out=str(tmp_path / "q"), quiet=True, **TINY)
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"best val acc {result.best_val_acc:.4f} at epoch 1; outputs in {tmp_path / 'q'}"]
    assert err == ""
    edgecv.train(str(shapes), out=str(tmp_path / "s"), silent=True, **TINY)
    assert capsys.readouterr() == ("", "")
    log = (tmp_path / "s" / "train.log").read_text()  # the log keeps everything
    assert "epoch 1/1" in log and "best val acc" in log


def test_without_a_terminal_one_plain_line_per_epoch(shapes, tmp_path, capsys):
    edgecv.train(str(shapes), out=str(tmp_path / "r"), **{**TINY, "epochs": 2})
    out = capsys.readouterr().out  # pytest's capture is not a terminal: no bar
    assert "\r" not in out and "batch" not in out  # no heartbeat: these epochs take far less than 30 s
    epoch_lines = [ln for ln in out.splitlines() if ln.startswith("epoch ")]
    assert [ln.split()[1] for ln in epoch_lines] == ["1/2", "2/2"]


def test_heartbeat_lines_inside_long_epochs(shapes, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(loop, "HEARTBEAT_SECONDS", 0.0)  # every batch counts as "30 s later"
    edgecv.train(str(shapes), out=str(tmp_path / "h"), **{**TINY, "batch_size": 4})
    lines = capsys.readouterr().out.splitlines()
    beats = [ln for ln in lines if "batch" in ln]
    train_beats = [ln for ln in beats if ln.startswith("epoch 1/1  batch")]
    assert len(train_beats) == 3  # 12 training images in batches of 4
    assert train_beats[0].startswith("epoch 1/1  batch 1/3  loss ") and "samples/s" in train_beats[0]
    assert any(ln.startswith("epoch 1/1 validation  batch") for ln in beats)
    assert "batch" not in (tmp_path / "h" / "train.log").read_text()  # heartbeats are not kept
    edgecv.train(str(shapes), out=str(tmp_path / "hq"), quiet=True, **{**TINY, "batch_size": 4})
    assert len(capsys.readouterr().out.splitlines()) == 1  # -q: no heartbeat either


def test_heartbeat_is_time_based():
    now = [100.0]
    said: list[str] = []
    beat = loop.Heartbeat(said.append, desc="epoch 2/5", total=50, interval=30.0, clock=lambda: now[0])
    for done in range(1, 11):  # 10 batches of 7 s each: lines after 30 s and 60 s only
        now[0] += 7.0
        beat.beat(done, "loss 0.5000")
    assert said == ["epoch 2/5  batch 5/50  loss 0.5000  0m35s", "epoch 2/5  batch 10/50  loss 0.5000  1m10s"]
    assert loop.HEARTBEAT_SECONDS <= 30
