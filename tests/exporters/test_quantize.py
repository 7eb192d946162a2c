"""Quantization building blocks: VNNI detection, fp16 I/O types, per-channel QDQ int8."""
from __future__ import annotations

import platform
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto

from edgecv.errors import InputError
from edgecv.exporters import export_onnx, quantize_fp16, quantize_int8_dynamic, quantize_int8_static
from edgecv.exporters import quantize as q
from edgecv.exporters.samples import find_samples, random_samples
from edgecv.models import create_model
from edgecv.preprocess import default_spec

sys.path.insert(0, str(Path(__file__).parent))
from _export_fixtures import SHAPES, listing, ort_run  # noqa: E402


@pytest.mark.parametrize("flags, expected", [
    ("fpu sse avx2 avx512f avx512_vnni", True),
    ("fpu sse avx2 avx_vnni", True),
    ("fpu sse avx2 fma", False),
])
def test_cpu_has_vnni_reads_flags(flags: str, expected: bool, tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert q.cpu_has_vnni(info) is expected


def test_cpu_has_vnni_unknown(tmp_path: Path) -> None:
    assert q.cpu_has_vnni(tmp_path / "missing") is None


@pytest.mark.parametrize("vnni, reduce", [(True, False), (False, True), (None, True)])
def test_reduce_range_only_without_vnni_on_x86(vnni, reduce, monkeypatch) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(q, "cpu_has_vnni", lambda *a, **k: vnni)
    assert q.default_reduce_range() is reduce
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert q.default_reduce_range() is False


@pytest.fixture(scope="module")
def cnn_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = create_model("mobilenet_v2", num_classes=4, width_mult=0.35).eval()  # depthwise convs
    return export_onnx(model, tmp_path_factory.mktemp("q") / "m.onnx", input_shape=(3, 32, 32))


def test_fp16_keeps_float32_io(cnn_onnx: Path, tmp_path: Path) -> None:
    info = quantize_fp16(cnn_onnx, tmp_path / "m.fp16.onnx")
    model = onnx.load(info["path"])
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    weights = [i for i in model.graph.initializer if len(i.dims) == 4]
    assert weights and all(i.data_type == TensorProto.FLOAT16 for i in weights)
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    out16, out32 = ort_run(Path(info["path"]), x)[0], ort_run(cnn_onnx, x)[0]
    assert out16.dtype == np.float32 and np.abs(out16 - out32).max() < 1e-2


def test_int8_static_is_per_channel_qdq(cnn_onnx: Path, shapes_dir: Path, tmp_path: Path) -> None:
    samples = find_samples(shapes_dir, task="image", labels=SHAPES, limit=32)
    info = quantize_int8_static(cnn_onnx, tmp_path / "m.int8.onnx", samples=samples,
                                spec=default_spec(size=32), reduce_range=False)
    model = onnx.load(info["path"])
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "QLinearConv" not in ops  # QDQ, not QOperator
    scales = {i.name: i for i in model.graph.initializer}
    weight_dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in scales
                 and len(scales[n.input[0]].dims) == 4]
    assert weight_dq and all(len(scales[n.input[1]].dims) == 1 and scales[n.input[1]].dims[0] > 1
                             for n in weight_dq)  # one scale per output channel
    assert info["calibration_samples"] == 32 and info["per_channel"] is True
    assert listing(tmp_path) == ["m.int8.onnx"]  # scratch files removed


