"""``edgecv train`` through click's CliRunner: a real run, --json, resume, and bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")

from edgecv.cli import cli  # noqa: E402
from edgecv.demo.synthetic import make_shapes_dataset, make_text_dataset  # noqa: E402

TINY = ["--model", "simple_cnn", "--img-size", "16", "--batch-size", "16", "--workers", "0"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes_dataset(tmp_path_factory.mktemp("cli") / "shapes", per_class=8, size=20,
                               classes=("circle", "square"))


def _run(*args):
    return CliRunner().invoke(cli, ["train", *map(str, args)])


def test_train_json_then_resume(shapes, tmp_path):
    out = tmp_path / "run"
    res = _run(shapes, *TINY, "--epochs", "1", "--out", out, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["model"] == "simple_cnn" and summary["classes"] == ["circle", "square"]
    assert summary["epochs"] == 1 and (out / "best.pt").is_file()
    res = _run("--resume", out / "last.pt", "--epochs", "2")
    assert res.exit_code == 0, res.output
    assert "resumed from epoch 1" in res.output and "epoch 2/2" in res.output


def test_resume_checkpoint_of_another_model(shapes, tmp_path):
    out = tmp_path / "run"
    assert _run(shapes, *TINY, "--epochs", "1", "--out", out, "-q").exit_code == 0
    res = _run("--resume", out / "last.pt", "--model", "squeezenet1_1", "--epochs", "2")
    assert res.exit_code == 1
    assert "Error: " in res.output and "checkpoint is for model 'simple_cnn', not 'squeezenet1_1'" in res.output
    assert len(res.output.strip().splitlines()) == 1
    res = _run(shapes, *TINY, "--epochs", "1", "--out", out)  # an explicit --out is never replaced silently
    assert res.exit_code == 1 and "already holds a training run" in res.output


def test_corrupt_images_are_skipped_and_listed(shapes, tmp_path):
    data = tmp_path / "data"
    for cls in ("circle", "square"):
        (data / cls).mkdir(parents=True)
        for p in (shapes / cls).iterdir():
            (data / cls / p.name).write_bytes(p.read_bytes())
    (data / "circle" / "broken.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)  # JPEG header, no data
    (data / "square" / "notes.png").write_text("not an image")
    out = tmp_path / "run"
    res = _run(data, *TINY, "--epochs", "1", "--out", out, "--val-split", "0.25")
    assert res.exit_code == 0, res.output
    log = (out / "train.log").read_text()
    assert "skipped: " + str(data / "square" / "notes.png") in log
    assert "skipped: " + str(data / "circle" / "broken.jpg") in log
    assert "1 unreadable image files were skipped" in res.output
    assert "1 images failed to decode and were skipped" in res.output


@pytest.mark.parametrize("case, message", [
    ("single", "only one class ('circle'); a classifier needs at least two class folders"),
    ("no_images", "no images found"),
    ("empty_class", None),
    ("missing_column", "no column 'sentence' (columns: text, label; choose one with --text-column)"),
    ("one_example", "labels with only one example"),
])
def test_bad_input(shapes, tmp_path, case, message):
    out = tmp_path / "out"
    if case == "single":
        (tmp_path / "d" / "circle").mkdir(parents=True)
        for p in (shapes / "circle").iterdir():
            (tmp_path / "d" / "circle" / p.name).write_bytes(p.read_bytes())
        res = _run(tmp_path / "d", *TINY, "--out", out)
    elif case == "no_images":
        (tmp_path / "d" / "a").mkdir(parents=True)
        (tmp_path / "d" / "b").mkdir(parents=True)
        res = _run(tmp_path / "d", *TINY, "--out", out)
    elif case == "empty_class":
        d = tmp_path / "d"
        for cls in ("circle", "square"):
            (d / cls).mkdir(parents=True)
            for p in (shapes / cls).iterdir():
                (d / cls / p.name).write_bytes(p.read_bytes())
        (d / "empty").mkdir()
        res = _run(d, *TINY, "--out", out, "--epochs", "1", "-q")
        assert res.exit_code == 0, res.output
        assert "Warning: class folder" in res.output and "leaving class 'empty' out" in res.output
        assert json.loads((out / "summary.json").read_text())["classes"] == ["circle", "square"]
        return
    elif case == "missing_column":
        path = make_text_dataset(tmp_path / "t.csv", n=30)
        res = _run(path, "--text-column", "sentence", "--out", out)
    else:
        path = tmp_path / "t.csv"
        path.write_text("text,label\n" + "".join(f"good {i},pos\nbad {i},neg\n" for i in range(6)) + "odd one,rare\n")
        res = _run(path, "--model", "lstm_classifier", "--epochs", "1", "--out", out, "-q")
        assert res.exit_code == 0, res.output
        assert message in res.output and "rare" in res.output
        return
    assert res.exit_code == 1, res.output
    assert res.output.startswith("Error: ") and message in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not out.exists() or not (out / "last.pt").exists()


def test_model_args_reach_the_builder(shapes, tmp_path):
    from edgecv.models.checkpoint import load_checkpoint

    out = tmp_path / "run"
    res = _run(shapes, *TINY, "--epochs", "1", "--out", out, "-q", "--model-arg", "dropout=0.25")
    assert res.exit_code == 0, res.output
    assert load_checkpoint(out / "last.pt")["model_kwargs"]["dropout"] == 0.25
    res = _run(shapes, *TINY, "--out", tmp_path / "bad", "--model-arg", "depth=3")
    assert res.exit_code == 1 and "model 'simple_cnn': bad arguments" in res.output
    assert _run(shapes, *TINY, "--model-arg", "dropout").exit_code == 2


def test_usage_errors():
    res = CliRunner().invoke(cli, ["train"])
    assert res.exit_code == 2 and "missing DATA" in res.output
    res = CliRunner().invoke(cli, ["train", ".", "--optimizer", "lion"])
    assert res.exit_code == 2


def test_help_is_torch_free_and_has_an_example():
    code = ("import sys; from edgecv.cli import main\n"
            "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "edgecv train data/ --model mobilenet_v2" in proc.stdout and "--resume" in proc.stdout


def test_q_prints_exactly_the_final_line(shapes, tmp_path):
    out = tmp_path / "run"
    res = _run(shapes, *TINY, "--epochs", "2", "--out", out, "-q")
    assert res.exit_code == 0, res.output
    assert res.stderr == ""
    lines = res.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("best val acc ") and lines[0].endswith(f"outputs in {out}")


def test_train_twice_writes_runs_exp_then_exp2(shapes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for expected in ("runs/exp", "runs/exp2"):
        res = _run(shapes, *TINY, "--epochs", "1", "-q")
        assert res.exit_code == 0, res.output
        assert res.stdout.strip().endswith(f"outputs in {expected}")
    res = _run(shapes, *TINY, "--epochs", "1", "-q", "--name", "shapes")
    assert res.stdout.strip().endswith("outputs in runs/shapes")
    res = _run(shapes, *TINY, "--epochs", "1", "-q", "--name", "shapes", "--exist-ok")
    assert res.stdout.strip().endswith("outputs in runs/shapes")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["exp", "exp2", "shapes"]
    res = _run(shapes, *TINY, "--epochs", "1", "--name", "x", "--out", tmp_path / "o")
    assert res.exit_code == 2 and "--name" in res.output


def test_augment_options_reach_the_config(shapes, tmp_path):
    cases = ((["--no-augment"], "none", False), (["--augment", "strong", "--hflip"], "strong", True),
             ([], "light", False))
    for args, augment, hflip in cases:
        out = tmp_path / "-".join(args or ["default"])
        res = _run(shapes, *TINY, "--epochs", "1", "-q", "--out", out, *args)
        assert res.exit_code == 0, res.output
        config = json.loads((out / "config.json").read_text())
        assert (config["augment"], config["hflip"]) == (augment, hflip)
        assert f"augment {augment}{' + hflip' if hflip else ''}" in (out / "train.log").read_text()
    res = _run(shapes, *TINY, "--no-augment", "--augment", "standard")
    assert res.exit_code == 2 and "--no-augment contradicts --augment standard" in res.output
    assert _run(shapes, *TINY, "--augment", "heavy").exit_code == 2


def test_piped_output_is_plain_lines_and_the_final_line(shapes, tmp_path):
    """A real subprocess with stdout piped (not a terminal): no progress bar, one line per epoch."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "edgecv", "train", str(shapes), *TINY, "--epochs", "2", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stdout + proc.stderr and "it/s" not in proc.stderr  # no tqdm bar anywhere
    epochs = [ln for ln in proc.stdout.splitlines() if ln.startswith("epoch ")]
    assert [ln.split()[1] for ln in epochs] == ["1/2", "2/2"]
    assert proc.stdout.splitlines()[-1].endswith(f"outputs in {out}")
    quiet = subprocess.run(cmd[:-1] + [str(tmp_path / "q"), "-q"], capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and len(quiet.stdout.splitlines()) == 1 and quiet.stderr == ""
