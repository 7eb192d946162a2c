"""Roofline: achieved GFLOP/s from MACs and latency beside the measured matmul ceiling."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecv.errors import InputError
from edgecv.runtimes.profiling import roofline


def test_achieved_math() -> None:
    got = roofline.achieved(1_000_000_000, 10.0, 400.0)  # 2 GFLOP in 10 ms = 200 GFLOP/s
    assert got["gflop"] == pytest.approx(2.0) and got["gflops"] == pytest.approx(200.0)
    assert got["pct_peak"] == pytest.approx(50.0)
    assert roofline.achieved(None, 10.0, 400.0)["pct_peak"] is None
    assert roofline.achieved(1000, 1.0, None)["pct_peak"] is None


def test_ort_matmul_peak_is_plausible_and_cached() -> None:
    peak = roofline.matmul_peak_gflops(threads=1, n=256)
    assert 0.5 < peak < 5000  # GFLOP/s of one core: anything from a Pi to a server
    assert roofline.matmul_peak_gflops(threads=1, n=256) == peak


def test_numpy_peak_in_pinned_subprocess() -> None:
    assert roofline.numpy_matmul_gflops(threads=1, n=128, repeats=3) > 0.5


def test_unknown_peak_method() -> None:
    with pytest.raises(InputError, match="peak method"):
        roofline.matmul_peak_gflops(threads=1, method="guess")


def test_model_macs_uses_graph_stats(tmp_path) -> None:
    w = numpy_helper.from_array(np.ones((8, 3, 3, 3), np.float32), "w")
    node = helper.make_node("Conv", ["input", "w"], ["y"], pads=[1, 1, 1, 1])
    graph = helper.make_graph([node], "c", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 16, 16])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "c.onnx"))
    per_image = 8 * 16 * 16 * 3 * 3 * 3  # output elements x (C_in x kH x kW)
    assert roofline.model_macs(tmp_path / "c.onnx", batch=1) == per_image
    assert roofline.model_macs(tmp_path / "c.onnx", batch=4) == 4 * per_image
