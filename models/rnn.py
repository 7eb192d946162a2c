"""Vanilla (tanh) RNN and GRU text classifiers: embedding -> (bi)RNN stack -> masked mean pooling
-> linear. The same model as ``lstm_classifier`` with a simpler cell, so the three recurrent cells
can be compared on one task (parameters, MACs, latency, accuracy).

* ``cell="rnn"``: ``h_t = tanh(W_ih x_t + W_hh h_{t-1} + b)``, one gate's worth of weights (1/4
  of an LSTM's); cheapest, but gradients vanish over long sequences.
* ``cell="gru"``: update and reset gates (3/4 of an LSTM's weights, no cell state); usually as
  accurate as an LSTM on short texts.

Padding is handled exactly as in :mod:`edgecv.models.lstm` (``pack_padded_sequence`` does not
export to ONNX faithfully, pytorch#41774): the forward direction reads the real tokens before any
pads; the backward direction is a second forward RNN run over each row reversed *within its own
length* (``reverse_padded``: pads stay at the end) and reversed back; pooling averages only real
positions (``masked_mean``). The logits are therefore exactly invariant to trailing padding. The
initial hidden state is left to ``nn.RNN``/``nn.GRU``, which build it from ``input.size(0)``, so
the exported ``RNN``/``GRU`` nodes keep the batch axis dynamic (onnx#3182).

Exporter. The TorchScript exporter (edgecv's default) writes one fused ONNX ``RNN``/``GRU`` node per
layer and direction, with batch and sequence dynamic. The ``torch.export``-based exporter (torch
2.13) also writes fused ``GRU`` nodes, but has no ONNX translation for the tanh RNN: it unrolls it
step by step and bakes the traced sequence length into the graph. Export ``cell="rnn"`` with the
default exporter; the two-length parity check of ``edgecv export`` rejects the unrolled graph.
"""
from __future__ import annotations

import functools

from torch import nn

from edgecv.models.common import MaskedRecurrentClassifier
from edgecv.models.registry import register_model

CELLS = ("rnn", "gru")


def _recurrent_layer(cell: str, input_size: int, hidden_size: int) -> nn.RNNBase:
    """One single-layer, single-direction, batch-first recurrent layer of the given cell."""
    if cell == "gru":
        return nn.GRU(input_size, hidden_size, batch_first=True)
    return nn.RNN(input_size, hidden_size, nonlinearity="tanh", batch_first=True)


class RNNClassifier(MaskedRecurrentClassifier):
    """Sequence classifier over token ids (B, T) -> logits (B, num_classes), tanh-RNN or GRU layers."""

    def __init__(self, *, vocab_size: int, num_classes: int, cell: str = "rnn",
                 embed_dim: int = 128, hidden_size: int = 128, num_layers: int = 1,
                 bidirectional: bool = True, dropout: float = 0.1, pad_id: int = 0,
                 max_len: int = 512) -> None:
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {cell!r} "
                             f"(use lstm_classifier for an LSTM)")
        super().__init__(functools.partial(_recurrent_layer, cell), vocab_size=vocab_size,
                         num_classes=num_classes, embed_dim=embed_dim, hidden_size=hidden_size,
                         num_layers=num_layers, bidirectional=bidirectional, dropout=dropout,
                         pad_id=pad_id, max_len=max_len)
        self.cell = cell


@register_model(task="text", input_size=(64,),
                description="Bidirectional vanilla-RNN / GRU text classifier")
def rnn_classifier(*, vocab_size: int, num_classes: int, cell: str = "rnn", embed_dim: int = 128,
                   hidden_size: int = 128, num_layers: int = 1, bidirectional: bool = True,
                   dropout: float = 0.1, pad_id: int = 0, max_len: int = 512) -> RNNClassifier:
    """Bidirectional tanh-RNN (``cell="rnn"``) or GRU (``cell="gru"``) text classifier with masked
    mean pooling (padding-invariant); the lighter siblings of ``lstm_classifier``."""
    return RNNClassifier(vocab_size=vocab_size, num_classes=num_classes, cell=cell,
                         embed_dim=embed_dim, hidden_size=hidden_size, num_layers=num_layers,
                         bidirectional=bidirectional, dropout=dropout, pad_id=pad_id,
                         max_len=max_len)
