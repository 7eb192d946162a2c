"""``--ops``: ONNX Runtime profiling traces aggregated per operator type."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecv.errors import InputError
from edgecv.runtimes.profiling.ops import load_trace, parse_trace, profile_ops


def _node(name, op, ts, dur, provider="CPUExecutionProvider"):
    return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur,
            "args": {"op_name": op, "provider": provider}}


def _trace():
    events = []
    # warm-up run at t=0..100 (must be dropped), then two measured runs of 100 us each
    for start in (0, 1000, 2000):
        events.append({"cat": "Session", "name": "model_run", "ts": start, "dur": 100})
        events.append(_node("conv1", "Conv", start + 1, 50 if start else 999))
        events.append(_node("conv2", "Conv", start + 52, 30))
        events.append(_node("relu", "Relu", start + 83, 10))
        events.append({"cat": "Node", "name": "relu_fence_before", "ts": start + 82, "dur": 0, "args": {}})
    return events


def test_parse_trace_aggregates_per_op_and_node() -> None:
    prof = parse_trace(_trace(), runs=2)
    assert prof.runs == 2 and prof.run_ms == pytest.approx(0.1)
    conv, relu = prof.ops
    assert (conv.op_type, conv.count, conv.calls) == ("Conv", 2, 4)
    assert conv.per_run_ms == pytest.approx(0.08) and conv.total_ms == pytest.approx(0.16)
    assert conv.percent == pytest.approx(80.0) and relu.percent == pytest.approx(10.0)
    assert [n.node for n in prof.nodes] == ["conv1", "conv2", "relu"]
    assert prof.nodes[0].per_run_ms == pytest.approx(0.05)  # the 999 us warm-up kernel is excluded
    assert prof.providers == {"CPUExecutionProvider": pytest.approx(100.0)}
    assert len(prof.to_dict(top=1)["nodes"]) == 1


def test_parse_trace_without_runs_is_an_error() -> None:
    with pytest.raises(InputError, match="model_run"):
        parse_trace([_node("a", "Add", 0, 1)])


def test_load_trace_accepts_both_layouts(tmp_path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(_trace()))
    (tmp_path / "b.json").write_text(json.dumps({"traceEvents": _trace()}))
    (tmp_path / "c.json").write_text("{not json")
    assert len(load_trace(tmp_path / "a.json")) == len(load_trace(tmp_path / "b.json")) == 15
    with pytest.raises(InputError, match="profiling trace"):
        load_trace(tmp_path / "c.json")


def test_profile_ops_on_real_session(tmp_path) -> None:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32), "w2")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["a"], name="mm1"), helper.make_node("Relu", ["a"], ["b"], name="act"),
             helper.make_node("MatMul", ["b", "w2"], ["c"], name="mm2"), helper.make_node("Sigmoid", ["c"], ["y"], name="out")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [32, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [32, 64])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    feeds = {"x": rng.standard_normal((32, 64)).astype(np.float32)}
    prof = profile_ops(path, feeds, provider="cpu", threads=1, warmup=2, runs=6)
    assert prof.runs == 6
    ops = {o.op_type: o for o in prof.ops}
    assert "MatMul" in ops and ops["MatMul"].calls % 6 == 0  # possibly fused, but once per run
    assert sum(o.percent for o in prof.ops) <= 100.0 + 1e-6
    assert prof.nodes and prof.nodes[0].per_run_ms > 0
    assert list(tmp_path.iterdir()) == [path]  # the trace file went to a temporary folder
