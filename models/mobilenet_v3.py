"""MobileNetV3 small and large (Howard et al., 2019), module-for-module compatible with torchvision.

State-dict keys and shapes equal torchvision's ``mobilenet_v3_small``/``mobilenet_v3_large``, so
their ImageNet checkpoints load with ``strict=True`` and give the same logits. As in torchvision:
BatchNorm eps=0.001 / momentum=0.01, Hardswish activations ("HS") in the later blocks, squeeze-
and-excitation blocks with 1x1-conv ``fc1``/``fc2`` and a Hardsigmoid gate, and
``classifier = [Linear, Hardswish, Dropout(0.2), Linear]`` after global average pooling.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from edgecv.models.common import (
    ConvNormActivation,
    init_like_torchvision,
    make_divisible,
)
from edgecv.models.registry import register_model
from edgecv.preprocess import IMAGENET_MEAN, IMAGENET_STD

BN_EPS, BN_MOMENTUM = 0.001, 0.01

# input, kernel, expanded, output, squeeze-excite, activation ("RE" ReLU / "HS" Hardswish), stride
LARGE_SETTING = (
    (16, 3, 16, 16, False, "RE", 1),
    (16, 3, 64, 24, False, "RE", 2),
    (24, 3, 72, 24, False, "RE", 1),
    (24, 5, 72, 40, True, "RE", 2),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 3, 240, 80, False, "HS", 2),
    (80, 3, 200, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 480, 112, True, "HS", 1),
    (112, 3, 672, 112, True, "HS", 1),
    (112, 5, 672, 160, True, "HS", 2),
    (160, 5, 960, 160, True, "HS", 1),
    (160, 5, 960, 160, True, "HS", 1),
)
SMALL_SETTING = (
    (16, 3, 16, 16, True, "RE", 2),
    (16, 3, 72, 24, False, "RE", 2),
    (24, 3, 88, 24, False, "RE", 1),
    (24, 5, 96, 40, True, "HS", 2),
    (40, 5, 240, 40, True, "HS", 1),
    (40, 5, 240, 40, True, "HS", 1),
    (40, 5, 120, 48, True, "HS", 1),
    (48, 5, 144, 48, True, "HS", 1),
    (48, 5, 288, 96, True, "HS", 2),
    (96, 5, 576, 96, True, "HS", 1),
    (96, 5, 576, 96, True, "HS", 1),
)


@dataclass(frozen=True)
class BlockConfig:
    """One inverted-residual block, channel counts already scaled by ``width_mult``."""

    input_channels: int
    kernel: int
    expanded_channels: int
    out_channels: int
    use_se: bool
    use_hs: bool
    stride: int

    @classmethod
    def scaled(cls, row: tuple, width_mult: float) -> BlockConfig:
        inp, kernel, expanded, out, use_se, act, stride = row
        return cls(make_divisible(inp * width_mult), kernel, make_divisible(expanded * width_mult),
                   make_divisible(out * width_mult), use_se, act == "HS", stride)


class SqueezeExcitation(nn.Module):
    """Channel gate: global pool -> 1x1 conv (ReLU) -> 1x1 conv (Hardsigmoid) -> scale the input."""

    def __init__(self, input_channels: int, squeeze_channels: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.avgpool(x)  # (B, C, 1, 1)
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(scale))))
        return scale * x  # (B, C, H, W)


class InvertedResidual(nn.Module):
    """[1x1 expand] -> kxk depthwise -> [squeeze-excite] -> 1x1 linear projection, + skip."""

    def __init__(self, cnf: BlockConfig) -> None:
        super().__init__()
        if cnf.stride not in (1, 2):
            raise ValueError(f"illegal stride value {cnf.stride}")
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        conv = partial(ConvNormActivation, bn_eps=BN_EPS, bn_momentum=BN_MOMENTUM)
        activation = nn.Hardswish if cnf.use_hs else nn.ReLU
        layers: list[nn.Module] = []
        if cnf.expanded_channels != cnf.input_channels:
            layers.append(conv(cnf.input_channels, cnf.expanded_channels, kernel_size=1,
                               activation=activation))
        layers.append(conv(cnf.expanded_channels, cnf.expanded_channels, kernel_size=cnf.kernel,
                           stride=cnf.stride, groups=cnf.expanded_channels, activation=activation))
        if cnf.use_se:
            layers.append(SqueezeExcitation(cnf.expanded_channels,
                                            make_divisible(cnf.expanded_channels // 4, 8)))
        layers.append(conv(cnf.expanded_channels, cnf.out_channels, kernel_size=1, activation=None))
        self.block = nn.Sequential(*layers)
        self.out_channels = cnf.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.block(x)
        if self.use_res_connect:
            result = result + x
        return result


class MobileNetV3(nn.Module):
    head_name = "classifier.3"  # the final Linear (see edgecv.models.weights)

    def __init__(self, setting: tuple, last_channel: int, *, num_classes: int = 1000,
                 width_mult: float = 1.0, in_channels: int = 3, dropout: float = 0.2) -> None:
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        configs = [BlockConfig.scaled(row, width_mult) for row in setting]
        conv = partial(ConvNormActivation, bn_eps=BN_EPS, bn_momentum=BN_MOMENTUM)
        layers: list[nn.Module] = [conv(in_channels, configs[0].input_channels, kernel_size=3,
                                        stride=2, activation=nn.Hardswish)]
        layers.extend(InvertedResidual(cnf) for cnf in configs)
        lastconv_input = configs[-1].out_channels
        lastconv_output = 6 * lastconv_input
        layers.append(conv(lastconv_input, lastconv_output, kernel_size=1, activation=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        last_channel = make_divisible(last_channel * width_mult)
        self.classifier = nn.Sequential(
            nn.Linear(lastconv_output, last_channel),
            nn.Hardswish(inplace=True),
            nn.Dropout(p=dropout, inplace=True),
            nn.Linear(last_channel, num_classes),
        )
        init_like_torchvision(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, C, H/32, W/32)
        x = self.avgpool(x)  # (B, C, 1, 1)
        x = torch.flatten(x, 1)  # (B, C)
        return self.classifier(x)  # (B, num_classes)


@register_model(task="image", input_size=(3, 224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                torchvision_compatible=True, description="MobileNetV3-Large (5.5M params)")
def mobilenet_v3_large(*, num_classes: int = 1000, width_mult: float = 1.0, in_channels: int = 3,
                       dropout: float = 0.2) -> MobileNetV3:
    """MobileNetV3-Large: the more accurate V3, ~217M MACs at 224x224."""
    return MobileNetV3(LARGE_SETTING, 1280, num_classes=num_classes, width_mult=width_mult,
                       in_channels=in_channels, dropout=dropout)


@register_model(task="image", input_size=(3, 224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                torchvision_compatible=True, description="MobileNetV3-Small (2.5M params)")
def mobilenet_v3_small(*, num_classes: int = 1000, width_mult: float = 1.0, in_channels: int = 3,
                       dropout: float = 0.2) -> MobileNetV3:
    """MobileNetV3-Small: for low-resource devices, ~57M MACs at 224x224."""
    return MobileNetV3(SMALL_SETTING, 1024, num_classes=num_classes, width_mult=width_mult,
                       in_channels=in_channels, dropout=dropout)
