"""The OpenVINO engine beside ONNX Runtime: the same interface, honest precision, threads and
devices, int8 QDQ files, feature maps and profile parity (small generated models, CPU only)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).parent))
import _infer_fixtures as F  # noqa: E402

from edgecv.errors import InputError, ProviderError  # noqa: E402
from edgecv.runtimes.engines import openvino_engine as OV  # noqa: E402 - importable without openvino
from edgecv.runtimes.engines.base import EngineOptions, open_engine  # noqa: E402

# every test needs the openvino package except the one proving what happens without it
needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None,
                                    reason="openvino is not installed (pip install 'edgecv[openvino]')")

RNG = np.random.default_rng(0)


def conv_model(path: Path, *, batch: int | str = "N", classes: int = 10, size: int = 16) -> Path:
    """(B, 3, S, S) -> Conv 3x3 (16) -> Relu -> Conv 3x3 (16) -> Relu -> GAP -> (B, 16) @ (16, C)."""
    inits = [numpy_helper.from_array(RNG.standard_normal((16, 3, 3, 3)).astype(np.float32) * 0.3, "w1"),
             numpy_helper.from_array(RNG.standard_normal((16, 16, 3, 3)).astype(np.float32) * 0.1, "w2"),
             numpy_helper.from_array(RNG.standard_normal((16, classes)).astype(np.float32), "fc")]
    nodes = [helper.make_node("Conv", ["input", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"]), helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]), helper.make_node("MatMul", ["f", "fc"], ["logits"])]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                            [batch, 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.helper.set_model_props(model, {"edgecv.note": '"generated"'})
    onnx.save(model, str(path))
    return path


def int8_model(src: Path, dest: Path) -> Path:
    """Static QDQ int8 with per-channel weights (the exporter's format), calibrated on noise."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"input": RNG.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(8)])

        def get_next(self):  # noqa: ANN201 - onnxruntime's interface
            return next(self.items, None)

    quantize_static(str(src), str(dest), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return dest


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ov")
    fp32 = conv_model(d / "conv.onnx")
    return {"fp32": fp32, "int8": int8_model(fp32, d / "conv.int8.onnx"), "colour": F.image_model(d / "colour.onnx"),
            "fixed": conv_model(d / "fixed.onnx", batch=2), "dir": d}


def x(batch: int = 2) -> np.ndarray:
    return np.random.default_rng(batch).standard_normal((batch, 3, 16, 16)).astype(np.float32)


@needs_openvino
def test_same_interface_and_results_as_onnxruntime(models) -> None:
    ort_e = open_engine(models["fp32"], provider="cpu", threads=1)
    ov_e = open_engine(models["fp32"], provider="openvino", threads=1, precision="f32")
    assert ov_e.backend == "openvino" and ov_e.device == "openvino:CPU"
    assert ov_e.providers[0].startswith("OpenVINO CPU (") and ov_e.create_ms > 0 and ov_e.notices == []
    assert [(i.name, i.shape, i.dtype) for i in ov_e.inputs] == [(i.name, i.shape, i.dtype) for i in ort_e.inputs]
    assert [(o.name, o.shape) for o in ov_e.outputs] == [(o.name, o.shape) for o in ort_e.outputs] == [
        ("logits", ("N", 10))]
    assert ov_e.metadata == ort_e.metadata == {"edgecv.note": '"generated"'}
    for batch in (1, 3):  # a dynamic batch runs at any size
        want = ort_e.run(None, {"input": x(batch)})[0]
        np.testing.assert_allclose(ov_e.run(None, {"input": x(batch)})[0], want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(ov_e.run(["logits"], {"input": x(batch)})[0], want, rtol=1e-4, atol=1e-4)
    feeds = {"input": x(2)}
    fn = ov_e.runner(feeds)
    first = np.array(next(iter(fn().values())))
    np.testing.assert_allclose(first, ort_e.run(None, feeds)[0], rtol=1e-4, atol=1e-4)
    assert "precision fp32; threads 1" in ov_e.describe() and ov_e.report()["backend"] == "openvino"
    with pytest.raises(InputError, match="no output named 'nope'.*logits"):
        ov_e.run(["nope"], feeds)


@needs_openvino
def test_precision_is_what_the_compiled_model_says(models) -> None:
    forced = open_engine(models["fp32"], provider="openvino", precision="f32")
    assert forced.precision == "fp32"
    assert forced.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"
    auto = open_engine(models["fp32"], provider="openvino")
    chosen = auto.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    assert auto.precision == OV.REPORTED[chosen]
    from edgecv.hardware import cpu_flags

    if {"avx512_bf16", "amx_bf16"} & set(cpu_flags() or ()):  # this CI's EPYC: OpenVINO's default is bf16
        assert auto.precision == "bf16"
    # a forced precision the CPU lacks is reported as what runs instead, with a notice
    f16 = open_engine(models["fp32"], provider="openvino", precision="f16")
    assert f16.precision == OV.REPORTED[f16.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()]
    assert (f16.precision == "fp16") == (not f16.notices)
    with pytest.raises(InputError, match="precision 'int4'"):
        open_engine(models["fp32"], provider="openvino", precision="int4")


@needs_openvino
def test_threads_reach_inference_num_threads(models) -> None:
    for threads in (1, 2):
        engine = open_engine(models["fp32"], provider="openvino", threads=threads)
        assert engine.threads == threads == engine.compiled.get_property("INFERENCE_NUM_THREADS")


@needs_openvino
def test_int8_qdq_file_runs_and_reports_int8_plus_its_float_precision(models) -> None:
    engine = open_engine(models["int8"], provider="openvino", threads=1)
    assert engine.precision.startswith("int8+") and engine.precision.split("+")[1] in ("fp32", "bf16", "fp16")
    want = open_engine(models["int8"], provider="cpu").run(None, {"input": x(4)})[0]
    got = engine.run(None, {"input": x(4)})[0]
    assert got.shape == want.shape and (got.argmax(1) == want.argmax(1)).mean() >= 0.75


def _absent() -> str:
    seen = {d.split(".")[0] for d in OV.core().available_devices}
    absent = [d for d in ("NPU", "GPU") if d not in seen]
    if not absent:
        pytest.skip("this machine has every OpenVINO device the test could ask for")
    return absent[0]


@needs_openvino
def test_an_absent_device_is_an_error_unless_fallback_is_allowed(models) -> None:
    device = _absent()
    with pytest.raises(ProviderError, match=f"OpenVINO device '{device}' is not available here "
                                            r"\(OpenVINO sees: .*CPU.*--allow-fallback"):
        open_engine(models["fp32"], provider=f"openvino:{device}")
    engine = open_engine(models["fp32"], provider=f"openvino:{device}", allow_fallback=True)
    assert engine.device == "openvino:CPU" and engine.requested == f"openvino:{device}"
    assert engine.notices == [f"notice: OpenVINO {device} is not available here (OpenVINO sees: "
                              f"{', '.join(OV.core().available_devices)}); running on OpenVINO CPU"]


@needs_openvino
def test_auto_reports_the_device_it_picked_with_threads_and_precision_honoured(models) -> None:
    engine = open_engine(models["fp32"], provider="openvino:AUTO", threads=1, precision="f32")
    assert engine.device.split(":")[1] in {d.split(".")[0] for d in OV.core().available_devices} | {
        d for d in OV.core().available_devices}
    if engine.device == "openvino:CPU":  # AUTO hands threads and precision to the device it picks
        assert (engine.threads, engine.precision) == (1, "fp32")


@needs_openvino
def test_static_shape_devices_get_the_batch_the_command_uses(models, monkeypatch) -> None:
    monkeypatch.setattr(OV, "STATIC_SHAPE_DEVICES", ("CPU",))  # stand-in for an NPU
    engine = open_engine(models["fp32"], EngineOptions(provider="openvino", batch_sizes=(3,)))
    assert engine.inputs[0].shape == (3, 3, 16, 16)
    assert engine.run(None, {"input": x(3)})[0].shape == (3, 10)


@needs_openvino
def test_classifier_and_fixed_batch_models_on_openvino(models) -> None:
    from edgecv.runtimes import load

    clf = load(models["colour"], provider="openvino", threads=1)
    preds = clf.predict([F.solid(c) for c in ("red", "green", "blue")])
    assert [p.label for p in preds] == ["red", "green", "blue"]
    assert "openvino provider OpenVINO CPU" in clf.describe() and f"precision {clf.precision}" in clf.describe()
    fixed = load(models["fixed"], provider="openvino", threads=1)
    assert fixed.input.fixed_batch == 2 and len(fixed.predict_tensor(x(5))) == 5  # chunked like ORT


@needs_openvino
def test_feature_maps_run_on_an_injected_engine(models, tmp_path) -> None:
    import cv2

    from edgecv.graph.activations import compute_activation, write_montage

    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.random.default_rng(3).integers(0, 256, (20, 24, 3), dtype=np.uint8))
    default = compute_activation(models["fp32"], image, "r1")  # ONNX Runtime CPU
    on_ov = compute_activation(models["fp32"], image, "r1",
                               open_runner=lambda p: open_engine(p, provider="openvino", precision="f32"))
    np.testing.assert_allclose(on_ov, default, rtol=1e-4, atol=1e-4)
    summary = write_montage(models["fp32"], image, "r2", tmp_path / "m.png",
                            open_runner=lambda p: open_engine(p, provider="openvino"))
    assert summary["engine"].startswith("openvino OpenVINO CPU") and (tmp_path / "m.png").exists()


@needs_openvino
def test_profile_sweeps_precisions_side_by_side_with_parity(models) -> None:
    from edgecv.runtimes.profiling.job import ProfileOptions, run_profile

    opts = ProfileOptions(models=[str(models["fp32"]), str(models["int8"])], providers=["cpu", "openvino"],
                          threads=[1], warmup=1, runs=3, peak="off", precisions=["f32", "bf16"])
    rows = run_profile(opts).rows
    got = [(r["model"], r["runtime"], r.get("precision_hint")) for r in rows]
    assert got == [("conv.onnx", "onnxruntime", None), ("conv.onnx", "openvino", "f32"),
                   ("conv.onnx", "openvino", "bf16"), ("conv.int8.onnx", "onnxruntime", None),
                   ("conv.int8.onnx", "openvino", "f32"), ("conv.int8.onnx", "openvino", "bf16")]
    assert rows[0]["speedup"] == 1.0 and "parity_max_abs" not in rows[0]
    assert all(r["speedup"] == pytest.approx(rows[0]["p50_ms"] / r["p50_ms"]) for r in rows)
    assert rows[1]["precision"] == "fp32" and rows[1]["parity_max_abs"] < 1e-3 and rows[1]["parity_top1"] == 1.0
    assert rows[4]["precision"].startswith("int8+") and rows[3]["precision"] == "int8"
    for row in rows[1:]:  # every row is compared with the fp32 file on ONNX Runtime CPU
        assert row["parity_ref"] == "conv.onnx (onnxruntime cpu, fp32)" and row["parity_n"] == 16
        assert row["parity_inputs"] == "16 synthetic inputs" and 0 <= row["parity_top1"] <= 1
    assert {r["threads_used"] for r in rows[1:] if r["runtime"] == "openvino"} == {1}


@needs_openvino
def test_compare_outputs_reports_max_diff_and_top1() -> None:
    from edgecv.runtimes.profiling.job import compare_outputs

    a = np.array([[0.0, 1.0, 0.2], [0.9, 0.1, 0.0]], np.float32)
    b = np.array([[0.0, 0.9, 0.2], [0.1, 0.5, 0.0]], np.float32)
    out = compare_outputs([a[:1], a[1:]], [b[:1], b[1:]])
    assert out == {"max_abs": pytest.approx(0.8), "n": 2, "top1_agreement": 0.5}
    assert compare_outputs([a[:, :1, None]], [b[:, :1, None]])["top1_agreement"] is None  # (N, 1, 1)
    with pytest.raises(InputError, match="differ in shape"):
        compare_outputs([a], [b[:1]])


BLOCK = 'import sys\nsys.modules["openvino"] = None  # "import openvino" now raises ImportError\n'


def test_missing_extra_is_one_line_naming_the_install(models, tmp_path) -> None:
    (tmp_path / "sitecustomize.py").write_text(BLOCK, encoding="utf-8")
    code = textwrap.dedent(f"""
        from edgecv.errors import MissingDependencyError
        from edgecv.runtimes import load
        try:
            load({str(models['fp32'])!r}, provider="openvino")
        except MissingDependencyError as exc:
            print(exc)
        """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ("openvino is not installed; --provider openvino needs it: "
                                   "pip install 'edgecv[openvino]'")
