"""edgecv.runtimes.load / Classifier on constructed ONNX models whose answers are known."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _infer_fixtures as F  # noqa: E402

from edgecv.errors import InputError  # noqa: E402
from edgecv.postprocess import softmax  # noqa: E402
from edgecv.runtimes import Classifier, imagenet_labels, load, load_labels  # noqa: E402
from edgecv.runtimes.foreign import PreprocessOverrides, build_spec, parse_floats, parse_size  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    return {
        "image": F.image_model(d / "image.onnx"),
        "fp16": F.image_model(d / "fp16.onnx", contract=False, batch=1, dtype="float16", softmax=True),
        "nc11": F.image_model(d / "nc11.onnx", contract=False, nc11=True),
        "gray": F.image_model(d / "gray.onnx", contract=False, channels=1),
        "text": F.text_model(d / "text.onnx"),
        "attn": F.text_model(d / "attn.onnx", attention=True),
    }


def _clf(path: Path, **kw) -> Classifier:
    return load(path, provider="cpu", threads=1, **kw)


@pytest.mark.parametrize("colour", F.COLOURS)
def test_predict_single_array_and_path(models, tmp_path, colour):
    clf = _clf(models["image"])
    pred = clf.predict(F.solid(colour))
    assert (pred.label, pred.index) == (colour, F.COLOURS.index(colour))
    assert pred.prob > 0.99 and pred.probs.shape == (3,)
    assert [t.label for t in pred.top_k][0] == colour and len(pred.top_k) == 3
    t = pred.timings
    assert t.inference_ms > 0 and t.total_ms >= t.inference_ms
    path = F.write_images(tmp_path, [colour], nested=False)[0]
    assert clf.predict(path).label == colour
    assert clf.predict(str(path), top_k=1).top_k[0].label == colour


def test_predict_batch_list_and_4d_array(models):
    clf = _clf(models["image"])
    colours = ["blue", "red", "green", "green", "red"]
    preds = clf.predict([F.solid(c) for c in colours], top_k=2)
    assert [p.label for p in preds] == colours
    assert all(len(p.top_k) == 2 for p in preds)
    stacked = np.stack([F.solid(c) for c in colours])  # (N, H, W, 3)
    assert [p.label for p in clf.predict(stacked)] == colours


def test_contract_supplies_labels_and_spec(models):
    clf = _clf(models["image"])
    assert clf.labels == list(F.COLOURS) and clf.task == "image"
    assert clf.spec.size == (16, 16) and clf.spec.resize == "stretch"
    assert "CPUExecutionProvider" in clf.describe() and "threads 1" in clf.describe()


def test_foreign_fp16_softmax_fixed_batch_is_looped_and_not_softmaxed_twice(models):
    clf = _clf(models["fp16"], stretch=True, mean="0,0,0", std="1,1,1")
    assert clf.input.shape[0] == 1 and clf.spec.dtype == "float16" and clf.contract is None
    colours = ["red", "blue", "green"]
    preds = clf.predict([F.solid(c) for c in colours])  # batch 3 through a batch-1 graph
    assert [p.index for p in preds] == [0, 2, 1]
    assert [p.label for p in preds] == ["class_0", "class_2", "class_1"]
    # the graph already applies softmax to 10 * channel mean: (200/255*10, 0, 0) for red
    expected = softmax(np.array([200 / 255 * 10, 0.0, 0.0]))
    np.testing.assert_allclose(preds[0].probs, expected, atol=2e-3)
    twice = softmax(expected)
    assert abs(preds[0].prob - twice[0]) > 0.3


def test_foreign_defaults_from_graph(models):
    clf = _clf(models["fp16"])
    spec = clf.spec
    assert spec.size == (16, 16) and spec.color == "rgb" and spec.mean == pytest.approx((0.485, 0.456, 0.406))
    assert spec.scale == pytest.approx(1 / 255)


def test_nc11_output_is_squeezed(models):
    clf = _clf(models["nc11"], labels=["r", "g", "b"])
    preds = clf.predict([F.solid("blue"), F.solid("red")])
    assert [p.label for p in preds] == ["b", "r"] and preds[0].probs.shape == (3,)


def test_one_channel_model(models):
    clf = _clf(models["gray"], labels=["dark", "bright"])
    assert clf.spec.color == "gray" and clf.spec.channels == 1
    bright, dark = np.full((10, 12, 3), 240, np.uint8), np.full((10, 12), 10, np.uint8)
    assert [p.label for p in clf.predict([bright, dark])] == ["bright", "dark"]


def test_initializers_listed_as_inputs_are_not_inputs(tmp_path):
    path = F.image_model(tmp_path / "old.onnx")
    model = onnx.load(str(path))
    w = next(i for i in model.graph.initializer if i.name == "w")
    model.graph.input.append(onnx.helper.make_tensor_value_info("w", w.data_type, list(w.dims)))
    onnx.save(model, str(path))
    clf = _clf(path)
    assert clf.input.name == "input" and clf.predict(F.solid("green")).label == "green"


@pytest.mark.parametrize(
    "tensor, words",
    [
        (np.zeros((1, 3, 16, 16), np.float32), ["float16", "float32"]),
        (np.zeros((3, 16, 16), np.float16), ["rank 4", "(3, 16, 16)"]),
        (np.zeros((1, 3, 20, 16), np.float16), ["dim 2 fixed at 16", "(1, 3, 20, 16)"]),
    ],
)
def test_input_validation_names_expected_and_got(models, tensor, words):
    clf = _clf(models["fp16"])
    with pytest.raises(InputError) as info:
        clf.predict_tensor(tensor)
    msg = str(info.value)
    assert "fp16.onnx" in msg and "(1, 3, 16, 16) float16" in msg
    for w in words:
        assert w in msg


def test_size_override_conflicting_with_fixed_graph_is_an_error(models):
    with pytest.raises(InputError, match=r"dim 2 fixed at 16"):
        _clf(models["fp16"], size="32,32")


def test_predict_tensor_matches_predict(models):
    clf = _clf(models["image"])
    img = F.solid("blue")
    x = clf.preprocess([img])
    assert x.shape == (1, 3, 16, 16) and x.dtype == np.float32
    np.testing.assert_allclose(clf.predict_tensor(x)[0].probs, clf.predict(img).probs, rtol=1e-6)


def test_text_model(models):
    clf = _clf(models["text"])
    assert clf.task == "text" and clf.tokenizer is not None
    preds = clf.predict_text(["The movie was GREAT", "awful, bad movie", "good"])
    assert [p.label for p in preds] == ["positive", "negative", "positive"]
    assert preds[0].tokens == ["the", "movie", "was", "great"]
    single = clf.predict_text("bad")
    assert single.label == "negative" and single.attention is None


def test_text_attention_output(models):
    clf = _clf(models["attn"])
    pred = clf.predict_text(["good movie great"], attention=True)[0]
    assert pred.attention.shape == (1, 1, 3, 3)
    np.testing.assert_allclose(pred.attention[0, 0].sum(-1), 1.0, atol=1e-5)
    # "good" attends to itself and "great" (same embedding) more than to "movie"
    row = pred.attention[0, 0, 0]
    assert row[2] > row[1] and row[0] > row[1]


def test_wrong_task_errors(models):
    with pytest.raises(InputError, match="text model"):
        _clf(models["text"]).predict(F.solid("red"))
    with pytest.raises(InputError, match="image model"):
        _clf(models["image"]).predict_text("good")


def test_unreadable_image_path_is_an_input_error(models, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(InputError, match="bad.jpg"):
        _clf(models["image"]).predict(bad)


def test_labels_mismatch_and_unknown_override(models):
    with pytest.raises(InputError, match="2 labels given but the model has 3 outputs"):
        _clf(models["image"], labels=["a", "b"])
    with pytest.raises(InputError, match="unknown option"):
        _clf(models["image"], colour="rgb")


def test_imagenet_labels():
    names = imagenet_labels()
    assert len(names) == 1000 and len(set(names)) >= 998
    assert (names[0], names[1], names[207], names[999]) == ("tench", "goldfish", "golden retriever", "toilet tissue")
    assert load_labels("imagenet") == list(names) and load_labels("ImageNet")[281] == "tabby"


def test_labels_file_with_and_without_numbering(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("cat\n\ndog\n")
    numbered = tmp_path / "numbered.txt"
    numbered.write_text("0, cat\n1, dog\n")
    assert load_labels(plain) == ["cat", "dog"] == load_labels(numbered)
    with pytest.raises(InputError, match="labels file not found"):
        load_labels(tmp_path / "missing.txt")


def test_build_spec_overrides():
    ov = PreprocessOverrides.from_kwargs({"resize": 256, "crop": 224, "bgr": True, "scale": 1.0,
                                          "mean": "123.7,116.3,103.5", "std": "58.4,57.1,57.4"})
    spec = build_spec(input_shape=(None, 3, None, None), input_dtype="float32", base=None, overrides=ov)
    assert spec.size == (224, 224) and spec.short_side == 256 and spec.color == "bgr"
    assert spec.scale == 1.0 and spec.mean[0] == pytest.approx(123.7)
    nhwc = build_spec(input_shape=(1, 96, 128, 3), input_dtype="float16", base=None)
    assert (nhwc.layout, nhwc.size, nhwc.dtype) == ("nhwc", (96, 128), "float16")


@pytest.mark.parametrize("bad", ["1,2,3", "x", "0"])
def test_parse_size_errors(bad):
    with pytest.raises(InputError, match="expected H,W"):
        parse_size(bad)


def test_parse_floats_errors():
    assert parse_floats("0.5") == (0.5,)
    with pytest.raises(InputError, match="expected 1 or 3"):
        parse_floats("1,2", name="mean")


def test_edgecv_load_reexport(models):
    import edgecv

    clf = edgecv.load(models["image"], provider="cpu", threads=1)
    assert clf.predict(F.solid("red")).label == "red"
