"""Every registry model exports, simplifies and matches PyTorch at batch 1 and 3 (two lengths for text)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from edgecv.exporters import export_onnx, simplify, torch_reference, verify_onnx
from edgecv.exporters.samples import random_samples
from edgecv.exporters.verify import FP32_ATOL
from edgecv.models import create_model, get_model_spec, list_models
from edgecv.preprocess import default_spec

SIDE = {"simple_cnn": 32}  # image side per model; 64 px keeps SqueezeNet's 8x downsampling >= 1 px


def build(name: str) -> tuple[torch.nn.Module, dict]:
    """A small instance of ``name`` and what the export needs to know about it."""
    torch.manual_seed(0)
    spec = get_model_spec(name)
    if spec.task == "text":
        kwargs = {"vocab_size": 50, "num_classes": 3, "embed_dim": 16}
        kwargs.update({"num_heads": 2, "ff_dim": 32, "max_len": 40} if name == "attention_classifier"
                      else {"hidden_size": 16})
        return create_model(name, **kwargs).eval(), {"task": "text"}
    side = SIDE.get(name, 64)
    kwargs = {"num_classes": 5}
    if name == "simple_cnn":
        kwargs.update(in_channels=3, input_size=side)
    model = create_model(name, **kwargs).eval()
    return model, {"task": "image", "input_shape": (3, side, side), "spec": default_spec(size=side)}


def _dims(value_info: onnx.ValueInfoProto) -> list[object]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.mark.parametrize("name", list_models())
def test_registry_model_exports_simplifies_and_matches(name: str, tmp_path: Path) -> None:
    model, info = build(name)
    task = info["task"]
    attention = name == "attention_classifier"
    raw = export_onnx(model, tmp_path / "raw.onnx", task=task, input_shape=info.get("input_shape"),
                      return_attention=attention)
    graph = onnx.load(str(raw))
    first = graph.graph.input[0]
    # Named, dynamic axes: "batch" for all, "batch" + "sequence" for text.
    assert first.name == ("input_ids" if task == "text" else "input")
    assert _dims(first)[0] == "batch"
    if task == "text":
        assert _dims(first)[1] == "sequence"
    assert [o.name for o in graph.graph.output] == (["logits", "attention"] if attention else ["logits"])

    samples = random_samples(task=task, n=10, input_shape=info.get("input_shape"), vocab_size=50, seq_len=10)
    reference = torch_reference(model, samples, spec=None, max_len=40, return_attention=attention)
    assert 1 in reference.batch_sizes and 3 in reference.batch_sizes
    if task == "text":
        assert len(reference.sequence_lengths) >= 2

    fp32 = verify_onnx(raw, reference, stage="fp32")
    assert fp32.passed, fp32.error
    assert fp32.max_abs <= FP32_ATOL and fp32.top1_agreement == 1.0
    if attention:
        assert fp32.attention_max_abs is not None and fp32.attention_max_abs <= FP32_ATOL

    def check(path: Path) -> str | None:
        result = verify_onnx(path, reference, stage="simplified")
        return None if result.passed else result.error

    result = simplify(raw, tmp_path / "simplified.onnx", check=check)
    assert result.applied, result.reason
    assert 0 < result.nodes_after <= result.nodes_before
    assert Path(result.path).exists()


def test_specialised_batch_is_an_export_failure(tmp_path: Path) -> None:
    """A graph that only runs at its traced batch size must fail verification, not warn."""
    model, info = build("simple_cnn")
    path = export_onnx(model, tmp_path / "fixed.onnx", dynamic_batch=False, input_shape=info["input_shape"],
                       sample_input=torch.randn(1, *info["input_shape"]))
    samples = random_samples(task="image", n=4, input_shape=info["input_shape"])
    reference = torch_reference(model, samples)
    result = verify_onnx(path, reference, stage="fp32")
    assert not result.passed
    assert "does not run on input 3x3x32x32" in result.error


def test_specialised_sequence_is_an_export_failure(tmp_path: Path) -> None:
    model, _ = build("lstm_classifier")
    path = export_onnx(model, tmp_path / "fixed_seq.onnx", task="text", dynamic_seq=False)
    samples = random_samples(task="text", n=4, vocab_size=50, seq_len=10)
    result = verify_onnx(path, torch_reference(model, samples), stage="fp32")
    assert not result.passed and "does not run" in result.error


def test_export_is_quiet_and_atomic(tmp_path: Path) -> None:
    """No torch deprecation/tracer warnings reach users, and no temp files stay behind."""
    model, info = build("attention_classifier")
    out = tmp_path / "sub" / "dir" / "model.onnx"  # the output directory is created
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_onnx(model, out, task="text", return_attention=True)
    assert not [w for w in caught if "onnx" in str(w.filename) or "TorchScript" in str(w.message)]
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.onnx"]


@pytest.mark.slow  # the first torch.export call costs several seconds of imports
def test_dynamo_exporter_also_keeps_axes_dynamic(tmp_path: Path) -> None:
    model, info = build("simple_cnn")
    path = export_onnx(model, tmp_path / "dynamo.onnx", exporter="dynamo", opset=18,
                       input_shape=info["input_shape"])
    samples = random_samples(task="image", n=7, input_shape=info["input_shape"])
    result = verify_onnx(path, torch_reference(model, samples), stage="fp32")
    assert result.passed, result.error
    assert result.batch_sizes == [1, 3]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lstm_classifier", "attention_classifier"])
def test_dynamo_exporter_text_models(name: str, tmp_path: Path) -> None:
    model, _ = build(name)
    path = export_onnx(model, tmp_path / "dynamo.onnx", exporter="dynamo", opset=18, task="text")
    samples = random_samples(task="text", n=10, vocab_size=50, seq_len=10)
    result = verify_onnx(path, torch_reference(model, samples, max_len=40), stage="fp32")
    assert result.passed, result.error


@pytest.mark.parametrize("opset", [12, 21])
def test_unsupported_opset_is_rejected(opset: int, tmp_path: Path) -> None:
    from edgecv.errors import InputError

    model, info = build("simple_cnn")
    with pytest.raises(InputError, match="--opset"):
        export_onnx(model, tmp_path / "m.onnx", opset=opset, input_shape=info["input_shape"])
    assert not list(tmp_path.iterdir())


def test_random_reference_is_deterministic() -> None:
    a = random_samples(task="text", n=5, vocab_size=30, seq_len=8, seed=3).random_arrays
    b = random_samples(task="text", n=5, vocab_size=30, seq_len=8, seed=3).random_arrays
    assert np.array_equal(a, b) and (a == 0).any()  # right padding present
