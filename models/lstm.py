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

import torch
from torch import nn

from edgecv.models.common import masked_mean, padding_mask, reverse_padded
from edgecv.models.registry import register_model


class LSTMClassifier(nn.Module):
    """Sequence classifier over token ids (B, T) -> logits (B, num_classes)."""

    head_name = "head"  # dotted name of the final layer (see edgecv.models.weights)

    def __init__(self, *, vocab_size: int, num_classes: int, embed_dim: int = 128,
                 hidden_size: int = 128, num_layers: int = 1, bidirectional: bool = True,
                 dropout: float = 0.1, pad_id: int = 0, max_len: int = 512) -> None:
        super().__init__()
        if vocab_size < 2 or num_classes < 1 or num_layers < 1:
            raise ValueError(f"need vocab_size >= 2, num_classes >= 1, num_layers >= 1; got "
                             f"{vocab_size}, {num_classes}, {num_layers}")
        self.pad_id = pad_id
        self.max_len = max_len  # longest sequence the model is meant for (export/contract hint)
        self.bidirectional = bidirectional
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.forward_layers = nn.ModuleList()
        self.backward_layers = nn.ModuleList()
        width = embed_dim
        for _ in range(num_layers):
            self.forward_layers.append(nn.LSTM(width, hidden_size, batch_first=True))
            if bidirectional:
                self.backward_layers.append(nn.LSTM(width, hidden_size, batch_first=True))
            width = hidden_size * (2 if bidirectional else 1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, num_classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        mask = padding_mask(input_ids, self.pad_id)  # (B, T) bool
        lengths = mask.long().sum(dim=1)  # (B,)
        x = self.embedding(input_ids)  # (B, T, E)
        for index, forward_lstm in enumerate(self.forward_layers):
            if index:
                x = self.dropout(x)  # between stacked layers, as nn.LSTM(dropout=...) does
            out, _ = forward_lstm(x)  # (B, T, H)
            if self.bidirectional:
                back, _ = self.backward_layers[index](reverse_padded(x, lengths))
                out = torch.cat([out, reverse_padded(back, lengths)], dim=-1)  # (B, T, 2H)
            x = out
        pooled = masked_mean(x, mask)  # (B, H or 2H); zeros for an all-padding row
        return self.head(self.dropout(pooled))  # (B, num_classes)


@register_model(task="text", input_size=(64,), description="Bidirectional LSTM text classifier")
def lstm_classifier(*, vocab_size: int, num_classes: int, embed_dim: int = 128,
                    hidden_size: int = 128, num_layers: int = 1, bidirectional: bool = True,
                    dropout: float = 0.1, pad_id: int = 0, max_len: int = 512) -> LSTMClassifier:
    """Bidirectional LSTM text classifier with masked mean pooling (padding-invariant)."""
    return LSTMClassifier(vocab_size=vocab_size, num_classes=num_classes, embed_dim=embed_dim,
                          hidden_size=hidden_size, num_layers=num_layers,
                          bidirectional=bidirectional, dropout=dropout, pad_id=pad_id,
                          max_len=max_len)
