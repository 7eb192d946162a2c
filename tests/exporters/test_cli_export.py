"""``edgecv export`` through click's CliRunner and once through a real subprocess; bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from edgecv.cli import cli
from edgecv.contract import read_contract
from edgecv.models import create_model

sys.path.insert(0, str(Path(__file__).parent))
from _export_fixtures import listing  # noqa: E402


def invoke(*args: object):
    return CliRunner().invoke(cli, ["export", *map(str, args)])


def test_export_checkpoint_prints_table_and_writes_files(trained_cnn: Path, shapes_dir: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "new" / "model.onnx"  # output folder is created
    result = invoke(trained_cnn, "-o", out, "--data", shapes_dir, "--fp16", "--verify-size", "16")
    assert result.exit_code == 0, result.output
    for text in ("stage", "fp32", "simplified", "fp16", "model.fp16.onnx", "export OK", "top1 100.0%"):
        assert text in result.output
    assert listing(out.parent) == ["model.export.json", "model.fp16.onnx", "model.onnx"]


def test_json_output(trained_cnn: Path, tmp_path: Path) -> None:
    result = invoke(trained_cnn, "-o", tmp_path / "m.onnx", "--no-simplify", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["passed"] is True and [s["stage"] for s in data["stages"]] == ["fp32", "simplified"]
    assert data["stages"][1]["status"] == "skipped"


def test_fp32_parity_failure_exits_1_but_writes_marked_files(monkeypatch, trained_cnn: Path,
                                                            tmp_path: Path) -> None:
    from edgecv.exporters import pipeline

    monkeypatch.setattr(pipeline, "FP32_ATOL", -1.0)  # no graph can meet this: simulate a mismatch
    out = tmp_path / "m.onnx"
    result = invoke(trained_cnn, "-o", out, "--no-simplify")
    assert result.exit_code == 1
    assert "export FAILED" in result.output
    assert out.exists() and read_contract(out).parity["passed"] is False
    assert json.loads((tmp_path / "m.export.json").read_text())["passed"] is False


def test_bare_state_dict_with_imagenet_labels(tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "squeezenet1_1.pth"
    torch.save(create_model("squeezenet1_1", num_classes=1000).state_dict(), weights)
    out = tmp_path / "sq.onnx"
    result = invoke("--model", "squeezenet1_1", "--weights", weights, "--num-classes", 1000,
                    "--image-size", 64, "-o", out, "--no-simplify")
    assert result.exit_code == 0, result.output
    contract = read_contract(out)
    assert contract.labels[0] == "tench" and len(contract.labels) == 1000
    assert contract.architecture == "squeezenet1_1" and contract.preprocess.size == (64, 64)


def test_random_init_needs_the_flag_and_warns(tmp_path: Path) -> None:
    out = tmp_path / "r.onnx"
    result = CliRunner().invoke(cli, ["export", "--model", "simple_cnn", "-o", str(out)])
    assert result.exit_code == 2 and not out.exists()
    result = CliRunner().invoke(cli, ["export", "--model", "simple_cnn", "--random-init", "-o", str(out),
                                      "--no-simplify"])
    assert result.exit_code == 0, result.output
    assert "RANDOMLY INITIALISED" in result.output


def test_img_size_is_accepted_as_in_train(tmp_path: Path) -> None:
    """`edgecv train --img-size` and `edgecv export --image-size` name one thing: both spellings work."""
    out = tmp_path / "r.onnx"
    result = CliRunner().invoke(cli, ["export", "--model", "squeezenet1_1", "--random-init", "--img-size", "32",
                                      "-o", str(out), "--no-simplify"])
    assert result.exit_code == 0, result.output
    assert read_contract(out).preprocess.size == (32, 32)


def _corrupt(tmp: Path) -> Path:
    p = tmp / "corrupt.pt"
    p.write_bytes(b"PK\x03\x04 this is not really a zip archive" * 3)
    return p


def _bare(tmp: Path) -> Path:
    p = tmp / "bare.pth"
    torch.save(create_model("simple_cnn", num_classes=4).state_dict(), p)
    return p


def _unreadable_images(tmp: Path) -> Path:
    folder = tmp / "calib" / "cat"
    folder.mkdir(parents=True)
    for i in range(3):
        (folder / f"img{i}.jpg").write_bytes(b"not an image")
    return tmp / "calib"


BAD_INPUTS = {
    # name: (args builder, expected exit code, expected text in the one-line error)
    "missing checkpoint": (lambda t, ck: [t / "nope.pt"], 1, "file not found"),
    "corrupt checkpoint": (lambda t, ck: [_corrupt(t)], 1, "not a readable PyTorch checkpoint"),
    "bare without --model": (lambda t, ck: [_bare(t)], 1, "pass --model"),
    "output is a directory": (lambda t, ck: [ck, "-o", t], 1, "is a directory"),
    "unsupported opset": (lambda t, ck: [ck, "--opset", 99], 2, "--opset"),
    "opset the exporter lacks": (lambda t, ck: [ck, "--opset", 22], 1, "unsupported by the torchscript"),
    "int8 without data": (lambda t, ck: [ck, "--int8"], 1, "pass --data"),
    "no readable calibration images": (lambda t, ck: [ck, "--int8", "--data", _unreadable_images(t)], 1,
                                       "could be read"),
    "missing data": (lambda t, ck: [ck, "--data", t / "nodata"], 1, "not found"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_one_line_error_and_nothing_written(case: str, trained_cnn: Path, tmp_path: Path) -> None:
    build, code, text = BAD_INPUTS[case]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    out_dir = tmp_path / "out"
    args = build(inputs, trained_cnn)
    if "-o" not in args:
        args += ["-o", out_dir / "model.onnx"]
    before = listing(inputs)
    result = CliRunner().invoke(cli, ["export", *map(str, args)])
    assert result.exit_code == code, result.output
    assert text in result.output
    if code == 1:
        errors = [line for line in result.output.splitlines() if line.strip()]
        assert len(errors) == 1 and errors[0].startswith("Error: "), result.output
    assert listing(out_dir) == []  # nothing half-written
    assert listing(inputs) == before


def test_real_subprocess(trained_cnn: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    env = {**os.environ, "PYTHONWARNINGS": "default"}  # warnings on: the export must still be quiet
    proc = subprocess.run([sys.executable, "-m", "edgecv", "export", str(trained_cnn), "-o", str(out),
                           "--no-simplify"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "export OK" in proc.stdout
    assert "Warning" not in proc.stderr.replace("Warning: parity measured on random inputs", "")
    assert "DeprecationWarning" not in proc.stderr and "TracerWarning" not in proc.stderr
    assert read_contract(out).export["precision"] == "fp32"


def test_failed_quantization_pre_processing_is_a_warning_on_stderr_and_in_the_report(
        monkeypatch, make_text_checkpoint, text_csv: Path, tmp_path: Path) -> None:
    from onnxruntime.quantization import shape_inference

    def broken(*args, **kwargs):
        raise RuntimeError("simulated symbolic shape inference failure")

    monkeypatch.setattr(shape_inference, "quant_pre_process", broken)
    out = tmp_path / "t.onnx"
    result = invoke(make_text_checkpoint("lstm_classifier"), "-o", out, "--data", text_csv, "--int8",
                    "--no-simplify")
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if "quant_pre_process" in line]
    assert len(warned) == 1 and warned[0].startswith("Warning: int8: ") and "simulated symbolic" in warned[0]
    report = json.loads((tmp_path / "t.export.json").read_text())
    assert any(w.startswith("int8: ") and "quant_pre_process" in w for w in report["warnings"])


def test_without_o_the_model_goes_beside_the_checkpoint(trained_cnn: Path, shapes_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "runs" / "exp"
    run.mkdir(parents=True)
    best = run / "best.pt"
    best.write_bytes(trained_cnn.read_bytes())
    result = invoke(best, "--data", shapes_dir, "--fp16", "--int8", "--calib-size", "16", "--verify-size", "16",
                    "--no-simplify")
    assert result.exit_code == 0, result.output
    assert listing(run) == ["best.export.json", "best.fp16.onnx", "best.int8.onnx", "best.onnx", "best.pt"]
    for name in ("best.onnx", "best.fp16.onnx", "best.int8.onnx"):
        assert f"wrote: {run / name}" in result.stdout
    assert f"report: {run / 'best.export.json'}" in result.stdout
    assert read_contract(run / "best.int8.onnx").export["precision"] == "int8"


def test_default_output_rules(tmp_path: Path) -> None:
    from edgecv.commands.export import default_output

    assert default_output(Path("runs/exp/best.pt"), None) == Path("runs/exp/best.onnx")
    assert default_output(None, Path("w/mobilenet_v2.pth")) == Path("w/mobilenet_v2.onnx")
    assert default_output(Path("ckpt"), None) == Path("ckpt.onnx")
    assert default_output(None, None) is None
    result = CliRunner().invoke(cli, ["export", "--model", "simple_cnn", "--random-init"])
    assert result.exit_code == 2 and "give -o" in result.output
    weights = _bare(tmp_path)  # bare state dict: the model goes beside the weights too
    result = invoke("--model", "simple_cnn", "--weights", weights, "--num-classes", 4, "--no-simplify")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "bare.onnx").is_file() and f"wrote: {tmp_path / 'bare.onnx'}" in result.stdout
