"""Bad input to ``edgecv profile`` and ``edgecv inspect`` through the real command in a subprocess:
the right exit code, one stderr line naming the input, never a traceback, and nothing measured
or written before an output path is known to be writable."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "runtimes"))
import _infer_fixtures as F  # noqa: E402
from _cli import assert_clean_failure, run_edgecv  # noqa: E402

RNG = np.random.default_rng(0)
FAST = ["--provider", "cpu", "--threads", "1", "--warmup", "1", "--runs", "3", "--peak", "off"]


def _save(model: onnx.ModelProto, path: Path) -> Path:
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def image_model(path: Path, *, channels: int = 3, hw: tuple[int | str, int | str] = (12, 12)) -> Path:
    """Foreign (no contract): input (N, C, H, W) -> conv 3x3 (4) -> relu -> pool -> logits (N, 4)."""
    w = numpy_helper.from_array(RNG.standard_normal((4, channels, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["input", "w"], ["conv"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["relu"]),
             helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
             helper.make_node("Flatten", ["pool"], ["logits"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                         ["N", channels, *hw])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])], [w])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    picture = d / "cat.png"
    cv2.imwrite(str(picture), RNG.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    (d / "plain.txt").write_text("a regular file, not a folder\n")
    (d / "folder").mkdir()
    (d / "lfs.onnx").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 9\n")
    return {"image": image_model(d / "net.onnx"), "gray": image_model(d / "gray.onnx", channels=1),
            "text": F.position_text_model(d / "reviews.onnx"), "picture": picture, "file": d / "plain.txt",
            "folder": d / "folder", "lfs": d / "lfs.onnx"}


# ----------------------------------------------------------------------------- profile


def _bad_target(files: dict[str, Path], kind: str, suffix: str) -> tuple[Path, str]:
    """(path, phrase of the error) for an output that cannot be written."""
    return {"proc": (Path("/proc") / f"x.{suffix}", "cannot write"),
            "under_file": (files["file"] / f"x.{suffix}", "is not a folder"),
            "folder": (files["folder"], "is a folder")}[kind]


@pytest.mark.parametrize("option, suffix, kind", [
    ("--json", "json", "proc"), ("--csv", "csv", "under_file"), ("--markdown", "md", "folder"),
    ("--plot", "png", "proc"), ("--json", "json", "folder"),
])
def test_profile_unwritable_output_fails_before_measuring(files, option, suffix, kind) -> None:
    target, phrase = _bad_target(files, kind, suffix)
    proc = run_edgecv("profile", files["image"], *FAST, option, target)
    assert_clean_failure(proc, code=1, names=[target], says=[option, phrase])
    assert proc.stdout == ""  # no machine header, no table: nothing was measured


def test_profile_json_to_stdout_stays_allowed(files) -> None:
    proc = run_edgecv("profile", files["image"], *FAST, "--json", "-")
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert (row["model"], row["provider"], row["runs"]) == ("net.onnx", "cpu", 3)


def test_profile_seq_len_above_the_maximum_only(files) -> None:
    proc = run_edgecv("profile", files["text"], *FAST, "--seq-len", "16")
    assert_clean_failure(proc, code=1, names=[files["text"]], says=["sequence length 16", "maximum of 8"])


def test_profile_sweep_with_one_impossible_seq_len_exits_0(files) -> None:
    proc = run_edgecv("profile", files["text"], *FAST, "--seq-len", "4,8,16", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    assert [r["seq_len"] for r in json.loads(proc.stdout)] == [4, 8]
    assert "Traceback" not in proc.stderr
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("skipped:")] == [
        "skipped: reviews.onnx cpu batch 1 threads 1 seq-len 16: sequence length 16 is above the model's "
        "maximum of 8 tokens (edgecv.max_seq_len); use --seq-len 8 or less"]


def test_profile_git_lfs_pointer(files) -> None:
    assert_clean_failure(run_edgecv("profile", files["lfs"], *FAST), code=1, names=[files["lfs"]],
                         says=["Git LFS pointer"])


# ----------------------------------------------------------------------------- inspect


def _activations(files, *extra, model: str = "image", output: Path | None = None):
    out = output if output is not None else files["folder"].parent / "maps.png"
    return run_edgecv("inspect", files[model], "--activations", files["picture"], "--layer", "relu",
                      "-o", out, *extra)


@pytest.mark.parametrize("kind", ["proc", "under_file", "folder"])
def test_inspect_unwritable_montage_fails_before_running(files, kind) -> None:
    target, phrase = _bad_target(files, kind, "png")
    proc = _activations(files, output=target)
    assert_clean_failure(proc, code=1, names=[target], says=["-o", phrase])
    assert proc.stdout == ""


@pytest.mark.parametrize("model, extra, says", [
    ("text", ["--size", "8"], ["prepare an image", "input 'input_ids'"]),
    ("image", ["--size", "6,8"], ["--size/--crop give 6x8", "fixed at"]),
    ("image", ["--resize", "8"], ["--resize 8", "crop size 12"]),
    ("gray", ["--mean", "0.5,0.5,0.5", "--std", "0.2,0.2,0.2"], ["--mean/--std", "1 input channel"]),
])
def test_inspect_preprocessing_that_cannot_fit_the_model(files, model, extra, says) -> None:
    assert_clean_failure(_activations(files, *extra, model=model), code=1, names=[files[model]], says=says)


@pytest.mark.parametrize("extra, says", [
    (["--mean", "1,2"], ["--mean", "'1,2'"]),
    (["--size", "big"], ["--size", "'big'"]),
    (["--scale", "0"], ["--scale"]),
])
def test_inspect_malformed_preprocessing_flags_are_usage_errors(files, extra, says) -> None:
    assert_clean_failure(_activations(files, *extra), code=2, says=says)


def test_inspect_preprocessing_flags_need_activations(files) -> None:
    assert_clean_failure(run_edgecv("inspect", files["image"], "--std", "0.5"), code=2,
                         says=["--std", "--activations"])


def test_inspect_seq_len_above_the_maximum(files) -> None:
    assert_clean_failure(run_edgecv("inspect", files["text"], "--seq-len", "9"), code=1, names=[files["text"]],
                         says=["--seq-len 9", "maximum of 8"])


def test_inspect_git_lfs_pointer(files) -> None:
    assert_clean_failure(run_edgecv("inspect", files["lfs"]), code=1, names=[files["lfs"]], says=["Git LFS pointer"])
