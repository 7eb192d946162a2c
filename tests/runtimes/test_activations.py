"""Feature maps via ONNX Runtime (torch-free): tensor listing, contract preprocessing, montages."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecv.contract import ModelContract, embed_contract
from edgecv.errors import InputError
from edgecv.graph.activations import compute_activation, list_tensors, montage, montage_figure, write_montage
from edgecv.preprocess import PreprocessSpec, load_image, preprocess_image


def _conv_model(*, channels: int = 5, dtype: int = TensorProto.FLOAT, size: int = 12) -> onnx.ModelProto:
    """input (N, 3, S, S) -> doubled = 2x -> conv 3x3 (channels) -> relu -> pool -> logits (N, channels)."""
    np_dtype = np.float16 if dtype == TensorProto.FLOAT16 else np.float32
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((channels, 3, 3, 3)).astype(np_dtype), "w")
    two = numpy_helper.from_array(np.array(2.0, np_dtype), "two")
    nodes = [helper.make_node("Mul", ["input", "two"], ["doubled"]),
             helper.make_node("Conv", ["doubled", "w"], ["conv_out"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv_out"], ["relu_out"]),
             helper.make_node("GlobalAveragePool", ["relu_out"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["logits"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", dtype, ["N", 3, size, size])],
                              [helper.make_tensor_value_info("logits", dtype, ["N", channels])], [w, two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    path = tmp_path / "img.png"
    rng = np.random.default_rng(1)
    cv2.imwrite(str(path), rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    return path


def test_list_tensors_shows_data_tensors_with_shapes() -> None:
    tensors = list_tensors(_conv_model())
    assert [(t.name, t.op, t.shape) for t in tensors] == [
        ("doubled", "Mul", [1, 3, 12, 12]), ("conv_out", "Conv", [1, 5, 12, 12]),
        ("relu_out", "Relu", [1, 5, 12, 12]), ("pooled", "GlobalAveragePool", [1, 5, 1, 1]),
        ("logits", "Flatten", [1, 5])]


def test_activation_uses_the_contract_preprocessing(tmp_path: Path, image: Path) -> None:
    model = _conv_model()
    spec = PreprocessSpec(size=(12, 12), resize="stretch", mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5))
    embed_contract(model, ModelContract(task="image", labels=list("abcde"), preprocess=spec))
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    value = compute_activation(path, image, "doubled")
    expected = 2 * preprocess_image(load_image(image), spec)[None]
    np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-6)
    assert onnx.load(path).graph.output[0].name == "logits"  # the file itself is untouched


def test_foreign_model_gets_defaults_from_its_input_shape(tmp_path: Path, image: Path) -> None:
    path = tmp_path / "foreign.onnx"
    onnx.save(_conv_model(dtype=TensorProto.FLOAT16, size=16), path)  # float16 input, no contract
    value = compute_activation(path, image, "conv_out")
    assert value.shape == (1, 5, 16, 16) and value.dtype == np.float16


def test_write_montage_png(tmp_path: Path, image: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_conv_model(channels=5), path)
    out = tmp_path / "maps" / "relu.png"
    summary = write_montage(path, image, "relu_out", out)
    picture = cv2.imread(str(out))
    assert picture is not None and summary["channels_shown"] == 5 and summary["shape"] == [1, 5, 12, 12]
    # 5 channels -> 3 columns x 2 rows of 96-px tiles (12 px x 8) with 2-px gaps, below a title
    top, left, height, width = summary["grid_box"]
    assert (height, width) == (2 * 98 + 2, 3 * 98 + 2)
    assert picture.shape[0] > top + height and top > 0 and picture.shape[1] >= left + width
    assert list(picture.shape[:2]) == summary["image_size"]


def test_montage_normalises_each_channel() -> None:
    x = np.zeros((1, 4, 2, 2), np.float32)
    x[0, 0] = [[0, 1], [2, 3]]
    x[0, 1] = 1000 * x[0, 0]  # same pattern, other scale -> same picture
    x[0, 2] = 7.0  # constant channel -> flat (no division by zero)
    grid = montage(x, tile=4, gap=1, colormap=None)[:, :, 0]
    first, second, third = grid[1:5, 1:5], grid[1:5, 6:10], grid[6:10, 1:5]
    np.testing.assert_array_equal(first, second)
    assert first.min() == 0 and first.max() == 255
    assert np.all(third == 0)
    assert np.all(grid[0] == 255)  # gap rows stay white
    assert montage(x, max_channels=1, tile=4, gap=1).shape == (6, 6, 3)


def test_unknown_layer_lists_valid_names(tmp_path: Path, image: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_conv_model(), path)
    with pytest.raises(InputError, match=r"no tensor named 'conv_ot'.*conv_out.*--layers"):
        compute_activation(path, image, "conv_ot")


def test_non_feature_map_layer_and_bad_output_path(tmp_path: Path, image: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_conv_model(), path)
    with pytest.raises(InputError, match="needs a feature map"):
        write_montage(path, image, "logits", tmp_path / "x.png")
    with pytest.raises(InputError, match="expected a .png"):
        write_montage(path, image, "relu_out", tmp_path / "x.txt")


def test_text_model_is_refused(tmp_path: Path, image: Path) -> None:
    emb = numpy_helper.from_array(np.ones((10, 4), np.float32), "emb")
    nodes = [helper.make_node("Gather", ["emb", "input_ids"], ["x"]),
             helper.make_node("ReduceMean", ["x"], ["logits"], axes=[1], keepdims=0)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", "T"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)], [emb])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "text.onnx"
    onnx.save(model, path)
    with pytest.raises(InputError, match="need an image model"):
        compute_activation(path, image, "x")


def test_a_handed_in_spec_replaces_the_defaults(tmp_path: Path, image: Path) -> None:
    """What ``edgecv inspect --size/--mean/--std`` hands down: the activation follows it (the
    graph layer only fixes the dtype to the graph's), and an image model is still required."""
    path = tmp_path / "foreign.onnx"
    model = _conv_model()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    model.graph.input[0].type.tensor_type.shape.dim[3].dim_param = "W"
    onnx.save(model, path)
    spec = PreprocessSpec(size=(6, 8), resize="stretch", mean=(0.5,) * 3, std=(0.25,) * 3)
    value = compute_activation(path, image, "doubled", spec=spec)
    np.testing.assert_allclose(value, 2 * preprocess_image(load_image(image), spec)[None], rtol=1e-6, atol=1e-6)
    default = compute_activation(path, image, "doubled")
    assert value.shape == (1, 3, 6, 8) and default.shape == (1, 3, 224, 224)
    summary = write_montage(path, image, "relu_out", tmp_path / "m.png", spec=spec)
    assert summary["shape"] == [1, 5, 6, 8]


def test_montage_figure_has_a_title_channel_numbers_and_a_colour_bar() -> None:
    """The title (model, layer, shape) and colour bar make the picture taller than the tiles; the
    tiles themselves are the bare montage but for the channel number in each corner."""
    x = np.random.default_rng(0).standard_normal((1, 6, 8, 8)).astype(np.float32)
    picture, drawn = montage_figure(x, model="net.onnx", layer="conv_out", max_channels=4)
    bare = montage(x, max_channels=4)
    top, left, height, width = drawn["grid_box"]
    assert (height, width) == bare.shape[:2] and picture.shape[0] > height + 60 and picture.shape[1] >= width
    assert drawn["title"][0] == "net.onnx - layer conv_out"
    assert drawn["title"][1] == "tensor 1x6x8x8: channels 0-3 of 6 shown"
    grid = picture[top:top + height, left:left + width]
    corner = (slice(2, 16), slice(2, 16))  # tile 0's number box: dark, then white digits
    assert not np.array_equal(grid[corner], bare[corner])
    np.testing.assert_array_equal(grid[40:90, 40:90], bare[40:90, 40:90])  # the map itself is untouched
    bar = picture[top + height:]
    assert bar.shape[0] >= 12 and len({tuple(p) for p in bar[8, left:left + 100]}) > 20  # a gradient
    assert not np.all(picture[:top] == 255)  # the title is drawn