def test_int8_static_refuses_random_inputs(cnn_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--data"):
        quantize_int8_static(cnn_onnx, tmp_path / "x.onnx", spec=default_spec(size=32),
                             samples=random_samples(task="image", n=4, input_shape=(3, 32, 32)))
    assert listing(tmp_path) == []


# Measured: on 300 held-apart sentences the dynamic-int8 LSTM predicts what fp32 predicts for
# 300/300 (fp32 accuracy ~95 %). 97 % leaves room for other CPUs' int8 kernels; an untrained or
# broken quantization lands far lower (an untrained model's logits tie, so int8 flips them at random).
TEXT_INT8_MIN_AGREEMENT = 0.97


def test_int8_dynamic_text_agrees_with_fp32_on_held_apart_texts(tmp_path: Path) -> None:
    from edgecv.data import read_text_table
    from edgecv.demo.synthetic import make_text_dataset
    from edgecv.tokenizer import WordTokenizer

    train = read_text_table(make_text_dataset(tmp_path / "train.csv", n=600, seed=0))
    held = read_text_table(make_text_dataset(tmp_path / "held.csv", n=300, seed=5))  # other sentences
    assert train.classes == held.classes
    tokenizer = WordTokenizer.fit(train.texts, max_len=16)
    x, y = torch.from_numpy(tokenizer.encode_batch(train.texts)), torch.tensor(train.labels)
    torch.manual_seed(0)
    model = create_model("lstm_classifier", vocab_size=tokenizer.vocab_size, num_classes=3, embed_dim=32,
                         hidden_size=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(15):  # about a second on one core
        for idx in torch.randperm(len(x), generator=gen).split(32):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()
    src = export_onnx(model.eval(), tmp_path / "t.onnx", task="text")
    info = quantize_int8_dynamic(src, tmp_path / "t.int8.onnx")
    assert info["method"] == "dynamic" and info["warnings"] == []
    ids = tokenizer.encode_batch(held.texts)  # (300, T) int64
    fp32, int8 = ort_run(src, ids)[0], ort_run(Path(info["path"]), ids)[0]
    assert int8.shape == fp32.shape == (300, 3) and int8.dtype == np.float32
    labels = np.asarray(held.labels)
    assert (fp32.argmax(1) == labels).mean() > 0.8  # trained: its decisions are not coin tosses
    agreement = (int8.argmax(1) == fp32.argmax(1)).mean()
    assert agreement >= TEXT_INT8_MIN_AGREEMENT, agreement


def test_failed_pre_processing_is_a_warning(monkeypatch, tmp_path: Path) -> None:
    """quant_pre_process failing is not fatal (the graph is quantized as exported), but it is
    said: the int8 file may be slower or less accurate than usual."""
    from onnxruntime.quantization import shape_inference

    def broken(*args, **kwargs):
        raise RuntimeError("simulated symbolic shape inference failure")

    monkeypatch.setattr(shape_inference, "quant_pre_process", broken)
    torch.manual_seed(0)
    model = create_model("lstm_classifier", vocab_size=40, num_classes=3, embed_dim=16, hidden_size=16)
    src = export_onnx(model.eval(), tmp_path / "t.onnx", task="text")
    info = quantize_int8_dynamic(src, tmp_path / "t.int8.onnx")
    assert len(info["warnings"]) == 1
    assert "quant_pre_process" in info["warnings"][0] and "simulated symbolic shape" in info["warnings"][0]
    ids = np.array([[4, 5, 6, 0], [7, 8, 0, 0]], dtype=np.int64)
    assert ort_run(Path(info["path"]), ids)[0].shape == (2, 3)  # still a working int8 model


def test_pre_processing_without_symbolic_shapes_is_said(monkeypatch, tmp_path: Path) -> None:
    """Symbolic shape inference rejecting the graph (as it does the attention model's reshapes):
    the rest of the pre-processing still runs, and the warning says what was left out."""
    from onnxruntime.quantization import shape_inference

    real = shape_inference.quant_pre_process
    calls = []

    def picky(src, out, *args, skip_symbolic_shape=False, **kwargs):
        calls.append(skip_symbolic_shape)
        if not skip_symbolic_shape:
            raise AssertionError
        return real(src, out, *args, skip_symbolic_shape=True, **kwargs)

    monkeypatch.setattr(shape_inference, "quant_pre_process", picky)
    torch.manual_seed(0)
    model = create_model("lstm_classifier", vocab_size=40, num_classes=3, embed_dim=16, hidden_size=16)
    src = export_onnx(model.eval(), tmp_path / "t.onnx", task="text")
    info = quantize_int8_dynamic(src, tmp_path / "t.int8.onnx")
    assert calls == [False, True]
    assert len(info["warnings"]) == 1 and "could not infer symbolic shapes (AssertionError in picky)" in \
        info["warnings"][0]
