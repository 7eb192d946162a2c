"""MobileNetV2 (Sandler et al., 2018), module-for-module compatible with torchvision.

State-dict keys and shapes equal torchvision's ``mobilenet_v2`` (for any ``width_mult``), so an
ImageNet checkpoint from torchvision loads with ``strict=True`` and gives the same logits.
Layout: ``features.0`` stem conv, ``features.1..17`` inverted residual blocks (``.conv.N``),
``features.18`` 1x1 conv to 1280 channels, then global average pooling and
``classifier = [Dropout, Linear]``. Pooling is adaptive, so small inputs (32x32) work.
"""
from __future__ import annotations

import torch
from torch import nn

from edgecv.models.common import (
    ConvNormActivation,
    init_like_torchvision,
    make_divisible,
)
from edgecv.models.registry import register_model
from edgecv.preprocess import IMAGENET_MEAN, IMAGENET_STD

# t (expansion), c (output channels), n (repeats), s (stride of the first repeat)
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 linear projection, + skip when shapes allow."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride should be 1 or 2, got {stride}")
        self.stride = stride
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvNormActivation(inp, hidden_dim, kernel_size=1, activation=nn.ReLU6))
        layers.extend([
            ConvNormActivation(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim,
                               activation=nn.ReLU6),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ])
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    head_name = "classifier.1"  # the final Linear (see edgecv.models.weights)

    def __init__(self, *, num_classes: int = 1000, width_mult: float = 1.0, in_channels: int = 3,
                 dropout: float = 0.2, round_nearest: int = 8) -> None:
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        input_channel = make_divisible(32 * width_mult, round_nearest)
        # The last conv never shrinks below 1280 channels (paper, section 5.1).
        self.last_channel = make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [
            ConvNormActivation(in_channels, input_channel, stride=2, activation=nn.ReLU6)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            output_channel = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel,
                                                 s if i == 0 else 1, expand_ratio=t))
                input_channel = output_channel
        features.append(ConvNormActivation(input_channel, self.last_channel, kernel_size=1,
                                           activation=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))
        init_like_torchvision(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 1280, H/32, W/32)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))  # (B, 1280, 1, 1)
        x = torch.flatten(x, 1)  # (B, 1280)
        return self.classifier(x)  # (B, num_classes)


@register_model(task="image", input_size=(3, 224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                torchvision_compatible=True, description="MobileNetV2 (3.5M params at width 1.0)")
def mobilenet_v2(*, num_classes: int = 1000, width_mult: float = 1.0, in_channels: int = 3,
                 dropout: float = 0.2) -> MobileNetV2:
    """MobileNetV2; ``width_mult`` scales every layer's channels (0.35-1.4 are common)."""
    return MobileNetV2(num_classes=num_classes, width_mult=width_mult, in_channels=in_channels,
                       dropout=dropout)
