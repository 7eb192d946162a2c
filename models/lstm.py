"""LSTM text classifier: embedding -> (bi)LSTM stack -> masked mean pooling -> linear.

Padding. Batches are right-padded with ``pad_id`` (what ``WordTokenizer.encode_batch`` produces).
``pack_padded_sequence`` does not export to ONNX faithfully (pytorch#41774), so padding is handled
with masks instead:

* the forward direction reads the real tokens before any pads, so its outputs at real positions
  never see padding;
* the backward direction is run as a second forward LSTM over each row *reversed within its own
  length* (``reverse_padded``: pads stay at the end), then reversed back. A plain reversed LSTM
  would read the trailing pads first and let them leak into every real position;
* pooling averages only the real positions (``masked_mean``).

Together this makes the logits exactly invariant to how much padding follows the text. Each
direction of each layer is its own single-layer ``nn.LSTM``. The initial states are left to
``nn.LSTM``, which builds its zeros from ``input.size(0)``; the legacy exporter records that as a
runtime shape, so no batch size is baked into the graph (onnx#3182). The exporter still prints a
generic "batch_size other than 1" warning for every LSTM; the ONNX test runs the exported graph
at two batch sizes and two sequence lengths to prove it does not apply.
"""
from __future__ import annotations

from torch import nn

from edgecv.models.common import MaskedRecurrentClassifier
from edgecv.models.registry import register_model


class LSTMClassifier(MaskedRecurrentClassifier):
    """Sequence classifier over token ids (B, T) -> logits (B, num_classes), LSTM layers."""

    def __init__(self, *, vocab_size: int, num_classes: int, embed_dim: int = 128,
                 hidden_size: int = 128, num_layers: int = 1, bidirectional: bool = True,
                 dropout: float = 0.1, pad_id: int = 0, max_len: int = 512) -> None:
        super().__init__(_lstm_layer, vocab_size=vocab_size, num_classes=num_classes, embed_dim=embed_dim,
                         hidden_size=hidden_size, num_layers=num_layers, bidirectional=bidirectional,
                         dropout=dropout, pad_id=pad_id, max_len=max_len)


def _lstm_layer(input_size: int, hidden_size: int) -> nn.LSTM:
    return nn.LSTM(input_size, hidden_size, batch_first=True)


@register_model(task="text", input_size=(64,), description="Bidirectional LSTM text classifier")
def lstm_classifier(*, vocab_size: int, num_classes: int, embed_dim: int = 128,
                    hidden_size: int = 128, num_layers: int = 1, bidirectional: bool = True,
                    dropout: float = 0.1, pad_id: int = 0, max_len: int = 512) -> LSTMClassifier:
    """Bidirectional LSTM text classifier with masked mean pooling (padding-invariant)."""
    return LSTMClassifier(vocab_size=vocab_size, num_classes=num_classes, embed_dim=embed_dim,
                          hidden_size=hidden_size, num_layers=num_layers,
                          bidirectional=bidirectional, dropout=dropout, pad_id=pad_id,
                          max_len=max_len)
