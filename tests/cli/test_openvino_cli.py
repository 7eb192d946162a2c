"""``--provider openvino`` on the command line: infer (with --verify), profile side by side with
parity and a precision sweep, inspect's feature maps, absent devices and the missing extra (a
real subprocess with openvino blocked)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parents[1] / "runtimes"))
import _infer_fixtures as F  # noqa: E402

from edgecv.cli import cli  # noqa: E402
from edgecv.runtimes.engines import openvino_engine as OV  # noqa: E402 - importable without openvino

# every test needs the openvino package except the one proving what happens without it
needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None,
                                    reason="openvino is not installed (pip install 'edgecv[openvino]')")
from test_openvino_engine import conv_model, int8_model  # noqa: E402

FAST = ["--threads", "1", "--warmup", "1", "--runs", "3", "--peak", "off"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ovcli")
    F.write_images(d / "imgs", ["red", "green", "blue"], nested=False)
    fp32 = conv_model(d / "conv.onnx")
    return {"colour": F.image_model(d / "colour.onnx"), "imgs": d / "imgs", "fp32": fp32,
            "int8": int8_model(fp32, d / "conv.int8.onnx"), "text": F.text_model(d / "text.onnx")}


def run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


def absent_device() -> str:
    seen = {d.split(".")[0] for d in OV.core().available_devices}
    missing = [d for d in ("NPU", "GPU") if d not in seen]
    if not missing:
        pytest.skip("every OpenVINO device the test could ask for is present")
    return missing[0]


@needs_openvino
def test_infer_on_openvino_reports_precision_and_verifies_against_onnxruntime(files) -> None:
    res = run("infer", files["colour"], files["imgs"], "--provider", "openvino", "--threads", "1", "--verify")
    assert res.exit_code == 0, res.output
    head = res.output.splitlines()[0]
    assert "openvino provider OpenVINO CPU (" in head and "threads 1" in head
    precision = head.split("precision ")[1].split(",")[0]
    assert precision in ("bf16", "fp32", "fp16")
    assert (f"verify: openvino openvino:CPU {precision} vs onnxruntime cpu fp32 on 3 images: max |diff| "
            in res.output) and "top-1 agreement 100.0% (3/3)" in res.output
    assert "red" in res.output and "blue" in res.output
    forced = run("infer", files["colour"], files["imgs"], "--provider", "openvino", "--precision", "f32", "-q")
    assert forced.exit_code == 0 and "precision fp32" in forced.output


@needs_openvino
def test_infer_verify_on_texts_and_on_onnxruntime_itself(files) -> None:
    res = run("infer", files["text"], "--text", "the movie was great", "--text", "awful",
              "--provider", "openvino", "--verify")
    assert res.exit_code == 0, res.output
    assert "on 2 texts: max |diff|" in res.output and "top-1 agreement 100.0% (2/2)" in res.output
    same = run("infer", files["colour"], files["imgs"], "--provider", "cpu", "--verify", "-q")
    assert same.exit_code == 0 and "onnxruntime cpu fp32 vs onnxruntime cpu fp32 on 3 images: max |diff| 0" \
        in same.output


@needs_openvino
def test_an_absent_device_is_one_line_unless_fallback(files) -> None:
    device = absent_device()
    image = next(files["imgs"].glob("*.png"))
    res = run("infer", files["colour"], image, "--provider", f"openvino:{device}")
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 1 and len(lines) == 1, res.output
    assert lines[0].startswith(f"Error: colour.onnx: OpenVINO device '{device}' is not available here (OpenVINO sees:")
    ok = run("infer", files["colour"], image, "--provider", f"openvino:{device}", "--allow-fallback")
    assert ok.exit_code == 0, ok.output
    assert f"notice: OpenVINO {device} is not available here" in ok.output and "running on OpenVINO CPU" in ok.output
    assert "provider OpenVINO CPU (" in ok.output


@needs_openvino
def test_profile_side_by_side_models_providers_precisions(files, tmp_path) -> None:
    out = tmp_path / "r.json"
    res = run("profile", files["fp32"], files["int8"], "--provider", "cpu,openvino", "--precision", "f32,bf16",
              *FAST, "--json", out)
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())
    assert [(r["model"], r["provider"], r.get("precision_hint")) for r in rows] == [
        ("conv.onnx", "cpu", None), ("conv.onnx", "openvino:CPU", "f32"), ("conv.onnx", "openvino:CPU", "bf16"),
        ("conv.int8.onnx", "cpu", None), ("conv.int8.onnx", "openvino:CPU", "f32"),
        ("conv.int8.onnx", "openvino:CPU", "bf16")]
    assert all(r["speedup"] == pytest.approx(rows[0]["p50_ms"] / r["p50_ms"]) for r in rows)
    assert all(r["parity_ref"] == "conv.onnx (onnxruntime cpu, fp32)" for r in rows[1:])
    text = res.output
    assert "INFERENCE_NUM_THREADS" in text and "--threads 1 -> 1" in text and "openvino " in text
    for column in ("precision", "max |diff|", "top-1 agree", "vs first"):
        assert column in text
    assert "conv.onnx (openvino:CPU, fp32) is" in text and "than conv.onnx (onnxruntime cpu, fp32)" in text
    assert "top-1 agreement" in text and "on 16 synthetic inputs" in text


@needs_openvino
def test_profile_parity_on_data_images_and_without_verify(files) -> None:
    res = run("profile", files["colour"], "--provider", "cpu,openvino", *FAST, "--data", files["imgs"], "--json", "-")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert rows[1]["parity_inputs"] == f"3 images from {files['imgs']}" and rows[1]["parity_top1"] == 1.0
    res = run("profile", files["colour"], "--provider", "openvino", *FAST, "--no-verify", "--json", "-")
    assert res.exit_code == 0 and "parity_max_abs" not in json.loads(res.stdout)[0]


@needs_openvino
def test_profile_skips_an_absent_device_and_measures_the_rest(files) -> None:
    device = absent_device()
    res = run("profile", files["colour"], "--provider", f"cpu,openvino:{device}", *FAST, "--json", "-")
    assert res.exit_code == 0, res.output
    assert [r["provider"] for r in json.loads(res.stdout)] == ["cpu"]
    assert f"OpenVINO device '{device}' is not available here" in res.stderr


@needs_openvino
def test_inspect_feature_maps_on_openvino(files, tmp_path) -> None:
    image = next(files["imgs"].glob("*.png"))
    out = tmp_path / "maps.png"
    res = run("inspect", files["fp32"], "--activations", image, "--layer", "r1", "-o", out, "--provider", "openvino")
    assert res.exit_code == 0, res.output
    assert "16 channel(s) of r1" in res.output and "openvino OpenVINO CPU (" in res.output and out.exists()
    assert run("inspect", files["fp32"], "--provider", "openvino").exit_code == 2  # without --activations


@needs_openvino
@pytest.mark.parametrize("args", [["infer", "m.onnx", "x.png", "--precision", "int4"],
                                  ["profile", "m.onnx", "--precision", "f32,int4"],
                                  ["profile", "m.onnx", "--provider", "openvino:"]])
def test_usage_errors_exit_2(args) -> None:
    res = run(*args)
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_missing_extra_is_one_line_in_a_real_subprocess(files, tmp_path) -> None:
    (tmp_path / "sitecustomize.py").write_text('import sys\nsys.modules["openvino"] = None\n', encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    image = next(files["imgs"].glob("*.png"))
    proc = subprocess.run([sys.executable, "-m", "edgecv", "infer", str(files["colour"]), str(image),
                           "--provider", "openvino"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "Error: openvino is not installed; --provider openvino needs it: pip install 'edgecv[openvino]'"]
