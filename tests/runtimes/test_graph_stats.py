"""ONNX per-node stats on hand-built graphs (torch-free): MACs per op, params, foreign-model quirks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecv.errors import ModelError
from edgecv.graph.stats import graph_stats


def _init(name: str, shape: tuple[int, ...], dtype: type = np.float32, seed: int = 0) -> onnx.TensorProto:
    values = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return numpy_helper.from_array(values, name)


def _model(nodes, inputs, outputs, inits, *, opset: int = 17, ir: int | None = None) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="handmade")
    model.ir_version = ir or 8  # ONNX Runtime 1.17+ reads IR 8; newer onnx writes newer by default
    return model


def _layer(stats, op_type: str, index: int = 0):
    return [layer for layer in stats.layers if layer.type == op_type][index]


@pytest.mark.parametrize("group", [1, 2, 8])
def test_conv_macs_and_params_follow_group(group: int) -> None:
    # (N, 8, 10, 10) -> conv 3x3 pad 1, 16 out channels, groups -> (N, 16, 10, 10)
    w = _init("w", (16, 8 // group, 3, 3))
    b = _init("b", (16,))
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], group=group, pads=[1, 1, 1, 1], name="conv")
    model = _model([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 10, 10])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, b])
    stats = graph_stats(model, batch=2)
    layer = _layer(stats, "Conv")
    assert layer.output_shape == [2, 16, 10, 10]
    assert layer.params == 16 * (8 // group) * 9 + 16 == stats.total_params
    assert layer.macs == 2 * 16 * 10 * 10 * (8 // group) * 9 == stats.total_macs
    assert stats.inputs == [{"name": "x", "shape": ["N", 8, 10, 10], "dtype": "float32"}]
    assert any("N = 2" in note for note in stats.notes)


def test_depthwise_conv_transpose_and_gemm() -> None:
    nodes = [
        helper.make_node("Conv", ["x", "dw"], ["a"], group=4, pads=[1, 1, 1, 1]),  # depthwise
        helper.make_node("ConvTranspose", ["a", "up"], ["b"], strides=[2, 2]),  # (1,4,6,6)->(1,2,12,12)
        helper.make_node("Flatten", ["b"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1),
    ]
    inits = [_init("dw", (4, 1, 3, 3)), _init("up", (4, 2, 2, 2)), _init("fc", (5, 2 * 12 * 12)), _init("fcb", (5,))]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    stats = graph_stats(model)
    assert _layer(stats, "Conv").macs == 4 * 6 * 6 * 9
    assert _layer(stats, "ConvTranspose").output_shape == [1, 2, 12, 12]
    assert _layer(stats, "ConvTranspose").macs == 4 * 6 * 6 * 2 * 2 * 2  # input elems x C_out/g x k
    assert _layer(stats, "Gemm").macs == 5 * 288
    assert stats.total_params == 36 + 32 + 5 * 288 + 5


def test_attention_matmuls_with_dynamic_sequence_and_shared_weights() -> None:
    # x (B, T, 16) -> q = x Wq, k = x Wq (same initializer, counted once), scores = q k^T per head
    d, heads = 16, 4
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q"]),
        helper.make_node("MatMul", ["x", "wq"], ["k"]),
        helper.make_node("Reshape", ["q", "split"], ["qh"]),  # (B, T, H, D/H)
        helper.make_node("Transpose", ["qh"], ["qt"], perm=[0, 2, 1, 3]),  # (B, H, T, D/H)
        helper.make_node("Reshape", ["k", "split"], ["kh"]),
        helper.make_node("Transpose", ["kh"], ["kt"], perm=[0, 2, 3, 1]),  # (B, H, D/H, T)
        helper.make_node("MatMul", ["qt", "kt"], ["scores"]),  # (B, H, T, T)
        helper.make_node("Mul", ["scores", "scale"], ["scaled"]),
        helper.make_node("Softmax", ["scaled"], ["weights"], axis=-1),
        helper.make_node("MatMul", ["weights", "qt"], ["y"]),  # (B, H, T, D/H)
    ]
    inits = [_init("wq", (d, d)), numpy_helper.from_array(np.array([0, 0, heads, d // heads], np.int64), "split"),
             numpy_helper.from_array(np.array([0.5], np.float32), "scale")]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", d])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    t = 10
    stats = graph_stats(model, seq_len=t)
    matmuls = [layer for layer in stats.layers if layer.type == "MatMul"]
    assert [m.macs for m in matmuls] == [t * d * d, t * d * d, heads * t * t * (d // heads), heads * t * (d // heads) * t]
    assert matmuls[2].output_shape == [1, heads, t, t]
    assert stats.total_params == d * d  # shared weight once; shape tensor and scalar scale are not params
    assert [m.params for m in matmuls] == [d * d, 0, 0, 0]


@pytest.mark.parametrize("op,gates", [("LSTM", 4), ("GRU", 3), ("RNN", 1)])
@pytest.mark.parametrize("directions", [1, 2])
def test_recurrent_nodes(op: str, gates: int, directions: int) -> None:
    hidden, features, steps = 8, 5, 7
    w = _init("W", (directions, gates * hidden, features))
    r = _init("R", (directions, gates * hidden, hidden))
    b = _init("B", (directions, 2 * gates * hidden))
    node = helper.make_node(op, ["X", "W", "R", "B"], ["Y"], hidden_size=hidden,
                            direction="bidirectional" if directions == 2 else "forward")
    model = _model([node], [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "N", features])],
                   [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], [w, r, b])
    stats = graph_stats(model, seq_len=steps, batch=3)
    layer = _layer(stats, op)
    assert layer.output_shape == [steps, directions, 3, hidden]
    assert layer.params == directions * gates * hidden * (features + hidden + 2)
    assert layer.macs == steps * 3 * directions * gates * hidden * (features + hidden)


def test_float16_initializers_as_inputs_and_old_opset(tmp_path: Path) -> None:
    """A foreign opset-9 model: float16 weights, and its initializers also listed as graph inputs."""
    w = _init("w", (4, 3, 3, 3), np.float16)
    fc = _init("fc", (6, 4), np.float16)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("GlobalAveragePool", ["c"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1)]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["N", 3, 16, 16]),
              helper.make_tensor_value_info("w", TensorProto.FLOAT16, [4, 3, 3, 3]),
              helper.make_tensor_value_info("fc", TensorProto.FLOAT16, [6, 4])]
    model = _model(nodes, inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT16, None)], [w, fc],
                   opset=9, ir=4)
    path = tmp_path / "old.onnx"
    onnx.save(model, path)
    stats = graph_stats(path)
    assert [i["name"] for i in stats.inputs] == ["x"]  # weights are not inputs
    assert stats.inputs[0]["dtype"] == "float16"
    assert stats.info["opset"] == 9
    assert stats.total_params == 108 + 24
    assert stats.param_bytes == 2 * (108 + 24)  # float16 storage
    assert _layer(stats, "Conv").macs == 4 * 14 * 14 * 27
    assert stats.file_bytes == path.stat().st_size


def test_batchnorm_running_stats_are_buffers_and_identity_aliases_count_once() -> None:
    c = 6
    nodes = [helper.make_node("Identity", ["mean"], ["mean_alias"]),
             helper.make_node("BatchNormalization", ["x", "gamma", "beta", "mean_alias", "var"], ["y"])]
    inits = [_init("gamma", (c,)), _init("beta", (c,)), _init("mean", (c,)), _init("var", (c,))]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 4, 4])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    stats = graph_stats(model)
    assert stats.total_params == 2 * c
    assert stats.total_buffers == 2 * c
    assert stats.total_macs == 0
    identity = _layer(stats, "Identity")
    assert identity.shape_op and identity.params == 0


def test_quantized_weights_count_scales_do_not() -> None:
    nodes = [helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"]),
             helper.make_node("MatMul", ["x", "w"], ["y"])]
    inits = [numpy_helper.from_array(np.ones((8, 4), np.int8), "wq"),
             numpy_helper.from_array(np.array(0.1, np.float32), "ws"),
             numpy_helper.from_array(np.array(0, np.int8), "wz")]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    stats = graph_stats(model)
    assert stats.total_params == 32
    assert _layer(stats, "MatMul").macs == 2 * 4 * 8


def test_shapes_inference_cannot_see_are_filled_by_onnx_runtime() -> None:
    # NonZero's output length depends on the data: only a real run knows the MatMul's M
    nodes = [helper.make_node("NonZero", ["x"], ["nz"]),
             helper.make_node("Cast", ["nz"], ["nzf"], to=TensorProto.FLOAT),
             helper.make_node("Transpose", ["nzf"], ["rows"]),  # (count, 2)
             helper.make_node("MatMul", ["rows", "w"], ["y"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [_init("w", (2, 5))])
    stats = graph_stats(model)  # dummy input is all zeros -> 0 rows
    assert _layer(stats, "MatMul").output_shape == [0, 5]
    assert _layer(stats, "MatMul").macs == 0


@pytest.mark.parametrize("content,expected", [
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n", "Git LFS pointer"),
    (b"this is a text file, not a model\n", "not a valid ONNX model"),
])
def test_non_onnx_files_raise_model_error(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=expected):
        graph_stats(path)


def test_truncated_file_raises_model_error(tmp_path: Path) -> None:
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [_init("w", (64, 64))])
    data = model.SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="cut.onnx"):
        graph_stats(path)


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_dynamic_spatial_dims_take_image_size(layout: str) -> None:
    dims = ["N", 3, "height", "width"] if layout == "nchw" else ["N", "height", "width", 3]
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2])] if layout == "nhwc" else []
    nodes.append(helper.make_node("Conv", ["t" if layout == "nhwc" else "x", "w"], ["y"], strides=[2, 2]))
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [_init("w", (4, 3, 2, 2))])
    stats = graph_stats(model, image_size=32)
    assert _layer(stats, "Conv").output_shape == [1, 4, 16, 16]
    assert stats.total_macs == 4 * 16 * 16 * 12
