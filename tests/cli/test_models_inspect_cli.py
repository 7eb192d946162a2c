"""`edgecv models` and `edgecv inspect` through click's CliRunner and one real subprocess."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from edgecv.cli import cli
from edgecv.contract import ModelContract, embed_contract
from edgecv.preprocess import default_spec

torch = pytest.importorskip("torch")
from edgecv.models import create_model, list_models  # noqa: E402
from edgecv.models.checkpoint import save_checkpoint  # noqa: E402


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def one_line_error(result, *fragments: str) -> None:
    """Exit 1, exactly one line on stderr naming the problem, no traceback."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def image_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small conv model with an edgecv contract."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 1, 3, 3)).astype(np.float32), "w")
    fc = numpy_helper.from_array(np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32), "fc")
    nodes = [helper.make_node("Conv", ["input", "w"], ["conv"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["conv"], ["relu"]),
             helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
             helper.make_node("Flatten", ["pool"], ["flat"]),
             helper.make_node("Gemm", ["flat", "fc"], ["logits"], transB=1, name="head")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])], [w, fc])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    embed_contract(model, ModelContract(task="image", labels=["cat", "dog"], architecture="tiny",
                                        preprocess=default_spec(size=8, channels=1)))
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    onnx.save(model, path)
    return path


def test_models_table_and_json() -> None:
    table = run("models")
    assert table.exit_code == 0
    for name in list_models():
        assert name in table.output
    assert "1000 classes" in table.output and "10,000-word" in table.output
    data = json.loads(run("models", "--json").output)
    assert [row["name"] for row in data] == list_models()
    for row in data:
        assert {"name", "task", "params", "macs", "input_size"} <= set(row)
        assert row["params"] > 0 and row["macs"] > 0
    text = json.loads(run("models", "--json", "--task", "text").output)
    assert {row["task"] for row in text} == {"text"}


