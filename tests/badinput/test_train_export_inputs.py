"""Bad input to ``edgecv train``, ``edgecv export`` and ``edgecv demo`` through a real subprocess:
one line on stderr naming the input and what was expected, exit 1 (usage errors 2), never a
traceback, and nothing lost or left behind.

Unwritable places are paths that fail for root too (CI runs as root, where a chmod'ed folder is
still writable): under /proc and /sys, under an existing regular file, or an existing file where
a folder is needed.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _cli import assert_clean_failure, run_edgecv  # noqa: E402

torch = pytest.importorskip("torch")


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgecv.demo.synthetic import make_shapes_dataset

    return make_shapes_dataset(tmp_path_factory.mktemp("bad_train") / "shapes", per_class=6, size=16,
                               classes=("circle", "square"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny edgecv image checkpoint (simple_cnn, 16 px, two classes)."""
    from edgecv.models import create_model
    from edgecv.models.checkpoint import save_checkpoint
    from edgecv.preprocess import default_spec

    torch.manual_seed(0)
    model = create_model("simple_cnn", num_classes=2, in_channels=3, input_size=16)
    return save_checkpoint({"model": "simple_cnn", "model_kwargs": model.edgecv_kwargs, "task": "image",
                            "state_dict": model.state_dict(), "classes": ["circle", "square"],
                            "preprocess": default_spec(size=16).to_dict(), "tokenizer": None},
                           tmp_path_factory.mktemp("bad_export") / "best.pt")


# ----------------------------------------------------------------------------- 6: numeric training options
BAD_NUMBERS = [
    ("--lr", "-0.1"), ("--lr", "0"), ("--lr", "nan"), ("--lr", "inf"),
    ("--weight-decay", "-0.01"),
    ("--val-split", "0"), ("--val-split", "1"), ("--val-split", "1.5"),
    ("--epochs", "0"), ("--batch-size", "0"), ("--warmup-epochs", "-1"),
    ("--label-smoothing", "1"), ("--label-smoothing", "-0.1"),
    ("--grad-clip", "0"), ("--max-len", "0"), ("--vocab-size", "2"), ("--min-freq", "0"),
    ("--img-size", "4"), ("--workers", "-1"), ("--unfreeze-at", "0"),
    ("--min-crop-scale", "0"), ("--min-crop-scale", "1.5"), ("--seed", "-1"),
]


