"""Every registered architecture: shapes, sizes, torchvision compatibility, ONNX export."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgecv.models import create_model, get_classifier, get_model_spec, list_models
from edgecv.preprocess import IMAGENET_MEAN, IMAGENET_STD

DATA = Path(__file__).parent / "data"
TORCHVISION_NAMES = ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "resnet18", "resnet50",
                     "squeezenet1_0", "squeezenet1_1"]
TEXT_NAMES = ["attention_classifier", "lstm_classifier", "rnn_classifier"]
# Published figures at 224x224, 1000 classes: name -> (params, MACs)
PUBLISHED = {name: (row["params"], row["macs"]) for name, row in
             json.loads((DATA / "published_figures.json").read_text())["models"].items()}
VOCAB = 50


def small_kwargs(name: str) -> dict:
    """Builder kwargs for a quick model of each kind."""
    if get_model_spec(name).task == "text":
        return {"vocab_size": VOCAB, "num_classes": 4, "embed_dim": 16}
    return {"num_classes": 4}


def example(name: str, batch: int) -> torch.Tensor:
    spec = get_model_spec(name)
    if spec.task == "text":
        ids = torch.randint(1, VOCAB, (batch, 9))
        ids[0, 6:] = 0  # some right padding
        return ids
    channels, height, width = spec.input_size
    side = height if name == "simple_cnn" else 32  # simple_cnn's dense layer fixes its input size
    return torch.randn(batch, channels, side, side)


def test_registry_has_every_architecture():
    assert set(TORCHVISION_NAMES) | {"simple_cnn"} | set(TEXT_NAMES) <= set(list_models())
    assert list_models("text") == TEXT_NAMES


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("batch", [1, 3])
def test_forward_shape(name, batch):
    torch.manual_seed(0)
    model = create_model(name, **small_kwargs(name)).eval()
    with torch.no_grad():
        out = model(example(name, batch))
    assert out.shape == (batch, 4)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_image_spec(name):
    spec = get_model_spec(name)
    assert spec.task == "image" and spec.input_size == (3, 224, 224)
    assert spec.mean == IMAGENET_MEAN and spec.std == IMAGENET_STD
    assert spec.torchvision_compatible


@pytest.mark.parametrize("name", TEXT_NAMES)
def test_text_spec(name):
    spec = get_model_spec(name)
    assert (spec.task, spec.input_size, spec.mean, spec.std) == ("text", (64,), None, None)


def test_every_torchvision_model_has_published_figures():
    assert set(TORCHVISION_NAMES) <= set(PUBLISHED)


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_published_params_and_macs(name):
    from torch.utils.flop_counter import FlopCounterMode

    params, macs = PUBLISHED[name]
    with torch.device("meta"):  # no memory, no init: counts come from shapes alone
        model = create_model(name, num_classes=1000)
        with FlopCounterMode(display=False) as counter:
            model(torch.empty(1, 3, 224, 224))
    assert sum(p.numel() for p in model.parameters()) == params
    assert counter.get_total_flops() / 2 == pytest.approx(macs, rel=0.002)


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
@pytest.mark.parametrize("side", [32, 64])
def test_small_inputs_and_in_channels(name, side):
    model = create_model(name, num_classes=3, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, side, side)).shape == (2, 3)


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_state_dict_matches_torchvision_fixture(name):
    """Keys, order and shapes equal torchvision's builder (fixture generated from torchvision)."""
    expected = json.loads((DATA / "torchvision_state_dicts.json").read_text())["models"][name]
    with torch.device("meta"):
        ours = create_model(name, num_classes=1000).state_dict()
    assert list(ours) == list(expected)
    assert {k: list(v.shape) for k, v in ours.items()} == expected


def _torchvision_models():
    try:  # a CUDA-built wheel on a CPU-only torch can fail with RuntimeError, not ImportError
        import torchvision.models as tvm
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"torchvision not usable: {exc}")
    return tvm


def _randomise_batchnorm(model: torch.nn.Module) -> None:
    """Non-trivial BatchNorm statistics and scales, so eval-mode outputs are not near-identity."""
    gen = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen) + 0.5)
            module.weight.data.copy_(torch.rand(module.weight.shape, generator=gen) + 0.5)


@pytest.mark.parametrize("name,kwargs", [(n, {}) for n in TORCHVISION_NAMES]
                         + [("mobilenet_v2", {"width_mult": 0.5}), ("mobilenet_v2", {"width_mult": 1.4}),
                            ("mobilenet_v3_small", {"width_mult": 0.75})])
def test_torchvision_weights_give_identical_logits(name, kwargs):
    tvm = _torchvision_models()
    torch.manual_seed(0)
    reference = getattr(tvm, name)(num_classes=10, **kwargs).eval()
    _randomise_batchnorm(reference)
    ours = create_model(name, num_classes=10, **kwargs).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected, got = reference(x), ours(x)
    assert expected.abs().max() > 1e-3  # a meaningful comparison, not 0 == 0
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", TORCHVISION_NAMES + ["simple_cnn"])
def test_image_onnx_export_dynamic_batch(name):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    # final_relu=False: a fresh SqueezeNet head behind a ReLU can output all zeros.
    kwargs = {"final_relu": False} if name.startswith("squeezenet") else {}
    model = create_model(name, num_classes=4, **kwargs).eval()
    _randomise_batchnorm(model)
    get_classifier(model).weight.data.mul_(100)  # N(0, 0.01) heads give near-zero logits
    side = 28 if name == "simple_cnn" else 32
    channels = get_model_spec(name).input_size[0]
    buffer = io.BytesIO()
    torch.onnx.export(model, (torch.randn(1, channels, side, side),), buffer, dynamo=False,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    for batch in (1, 3):  # exported at batch 1: proves the batch axis was not specialised
        x = torch.randn(batch, channels, side, side)
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {"input": x.numpy()})[0]
        assert got.shape == (batch, 4) and np.abs(expected).max() > 1e-3
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_squeezenet_final_relu_option(name):
    """Same state dict either way; without the ReLU no class can start dead (logits of both signs)."""
    torch.manual_seed(0)
    with_relu = create_model(name, num_classes=4).eval()
    without = create_model(name, num_classes=4, final_relu=False).eval()
    without.load_state_dict(with_relu.state_dict(), strict=True)
    x = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        clipped, raw = with_relu(x), without(x)
    torch.testing.assert_close(clipped, raw.clamp(min=0))
    assert (clipped >= 0).all() and (raw < 0).any()
