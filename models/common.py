"""Small blocks shared by several architectures: channel rounding and masked pooling.

Kept torch-only and free of Python-side shape arithmetic so every model that uses them still
exports to ONNX with dynamic batch (and sequence) axes.
"""
from __future__ import annotations

from typing import Callable

import torch


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` without losing more than 10 %.

    Same rule as torchvision's ``_make_divisible`` (from the original TensorFlow MobileNet code);
    channel counts must match it exactly or torchvision checkpoints would not load.
    """
    if min_value is None:
        min_value = divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:  # never round down by more than 10 %
        new_value += divisor
    return new_value


def padding_mask(input_ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """(B, T) int ids -> (B, T) bool, True on real tokens."""
    return input_ids != pad_id


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` (B, T, D) over the positions where ``mask`` (B, T) is True -> (B, D).

    The token count is clamped to 1, so an all-padding row gives zeros instead of 0/0 = NaN.
    """
    weights = mask.to(x.dtype).unsqueeze(-1)  # (B, T, 1)
    total = (x * weights).sum(dim=1)  # (B, D)
    count = weights.sum(dim=1).clamp(min=1.0)  # (B, 1)
    return total / count


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row of a right-padded (B, T, D) batch within its own length; pads stay at the end.

    Row b becomes ``x[b, len_b-1], ..., x[b, 0], x[b, len_b], ..., x[b, T-1]``. Applying it twice
    gives the input back. Written as a gather with a computed index (no Python loop over rows,
    no ``pack_padded_sequence``) so it exports to ONNX with dynamic B and T.
    """
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)  # (1, T)
    lengths = lengths.unsqueeze(1)  # (B, 1)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)  # (B, T)
    index = index.unsqueeze(-1).expand(-1, -1, x.shape[2])  # (B, T, D)
    return x.gather(1, index)


class ConvNormActivation(torch.nn.Sequential):
    """Conv2d -> BatchNorm2d -> activation, as torchvision's ``Conv2dNormActivation``.

    A ``Sequential`` (not a custom module) on purpose: state-dict keys come out as ``N.0.weight``
    (conv), ``N.1.*`` (norm), exactly like torchvision's, so its checkpoints load unchanged.
    ``activation=None`` leaves the activation out (linear bottleneck projections).
    """

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int = 3,
                 stride: int = 1, groups: int = 1, dilation: int = 1,
                 activation: type[torch.nn.Module] | None = torch.nn.ReLU,
                 bn_eps: float = 1e-5, bn_momentum: float = 0.1) -> None:
        padding = (kernel_size - 1) // 2 * dilation  # "same" size at stride 1
        layers: list[torch.nn.Module] = [
            torch.nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                            dilation=dilation, groups=groups, bias=False),
            torch.nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum),
        ]
        if activation is not None:
            layers.append(activation(inplace=True))
        super().__init__(*layers)
        self.out_channels = out_channels


def init_like_torchvision(module: torch.nn.Module) -> None:
    """MobileNet initialisation from torchvision: Kaiming-normal (fan-out) convs, unit BN,
    N(0, 0.01) linears, zero biases. Keeps freshly built models statistically like theirs."""
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)
        elif isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)):
            torch.nn.init.ones_(m.weight)
            torch.nn.init.zeros_(m.bias)
        elif isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, 0, 0.01)
            torch.nn.init.zeros_(m.bias)


class MaskedRecurrentClassifier(torch.nn.Module):
    """Embedding -> (bi)directional recurrent stack -> masked mean pooling -> linear, for any
    single-layer, batch-first recurrent module ``make_layer(input_size, hidden_size)`` builds
    (LSTM, GRU, tanh RNN): one implementation of the padding handling the text lessons share.

    Each direction of each layer is its own module: the backward one runs on rows reversed within
    their own lengths (``reverse_padded``), which a bidirectional ``nn.RNNBase`` cannot do without
    packing (and ``pack_padded_sequence`` does not export faithfully). Token ids (B, T) -> logits
    (B, num_classes), exactly invariant to the padding after the text.
    """

    head_name = "head"  # dotted name of the final layer (see edgecv.models.weights)

    def __init__(self, make_layer: Callable[[int, int], torch.nn.Module], *, vocab_size: int,
                 num_classes: int, embed_dim: int, hidden_size: int, num_layers: int, bidirectional: bool,
                 dropout: float, pad_id: int, max_len: int) -> None:
        super().__init__()
        if vocab_size < 2 or num_classes < 1 or num_layers < 1:
            raise ValueError(f"need vocab_size >= 2, num_classes >= 1, num_layers >= 1; got "
                             f"{vocab_size}, {num_classes}, {num_layers}")
        self.pad_id = pad_id
        self.max_len = max_len  # longest sequence the model is meant for (export/contract hint)
        self.bidirectional = bidirectional
        self.embedding = torch.nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.forward_layers = torch.nn.ModuleList()
        self.backward_layers = torch.nn.ModuleList()
        width = embed_dim
        for _ in range(num_layers):
            self.forward_layers.append(make_layer(width, hidden_size))
            if bidirectional:
                self.backward_layers.append(make_layer(width, hidden_size))
            width = hidden_size * (2 if bidirectional else 1)
        self.dropout = torch.nn.Dropout(dropout)
        self.head = torch.nn.Linear(width, num_classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        mask = padding_mask(input_ids, self.pad_id)  # (B, T) bool
        lengths = mask.long().sum(dim=1)  # (B,)
        x = self.embedding(input_ids)  # (B, T, E)
        for index, forward_layer in enumerate(self.forward_layers):
            if index:
                x = self.dropout(x)  # between stacked layers, as nn.LSTM(dropout=...) does
            out, _ = forward_layer(x)  # (B, T, H)
            if self.bidirectional:
                back, _ = self.backward_layers[index](reverse_padded(x, lengths))  # (B, T, H)
                out = torch.cat([out, reverse_padded(back, lengths)], dim=-1)  # (B, T, 2H)
            x = out
        pooled = masked_mean(x, mask)  # (B, H or 2H); zeros for an all-padding row
        return self.head(self.dropout(pooled))  # (B, num_classes)