@pytest.mark.parametrize("option, value", BAD_NUMBERS, ids=[f"{o}={v}" for o, v in BAD_NUMBERS])
def test_out_of_range_training_numbers_are_usage_errors(option: str, value: str, shapes: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_edgecv("train", shapes, "--model", "simple_cnn", "--out", out, option, value)
    line = assert_clean_failure(proc, code=2, says=[option])
    assert value in line or value.lstrip("-") in line, line  # names the value it refused
    assert not out.exists()  # nothing started


def test_the_python_api_refuses_the_same_numbers() -> None:
    from edgecv.errors import InputError
    from edgecv.training.config import TrainConfig

    for option, value in BAD_NUMBERS:
        field = option[2:].replace("-", "_")
        number = float(value) if field in {"lr", "weight_decay", "val_split", "warmup_epochs", "label_smoothing",
                                           "grad_clip", "min_crop_scale"} else int(value)
        cfg = TrainConfig(**{field: number}, **({"freeze_backbone": True} if field == "unfreeze_at" else {}))
        with pytest.raises(InputError, match=option):
            cfg.validate()


def test_cli_and_api_agree_on_the_smallest_sizes() -> None:
    from edgecv.commands import train as train_command
    from edgecv.training import config

    assert train_command.MIN_IMG_SIZE == config.MIN_IMG_SIZE
    assert train_command.MIN_VOCAB_SIZE == config.MIN_VOCAB_SIZE


# ----------------------------------------------------------------------------- 7, 8: where the run is written
def test_train_out_is_an_existing_file(shapes: Path, tmp_path: Path) -> None:
    notes = tmp_path / "some_file.txt"
    notes.write_text("keep me")
    proc = run_edgecv("train", shapes, "--model", "simple_cnn", "--img-size", "16", "--epochs", "1",
                      "--workers", "0", "--out", notes)
    assert_clean_failure(proc, names=[notes], says=["--out", "not a folder"])
    assert notes.read_text() == "keep me" and _listing(tmp_path) == ["some_file.txt"]


@pytest.mark.parametrize("where", ["proc", "sys", "under_a_file"])
def test_train_out_cannot_be_written_fails_before_training(where: str, shapes: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = {"proc": Path("/proc/edgecv-test/run"), "sys": Path("/sys/edgecv-test"),
           "under_a_file": blocker / "run"}[where]
    proc = run_edgecv("train", shapes, "--model", "simple_cnn", "--img-size", "16", "--epochs", "1",
                      "--workers", "0", "--out", out)
    assert_clean_failure(proc, names=[out], says=["--out", "expected a writable"])
    assert "epoch 1/1" not in proc.stdout + proc.stderr  # refused before any training
    assert _listing(tmp_path) == ["a_file"]


@pytest.mark.parametrize("where", ["proc", "sys", "under_a_file", "folder_in_the_way"])
def test_export_output_cannot_be_written(where: str, checkpoint: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    output = {"proc": Path("/proc/edgecv-test/model.onnx"), "sys": Path("/sys/edgecv-test/model.onnx"),
              "under_a_file": blocker / "model.onnx", "folder_in_the_way": tmp_path / "m.onnx"}[where]
    if where == "folder_in_the_way":  # the report beside the model cannot be written
        (tmp_path / "m.export.json").mkdir()
    before = _listing(tmp_path)
    proc = run_edgecv("export", checkpoint, "-o", output, "--no-simplify")
    named = tmp_path / "m.export.json" if where == "folder_in_the_way" else output
    assert_clean_failure(proc, names=[named], says=["-o"])
    assert _listing(tmp_path) == before  # nothing left behind, not even a scratch folder


@pytest.mark.parametrize("where", ["proc", "under_a_file"])
def test_demo_out_cannot_be_written(where: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = Path("/proc/edgecv-test/demo") if where == "proc" else blocker / "demo"
    proc = run_edgecv("demo", "--quick", "--out", out)
    assert_clean_failure(proc, names=[out], says=["--out", "expected a writable"])
    assert "[1/5]" not in proc.stdout + proc.stderr  # refused before generating anything
    assert _listing(tmp_path) == ["a_file"]


# ----------------------------------------------------------------------------- 9: what a file really is
def _onnx_file(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    onnx.save(helper.make_model(graph), str(path))
    return path


@pytest.mark.parametrize("name", ["model.onnx", "renamed.pt"])
def test_export_given_an_onnx_model(name: str, tmp_path: Path) -> None:
    given = _onnx_file(tmp_path / name)
    proc = run_edgecv("export", given, "-o", tmp_path / "out" / "m.onnx")
    line = assert_clean_failure(proc, names=[given], says=["is an ONNX model, not a PyTorch checkpoint",
                                                           "edgecv train", ".pt"])
    assert "Python objects" not in line
    assert not (tmp_path / "out").exists()


def test_export_given_random_bytes(tmp_path: Path) -> None:
    given = tmp_path / "weights.pt"
    given.write_bytes(bytes(range(7, 256)) * 3)
    proc = run_edgecv("export", given, "-o", tmp_path / "out" / "m.onnx")
    line = assert_clean_failure(proc, names=[given], says=["not a PyTorch checkpoint", "edgecv train"])
    assert "Python objects" not in line


@pytest.mark.parametrize("content", [b"hello, this is a text file\n", b"e\x01\x02"])
def test_resume_from_a_file_that_is_no_checkpoint_gives_a_reason(content: bytes, tmp_path: Path) -> None:
    given = tmp_path / "last.pt"
    given.write_bytes(content)
    proc = run_edgecv("train", "--resume", given, "--epochs", "2")
    line = assert_clean_failure(proc, names=[given], says=["not a PyTorch checkpoint", "edgecv train"])
    assert not re.search(r"\(\d+\)\s*$", line), line  # a reason, not a bare "(101)"
    assert given.read_bytes() == content


def test_resume_from_an_onnx_model(tmp_path: Path) -> None:
    given = _onnx_file(tmp_path / "model.onnx")
    proc = run_edgecv("train", "--resume", given, "--epochs", "2")
    assert_clean_failure(proc, names=[given], says=["is an ONNX model, not a PyTorch checkpoint"])
