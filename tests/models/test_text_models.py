"""Text classifiers (LSTM, vanilla RNN / GRU, attention): padding invariance, attention weights,
NaN safety, dynamic ONNX export."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from edgecv.errors import InputError
from edgecv.models import create_model

VOCAB = 60
TEXT_CONFIGS = [
    ("lstm_classifier", {}),
    ("lstm_classifier", {"num_layers": 2}),
    ("lstm_classifier", {"bidirectional": False}),
    ("rnn_classifier", {}),
    ("rnn_classifier", {"cell": "gru"}),
    ("rnn_classifier", {"cell": "gru", "num_layers": 2}),
    ("rnn_classifier", {"num_layers": 2, "bidirectional": False}),
    ("attention_classifier", {}),
    ("attention_classifier", {"num_layers": 1, "num_heads": 2}),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}" for name, kw in TEXT_CONFIGS]


def build(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    base = {"vocab_size": VOCAB, "num_classes": 3, "embed_dim": 32}
    if name == "attention_classifier":
        base["ff_dim"] = 64
    else:
        base["hidden_size"] = 24
    return create_model(name, **{**base, **kwargs}).eval()


def batch(rows: list[list[int]], length: int) -> torch.Tensor:
    """Right-pad token rows with 0 to ``length``."""
    return torch.tensor([row + [0] * (length - len(row)) for row in rows], dtype=torch.long)


ROWS = [[5, 9, 13, 2, 7], [11, 3], [4, 4, 8, 21, 30, 17, 6]]


@pytest.mark.parametrize("name,kwargs", TEXT_CONFIGS, ids=IDS)
def test_appending_padding_does_not_change_logits(name, kwargs):
    model = build(name, **kwargs)
    with torch.no_grad():
        short = model(batch(ROWS, 7))
        long = model(batch(ROWS, 19))
        alone = model(batch(ROWS[1:2], 2))  # the same row without any padding
    assert short.abs().max() > 1e-4
    torch.testing.assert_close(long, short, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone[0], short[1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name,kwargs", TEXT_CONFIGS, ids=IDS)
def test_padding_changes_nothing_in_the_real_tokens_but_the_tokens_matter(name, kwargs):
    model = build(name, **kwargs)
    with torch.no_grad():
        a = model(batch([[5, 9, 13]], 5))
        b = model(batch([[5, 9, 14]], 5))
    assert not torch.allclose(a, b)  # masking must not hide real tokens


@pytest.mark.parametrize("name,kwargs", TEXT_CONFIGS, ids=IDS)
def test_all_padding_row_is_finite(name, kwargs):
    model = build(name, **kwargs)
    ids = batch([[], [3, 4]], 6)
    with torch.no_grad():
        out = model(ids)
    assert torch.isfinite(out).all()
    # With nothing to pool, the logits are the head's bias alone.
    torch.testing.assert_close(out[0], model.head.bias)


def test_gradients_are_finite_with_padding():
    for name, kwargs in TEXT_CONFIGS:
        model = build(name, **kwargs).train()
        out = model(batch([[], [3, 4, 5]], 6))
        out.sum().backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None), name


def test_attention_weights_shape_and_rows():
    model = build("attention_classifier", num_layers=3, num_heads=4)
    ids = batch(ROWS, 8)
    with torch.no_grad():
        logits, attention = model(ids, return_attention=True)
        plain = model(ids)
    torch.testing.assert_close(logits, plain)
    assert attention.shape == (3, 3, 4, 8, 8)  # (B, layers, heads, T, T)
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, 3, 4, 8))
    # Padded keys get (numerically) zero weight: row 1 has 2 real tokens.
    assert attention[1, ..., 2:].abs().max() < 1e-6
    assert attention[1, ..., :2].min() > 0


def test_attention_all_padding_row_has_uniform_weights():
    model = build("attention_classifier")
    with torch.no_grad():
        _, attention = model(batch([[]], 4), return_attention=True)
    torch.testing.assert_close(attention, torch.full_like(attention, 0.25))


def test_attention_rejects_sequence_longer_than_max_len():
    model = build("attention_classifier", max_len=8)
    with pytest.raises(InputError, match="sequence length 9 exceeds this model's max_len 8"):
        model(torch.ones(1, 9, dtype=torch.long))


@pytest.mark.parametrize("name", ["lstm_classifier", "rnn_classifier"])
def test_recurrent_builders_reject_bad_arguments(name):
    with pytest.raises(ValueError, match="vocab_size"):
        create_model(name, vocab_size=1, num_classes=2)


def _export(model: torch.nn.Module, *, attention: bool) -> bytes:
    class WithAttention(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids):
            return self.inner(input_ids, return_attention=True)

    # eval(): the exporter restores the wrapper's mode afterwards, recursively into the model.
    module = WithAttention(model).eval() if attention else model
    outputs = ["logits", "attention"] if attention else ["logits"]
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch"}}
    if attention:
        axes["attention"] = {0: "batch", 3: "sequence", 4: "sequence"}
    buffer = io.BytesIO()
    torch.onnx.export(module, (batch(ROWS, 7),), buffer, dynamo=False, input_names=["input_ids"],
                      output_names=outputs, dynamic_axes=axes)
    return buffer.getvalue()


@pytest.mark.parametrize("name,kwargs,attention", [
    ("lstm_classifier", {}, False),
    ("lstm_classifier", {"num_layers": 2}, False),
    ("rnn_classifier", {}, False),
    ("rnn_classifier", {"num_layers": 2}, False),
    ("rnn_classifier", {"cell": "gru"}, False),
    ("rnn_classifier", {"cell": "gru", "num_layers": 2, "bidirectional": False}, False),
    ("attention_classifier", {}, False),
    ("attention_classifier", {}, True),
])
def test_onnx_export_runs_at_two_batches_and_two_lengths(name, kwargs, attention):
    ort = pytest.importorskip("onnxruntime")
    model = build(name, **kwargs)
    session = ort.InferenceSession(_export(model, attention=attention),
                                   providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(3)
    for size, length in [(1, 4), (5, 13)]:  # neither equals the traced (3, 7)
        ids = torch.randint(1, VOCAB, (size, length), generator=gen)
        ids[-1, length // 2:] = 0  # right padding in the last row
        with torch.no_grad():
            expected = model(ids, return_attention=True) if attention else (model(ids),)
        got = session.run(None, {"input_ids": ids.numpy()})
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert g.shape == tuple(e.shape)
            np.testing.assert_allclose(g, e.numpy(), atol=1e-4, rtol=1e-4)