def test_inspect_registry_name_json_matches_table() -> None:
    result = run("inspect", "simple_cnn", "--input-size", "3,32,32", "--num-classes", "5", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["total_params"] == sum(layer["params"] for layer in data["layers"])
    assert data["total_macs"] == sum(layer["macs"] for layer in data["layers"])
    assert data["gflops"] == pytest.approx(2 * data["total_macs"] / 1e9)
    assert data["layers"][0]["output_shape"] == [1, 32, 32, 32]
    assert data["layers"][-1]["output_shape"] == [1, 5]
    table = run("inspect", "simple_cnn", "--input-size", "3,32,32", "--num-classes", "5")
    assert f"total params:  {data['total_params']:,}" in table.output
    assert "classifier.4" in table.output and "GFLOPs" in table.output


def test_inspect_text_model_seq_len() -> None:
    result = run("inspect", "lstm_classifier", "--seq-len", "10", "--vocab-size", "50", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    lstm = [layer for layer in data["layers"] if layer["type"] == "LSTM"]
    assert lstm and all(layer["macs"] == 10 * 4 * 128 * (128 + 128) for layer in lstm)


def test_inspect_checkpoints(tmp_path: Path) -> None:
    model = create_model("simple_cnn", num_classes=3)
    ckpt = tmp_path / "best.pt"
    save_checkpoint({"model": "simple_cnn", "model_kwargs": {"num_classes": 3}, "task": "image",
                     "state_dict": model.state_dict(), "classes": ["a", "b", "c"]}, ckpt)
    data = json.loads(run("inspect", str(ckpt), "--json").output)
    assert data["layers"][-1]["output_shape"] == [1, 3]
    assert data["info"]["checkpoint"] == "edgecv"

    bare = tmp_path / "weights.pth"
    torch.save(model.state_dict(), bare)
    one_line_error(run("inspect", str(bare)), "weights.pth", "--model")
    data = json.loads(run("inspect", str(bare), "--model", "simple_cnn", "--json").output)
    assert data["layers"][-1]["output_shape"] == [1, 3]  # head size read from the state dict
    assert data["total_params"] == sum(p.numel() for p in model.parameters())

    other = tmp_path / "lstm.pt"
    torch.save(create_model("lstm_classifier", vocab_size=20, num_classes=2).state_dict(), other)
    one_line_error(run("inspect", str(other), "--model", "simple_cnn"), "lstm.pt", "does not fit simple_cnn")


def test_inspect_onnx_prints_contract_and_table(image_onnx: Path) -> None:
    result = run("inspect", str(image_onnx))
    assert result.exit_code == 0, result.output
    assert "edgecv model contract" in result.output and "cat, dog" in result.output
    assert "conv1" in result.output and "total params:  44" in result.output
    data = json.loads(run("inspect", str(image_onnx), "--json").output)
    assert data["total_params"] == 4 * 9 + 8 and data["total_macs"] == 4 * 64 * 9 + 8
    assert data["contract"]["labels"] == ["cat", "dog"]
    assert data["inputs"] == [{"name": "input", "shape": ["N", 1, 8, 8], "dtype": "float32"}]


def test_layers_and_activations(image_onnx: Path, tmp_path: Path) -> None:
    listing = run("inspect", str(image_onnx), "--layers")
    assert listing.exit_code == 0 and "relu" in listing.output and "1x4x8x8" in listing.output
    picture = tmp_path / "img.png"
    cv2.imwrite(str(picture), np.full((20, 20, 3), 128, np.uint8))
    out = tmp_path / "maps.png"
    result = run("inspect", str(image_onnx), "--activations", str(picture), "--layer", "relu", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(out)) is not None and "4 channel(s)" in result.output
    one_line_error(run("inspect", str(image_onnx), "--activations", str(picture), "--layer", "nope", "-o", str(out)),
                   "no tensor named 'nope'", "relu")


def test_usage_errors_exit_2(image_onnx: Path) -> None:
    assert run("inspect", str(image_onnx), "--activations", "x.png").exit_code == 2
    assert run("inspect", "simple_cnn", "--layers").exit_code == 2
    assert run("inspect", "simple_cnn", "--seq-len", "0").exit_code == 2
    assert run("models", "--task", "audio").exit_code == 2


@pytest.mark.parametrize("case", ["unknown_name", "missing", "directory", "empty", "lfs", "text", "truncated",
                                  "bad_input_size"])
def test_bad_input_is_one_line(case: str, tmp_path: Path, image_onnx: Path) -> None:
    path = tmp_path / "model.onnx"
    if case == "unknown_name":
        one_line_error(run("inspect", "resnet9000"), "resnet9000", "mobilenet_v2")
        return
    if case == "missing":
        one_line_error(run("inspect", str(path)), "model.onnx", "not found")
        return
    if case == "directory":
        one_line_error(run("inspect", str(tmp_path)), str(tmp_path), "directory")
        return
    if case == "bad_input_size":
        one_line_error(run("inspect", "simple_cnn", "--input-size", "big"), "input size 'big'")
        return
    content = {"empty": b"",
               "lfs": b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 9\n",
               "text": b"name,label\nfoo,1\n",
               "truncated": image_onnx.read_bytes()[:200]}[case]
    path.write_bytes(content)
    expected = {"empty": "empty", "lfs": "Git LFS", "text": "not a valid ONNX model",
                "truncated": "not a valid ONNX model"}[case]
    one_line_error(run("inspect", str(path)), "model.onnx", expected)


def test_real_console_script(image_onnx: Path, tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "edgecv", "inspect", str(image_onnx), "--json"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["total_params"] == 44
    bad = tmp_path / "model.onnx"
    bad.write_text("version https://git-lfs.github.com/spec/v1\n")
    proc = subprocess.run([sys.executable, "-m", "edgecv", "inspect", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "Git LFS" in proc.stderr and "Traceback" not in proc.stderr


def test_activations_of_a_foreign_model_take_infer_preprocessing_flags(tmp_path: Path) -> None:
    """No contract: --size/--mean/--std (as for `edgecv infer`) decide what the layer sees."""
    from edgecv.preprocess import PreprocessSpec, load_image, preprocess_image

    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Mul", ["input", "two"], ["doubled"]),
             helper.make_node("Conv", ["doubled", "w"], ["conv"]),
             helper.make_node("GlobalAveragePool", ["conv"], ["logits4"]),
             helper.make_node("Flatten", ["logits4"], ["logits"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])], [two, w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "foreign.onnx"
    onnx.save(model, path)
    picture = tmp_path / "img.png"
    cv2.imwrite(str(picture), np.random.default_rng(2).integers(0, 256, (30, 40, 3), dtype=np.uint8))
    base = ["inspect", str(path), "--activations", str(picture), "--layer", "doubled", "--json"]
    plain = run(*base, "-o", str(tmp_path / "a.png"))
    flagged = run(*base, "-o", str(tmp_path / "b.png"), "--size", "6,8", "--stretch", "--mean", "0.5",
                  "--std", "0.25,0.25,0.25")
    assert plain.exit_code == 0 and flagged.exit_code == 0, plain.output + flagged.output
    plain, flagged = json.loads(plain.stdout), json.loads(flagged.stdout)
    assert plain["shape"] == [1, 3, 224, 224] and flagged["shape"] == [1, 3, 6, 8]
    spec = PreprocessSpec(size=(6, 8), resize="stretch", mean=(0.5,) * 3, std=(0.25,) * 3)
    expected = 2 * preprocess_image(load_image(picture), spec)
    assert flagged["mean"] == pytest.approx(float(expected.mean()), rel=1e-5)
    assert flagged["max"] == pytest.approx(float(expected.max()), rel=1e-5)
    assert flagged["mean"] != pytest.approx(plain["mean"], rel=1e-3)


def test_preprocessing_flags_without_activations_are_usage_errors(image_onnx: Path) -> None:
    result = run("inspect", str(image_onnx), "--size", "8")
    assert result.exit_code == 2 and "--activations" in result.output
    assert run("inspect", str(image_onnx), "--activations", "x.png", "--layer", "relu", "-o", "o.png",
               "--mean", "1,2").exit_code == 2
