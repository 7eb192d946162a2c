"""Torch per-layer stats: published figures, MAC rules, and agreement with the ONNX view."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from edgecv.errors import InputError  # noqa: E402
from edgecv.graph.stats import graph_stats  # noqa: E402
from edgecv.models import create_model, get_model_spec, list_models  # noqa: E402
from edgecv.models.summary import (  # noqa: E402
    build_kwargs,
    example_input,
    parse_input_size,
    summarize,
    summarize_registered,
)

# Published figures at 224x224, 1000 classes: name -> (params, MACs)
DATA = Path(__file__).parent / "data"
PUBLISHED = {name: (row["params"], row["macs"]) for name, row in
             json.loads((DATA / "published_figures.json").read_text())["models"].items()}
EXPORT_224_FAST = {"mobilenet_v2", "squeezenet1_1"}
HEAVY = {"mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "squeezenet1_0"}  # ~1 s to build on CPU


def _registry(*, slow: set[str] = frozenset(), skip: set[str] = frozenset()) -> list:
    """Every registered model; the ones in ``slow`` run only with ``-m slow``."""
    return [pytest.param(n, marks=pytest.mark.slow) if n in slow else n for n in list_models() if n not in skip]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_figures_at_224(name: str) -> None:
    if name not in list_models():
        pytest.skip(f"{name} is not registered")
    params, macs = PUBLISHED[name]
    stats = summarize_registered(name)
    assert stats.total_params == params
    assert abs(stats.total_macs - macs) / macs < 0.02
    assert stats.info["input_size"] == [3, 224, 224]
    assert stats.outputs[0]["shape"] == [1, 1000]


@pytest.mark.parametrize("name", _registry(slow=HEAVY))
def test_meta_device_gives_the_same_figures_as_cpu(name: str) -> None:
    spec = get_model_spec(name)
    size = (spec.input_size[0], 64, 64) if spec.task == "image" and name != "simple_cnn" else None
    fast = summarize_registered(name, input_size=size, seq_len=12)
    real = summarize_registered(name, input_size=size, seq_len=12, meta=False)
    assert (fast.total_params, fast.total_macs) == (real.total_params, real.total_macs)
    assert [(a.name, a.output_shape, a.macs) for a in fast.layers] == [(b.name, b.output_shape, b.macs)
                                                                       for b in real.layers]
    assert sum(layer.params for layer in real.layers) == real.total_params
    assert real.total_macs > 0


def _export(model: nn.Module, x: torch.Tensor, path: Path, *, text: bool) -> Path:
    """Legacy exporter, BatchNorm kept as its own node (PRESERVE) so params compare one to one."""
    torch.manual_seed(0)
    with torch.no_grad():  # distinct values: the exporter merges identical initializers (zero biases)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 1e-3)
    name = "input_ids" if text else "input"
    axes = {name: {0: "batch", 1: "seq"} if text else {0: "batch"}, "logits": {0: "batch"}}
    with warnings.catch_warnings():  # legacy-exporter deprecation and tracer chatter
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=[name], output_names=["logits"],
                          dynamic_axes=axes, opset_version=17, training=torch.onnx.TrainingMode.PRESERVE)
    return path


def _compare(name: str, side: int | None, tmp_path: Path) -> None:
    spec = get_model_spec(name)
    text = spec.task == "text"
    size = (spec.input_size[0], side, side) if side else None
    model = create_model(name, **build_kwargs(name, input_size=size)).eval()
    x = example_input(name, input_size=size, seq_len=12)
    torch_view = summarize(model, x)
    onnx_view = graph_stats(_export(model, x, tmp_path / f"{name}.onnx", text=text),
                            seq_len=12, image_size=side or 224)
    assert onnx_view.total_params == torch_view.total_params
    assert abs(onnx_view.total_macs - torch_view.total_macs) <= 0.01 * torch_view.total_macs


@pytest.mark.parametrize("name", _registry(slow={"mobilenet_v3_large", "squeezenet1_0"}, skip=EXPORT_224_FAST))
def test_torch_and_onnx_views_agree(name: str, tmp_path: Path) -> None:
    spec = get_model_spec(name)
    side = 64 if spec.task == "image" and spec.torchvision_compatible else None
    _compare(name, side, tmp_path)


@pytest.mark.parametrize("name", [n for n in sorted(PUBLISHED) if n in EXPORT_224_FAST] + [
    pytest.param(n, marks=pytest.mark.slow) for n in sorted(PUBLISHED) if n not in EXPORT_224_FAST])
def test_torch_and_onnx_views_agree_at_224(name: str, tmp_path: Path) -> None:
    if name not in list_models():
        pytest.skip(f"{name} is not registered")
    _compare(name, 224, tmp_path)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cls,gates", [(nn.LSTM, 4), (nn.GRU, 3), (nn.RNN, 1)])
def test_recurrent_rule(cls: type, gates: int, bidirectional: bool) -> None:
    # eager CPU LSTM kernels are invisible to the flop counter: the rule must supply the MACs
    layer = cls(6, 10, num_layers=2, batch_first=True, bidirectional=bidirectional)
    stats = summarize(layer, torch.zeros(3, 7, 6))
    dirs = 2 if bidirectional else 1
    per_step = dirs * gates * 10 * (6 + 10) + dirs * gates * 10 * (10 * dirs + 10)
    assert stats.total_macs == 3 * 7 * per_step
    assert stats.layers[0].output_shape == [3, 7, 10 * dirs]


def test_grouped_conv_and_custom_matmul_module() -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
            self.scale = nn.Parameter(torch.ones(8))  # owned directly by the non-leaf module

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.dw(x).flatten(2)  # (B, 8, HW)
            return (y @ y.transpose(1, 2)) * self.scale  # (B, 8, 8): 8*8*HW MACs outside any leaf

    stats = summarize(Block(), torch.zeros(1, 8, 5, 5))
    rows = {layer.name: layer for layer in stats.layers}
    assert rows["dw"].macs == 8 * 25 * 9 and rows["dw"].params == 72
    assert rows["Block"].macs == 8 * 8 * 25 and rows["Block"].params == 8
    assert stats.total_params == 80


def test_attention_matmuls_are_counted() -> None:
    if "attention_classifier" not in list_models():
        pytest.skip("attention_classifier is not registered")
    t = 16
    stats = summarize_registered("attention_classifier", seq_len=t, meta=False)
    model = create_model("attention_classifier", **build_kwargs("attention_classifier"))
    block = model.blocks[0].attn
    own = [layer for layer in stats.layers if layer.type == type(block).__name__]
    assert len(own) == len(model.blocks)
    # Q K^T and weights V: 2 x heads x T x T x head_dim per block
    assert all(layer.macs == 2 * block.num_heads * t * t * block.head_dim for layer in own)


def test_input_size_and_class_options_change_the_figures() -> None:
    small = summarize_registered("simple_cnn", input_size=(3, 32, 32), num_classes=4)
    assert small.layers[0].output_shape == [1, 32, 32, 32]
    assert small.outputs[0]["shape"] == [1, 4]
    assert small.info["model_kwargs"] == {"num_classes": 4, "in_channels": 3, "input_size": 32}


@pytest.mark.parametrize("text,expected", [(None, (3, 224, 224)), ("160", (3, 160, 160)),
                                           ("1,28,28", (1, 28, 28)), ("3x96x128", (3, 96, 128))])
def test_parse_input_size(text: str | None, expected: tuple[int, ...]) -> None:
    assert parse_input_size(text, default=(3, 224, 224)) == expected


@pytest.mark.parametrize("text", ["abc", "0", "1,2,3,4"])
def test_parse_input_size_rejects_nonsense(text: str) -> None:
    with pytest.raises(InputError, match="input size"):
        parse_input_size(text, default=(3, 224, 224))


def test_wrong_input_is_a_one_line_error() -> None:
    with pytest.raises(InputError, match="forward pass failed"):
        summarize(create_model("simple_cnn"), torch.zeros(1, 3, 28, 28))


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in ("lstm_classifier", "attention_classifier", "mobilenet_v3_small",
                                            "resnet18")
                                  if n in list_models()])
def test_dynamo_export_agrees_too(name: str, tmp_path: Path) -> None:
    """The torch.export-based exporter writes different graphs (stale value_info, scalar fills)."""
    spec = get_model_spec(name)
    text = spec.task == "text"
    size = None if text else (3, 64, 64)
    model = create_model(name, **build_kwargs(name, input_size=size)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 1e-3)
    x = example_input(name, input_size=size, seq_len=12)
    torch_view = summarize(model, x)
    path = tmp_path / f"{name}.onnx"
    input_name = "input_ids" if text else "input"
    dims = ({0: torch.export.Dim("batch"), 1: torch.export.Dim("seq")},) if text else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=True, opset_version=18, input_names=[input_name],
                          output_names=["logits"], dynamic_shapes=dims, verbose=False)
    onnx_view = graph_stats(path, seq_len=12, image_size=64)
    assert abs(onnx_view.total_macs - torch_view.total_macs) <= 0.01 * torch_view.total_macs
    if text:  # image models: the exporter folds BatchNorm into the convs (fewer params by design)
        assert onnx_view.total_params == torch_view.total_params
