"""int8 that earns its place: ``export --int8`` times int8 against fp32 on this machine and, when
int8 is not faster, quantizes again with the operators that have no int8 kernel left in float.

The operators are found from the graph (op types without an int8 kernel in ONNX Runtime's CPU
provider, and the Mul/Add they feed), shown here on a hand-built MobileNetV3-like graph and on a
real, small MobileNetV3 export. The slower/faster decision is driven by scripted timings so that
both branches are tested whatever this machine measures; one export times for real.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edgecv.contract import read_contract
from edgecv.exporters import ExportOptions, load_source, run_export
from edgecv.exporters.quantize import float_only_nodes, name_nodes
from edgecv.exporters.stages import INT8_MIN_SPEEDUP
from edgecv.models import create_model
from edgecv.runtimes.profiling import ab_timing

sys.path.insert(0, str(Path(__file__).parent))
from _export_fixtures import image_checkpoint  # noqa: E402


def mobilenet_v3_like() -> onnx.ModelProto:
    """Conv -> HardSwish -> squeeze-excite (GlobalAveragePool -> Conv -> Relu -> Conv ->
    HardSigmoid -> Mul) -> Conv -> Add (residual) -> GlobalAveragePool -> Flatten -> Gemm."""
    rng = np.random.default_rng(0)

    def w(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.1, name)

    nodes = [
        helper.make_node("Conv", ["input", "w0"], ["c0"], name="stem", pads=[1, 1, 1, 1]),  # (N, 8, H, W)
        helper.make_node("HardSwish", ["c0"], ["h0"], name="stem_act"),
        helper.make_node("GlobalAveragePool", ["h0"], ["s0"], name="se_pool"),  # (N, 8, 1, 1)
        helper.make_node("Conv", ["s0", "w1"], ["s1"], name="se_fc1"),
        helper.make_node("Relu", ["s1"], ["s2"], name="se_relu"),
        helper.make_node("Conv", ["s2", "w2"], ["s3"], name="se_fc2"),
        helper.make_node("HardSigmoid", ["s3"], ["s4"], name="se_gate"),
        helper.make_node("Mul", ["h0", "s4"], ["se"], name="se_mul"),  # (N, 8, H, W) * (N, 8, 1, 1)
        helper.make_node("Conv", ["se", "w3"], ["p"], name="project"),
        helper.make_node("Add", ["p", "h0"], ["r"], name="residual"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="pool"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w4"], ["logits"], name="classifier", transB=1),
    ]
    graph = helper.make_graph(nodes, "mnv3_like", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                 ["N", 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])],
                              [w("w0", 8, 3, 3, 3), w("w1", 4, 8, 1, 1), w("w2", 8, 4, 1, 1), w("w3", 8, 8, 1, 1),
                               w("w4", 4, 8)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def test_float_only_nodes_are_found_from_the_graph() -> None:
    """HardSwish and HardSigmoid have no int8 kernel; the squeeze-excite Mul is fed by one; the
    convolutions, the pools, the residual Add and the Gemm all stay int8."""
    assert float_only_nodes(mobilenet_v3_like()) == [("stem_act", "HardSwish"), ("se_gate", "HardSigmoid"),
                                                     ("se_mul", "Mul")]


def test_unnamed_nodes_get_unique_names() -> None:
    model = mobilenet_v3_like()
    model.graph.node[1].name = ""
    model.graph.node[2].name = "stem"  # a duplicate
    assert name_nodes(model) == 2
    names = [n.name for n in model.graph.node]
    assert len(set(names)) == len(names) and all(names)


@pytest.fixture(scope="module")
def mnv3(tmp_path_factory: pytest.TempPathFactory, shapes_dir: Path) -> Path:
    """A small, randomly initialised MobileNetV3-Small checkpoint (32 px, width 0.35)."""
    torch.manual_seed(0)
    model = create_model("mobilenet_v3_small", num_classes=4, width_mult=0.35).eval()
    return image_checkpoint(tmp_path_factory.mktemp("mnv3") / "mnv3.pt", model)


def _scripted(monkeypatch: pytest.MonkeyPatch, speedups: list[list[float]]) -> list[Path]:
    """compare_latency returns these int8 speedups (one list per call, one value per batch)."""
    calls: list[Path] = []

    def fake(a, b, feeds_for, *, batches=(1,), threads=None, **_kw):
        feeds = feeds_for(batches[-1])
        assert next(iter(feeds.values())).shape[0] == batches[-1]  # real inputs of the asked batch size
        calls.append(Path(b))
        return [ab_timing.PairTiming(batch=n, a_p50_ms=1.0, b_p50_ms=1.0 / s, a_runs=50, b_runs=50)
                for n, s in zip(batches, speedups[len(calls) - 1])]

    monkeypatch.setattr(ab_timing, "compare_latency", fake)
    return calls


def _export(ckpt: Path, data: Path, out: Path):
    return run_export(load_source(ckpt), ExportOptions(output=out, data=data, int8=True, calib_size=16,
                                                       verify_size=16, simplify=False, int8_speed_threads=1))


def _float_gates(path: Path) -> int:
    """Mul nodes that read a HardSigmoid output directly: left in float. When the Mul is
    quantized, a QuantizeLinear/DequantizeLinear pair sits between the two instead."""
    graph = onnx.load(str(path)).graph
    gates = {o for n in graph.node if n.op_type == "HardSigmoid" for o in n.output}
    return sum(1 for n in graph.node if n.op_type == "Mul" and any(i in gates for i in n.input))


def test_slower_int8_is_quantized_again_then_fp32_is_recommended(mnv3, shapes_dir, tmp_path, monkeypatch) -> None:
    calls = _scripted(monkeypatch, [[0.70, 0.60], [0.85, 0.80]])  # slower, then still slower
    report = _export(mnv3, shapes_dir, tmp_path / "m.onnx")
    int8 = report.stage("int8")
    speed = int8.details["speed"]
    assert len(calls) == 2 and speed["threads"] == 1 and speed["batches"] == [1, 8]
    before, after = speed["attempts"]
    assert [r["speedup"] for r in before["latency"]] == [0.7, 0.6] and before["excluded"] is None
    assert [r["speedup"] for r in after["latency"]] == [0.85, 0.8]
    excluded = after["excluded"]
    assert set(excluded["op_types"]) == {"HardSigmoid", "Mul"} and excluded["nodes"] == len(excluded["names"]) > 0
    assert speed["chosen"] == 1 and speed["faster"] is False and speed["recommended"] == "fp32"
    # the better of the two int8 files is the one written: its HardSwish/SE multiplies stay float
    assert int8.details["excluded"] == excluded and _float_gates(Path(int8.file)) == excluded["op_types"]["Mul"]
    warnings = [w for w in report.warnings if w.startswith("int8 is not faster")]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "0.85x at batch 1, 0.80x at batch 8" in warnings[0] and "deploy m.onnx (fp32)" in warnings[0]
    assert f"{excluded['nodes']} nodes without int8 kernels left in float" in warnings[0]
    assert report.passed  # slower is a warning, not a failed export
    on_disk = json.loads(report.report_path.read_text())
    assert on_disk["stages"][-1]["details"]["speed"]["attempts"][1]["excluded"]["names"] == excluded["names"]
    recorded = read_contract(int8.file).export["quantization"]
    assert recorded["speed"] == {"threads": 1, "recommended": "fp32", "speedup": {"1": 0.85, "8": 0.8}}
    assert recorded["excluded"]["nodes"] == excluded["nodes"] and "names" not in recorded["excluded"]


def test_exclusion_that_makes_int8_faster_is_kept_without_warning(mnv3, shapes_dir, tmp_path, monkeypatch) -> None:
    _scripted(monkeypatch, [[0.9, 0.8], [1.3, 1.25]])
    report = _export(mnv3, shapes_dir, tmp_path / "m.onnx")
    speed = report.stage("int8").details["speed"]
    assert speed["chosen"] == 1 and speed["faster"] is True and speed["recommended"] == "int8"
    assert speed["warning"] is None and not any("not faster" in w for w in report.warnings)
    assert _float_gates(Path(report.stage("int8").file)) > 0


def test_an_exclusion_that_does_not_help_is_not_kept(mnv3, shapes_dir, tmp_path, monkeypatch) -> None:
    _scripted(monkeypatch, [[0.9, 0.8], [0.6, 0.5]])
    report = _export(mnv3, shapes_dir, tmp_path / "m.onnx")
    int8 = report.stage("int8")
    assert int8.details["speed"]["chosen"] == 0 and "excluded" not in int8.details
    assert _float_gates(Path(int8.file)) == 0  # the first quantization: every Mul in int8
    assert "0.90x at batch 1, 0.80x at batch 8" in next(w for w in report.warnings if "not faster" in w)


def test_real_timing_is_recorded(mnv3, shapes_dir, tmp_path) -> None:
    """No script: the measured medians are real numbers and the verdict follows them."""
    report = _export(mnv3, shapes_dir, tmp_path / "m.onnx")
    speed = report.stage("int8").details["speed"]
    chosen = speed["attempts"][speed["chosen"]]["latency"]
    assert [r["batch"] for r in chosen] == [1, 8]
    assert all(r["fp32_p50_ms"] > 0 and r["int8_p50_ms"] > 0 and min(r["runs"]) >= 15 for r in chosen)
    assert speed["faster"] == (min(r["speedup"] for r in chosen) >= INT8_MIN_SPEEDUP)
    assert (speed["warning"] is None) == speed["faster"]
