"""ResNet-18 and ResNet-50 (He et al., 2015), module-for-module compatible with torchvision.

State-dict keys and shapes equal torchvision's ``resnet18``/``resnet50``, so an ImageNet checkpoint
from torchvision loads with ``strict=True`` and gives the same logits. Layout: ``conv1``/``bn1``
7x7 stem, ``maxpool``, four stages ``layer1..layer4`` of residual blocks (``BasicBlock`` for
ResNet-18, ``Bottleneck`` for ResNet-50; the first block of a stage that changes shape owns a
``downsample = [1x1 conv, BatchNorm]`` projection shortcut), global average pooling and ``fc``.

Bottleneck blocks stride in the 3x3 conv, not the first 1x1 ("ResNet v1.5", torchvision's choice:
about 0.5 % more top-1 than the paper's v1 for the same parameters and a few more MACs); the
published 4.09 GMACs of ResNet-50 are for this variant. Pooling is adaptive, so inputs as small as
32x32 work (the network downsamples 32x, the last stage then sees 1x1).

These models are the residual counterpart of the mobile architectures in the zoo: much larger
(11.7M / 25.6M parameters), plain dense 3x3 convolutions, and the usual baseline an edge model is
compared against.
"""
from __future__ import annotations

import torch
from torch import nn

from edgecv.models.registry import register_model
from edgecv.preprocess import IMAGENET_MEAN, IMAGENET_STD

STAGE_WIDTHS = (64, 128, 256, 512)  # "planes" of layer1..layer4 (block output = planes x expansion)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 conv with "same" padding and no bias (a BatchNorm follows every conv)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs + identity (or projected) shortcut; ResNet-18/34."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample  # None keeps the key set equal to torchvision's
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)  # (B, planes, H/s, W/s)
        out = self.relu(self.bn1(self.conv1(x)))  # (B, planes, H/s, W/s)
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (strided, "v1.5") -> 1x1 expand to 4x planes, + shortcut; ResNet-50+."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)  # (B, 4 planes, H/s, W/s)
        out = self.relu(self.bn1(self.conv1(x)))  # (B, planes, H, W)
        out = self.relu(self.bn2(self.conv2(out)))  # (B, planes, H/s, W/s)
        out = self.bn3(self.conv3(out))  # (B, 4 planes, H/s, W/s)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """Stem -> four residual stages -> global average pool -> ``fc``.

    ``zero_init_residual`` starts every block's last BatchNorm at zero scale, so each block begins
    as the identity (Goyal et al., 2017); it only changes the initialisation, not the state dict.
    """

    head_name = "fc"  # the final Linear (see edgecv.models.weights)

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: tuple[int, int, int, int], *,
                 num_classes: int = 1000, in_channels: int = 3,
                 zero_init_residual: bool = False) -> None:
        super().__init__()
        self.inplanes = 64  # channels entering the next stage; _make_layer advances it
        self.conv1 = nn.Conv2d(in_channels, self.inplanes, kernel_size=7, stride=2, padding=3,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, STAGE_WIDTHS[0], layers[0])
        self.layer2 = self._make_layer(block, STAGE_WIDTHS[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, STAGE_WIDTHS[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, STAGE_WIDTHS[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(STAGE_WIDTHS[3] * block.expansion, num_classes)
        self._init_weights(zero_init_residual)

    def _make_layer(self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int,
                    stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            # projection shortcut: the residual branch changes resolution or width
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self, zero_init_residual: bool) -> None:
        # torchvision's: Kaiming-normal (fan-out) convs, unit BN; fc keeps PyTorch's default init.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                last = m.bn3 if isinstance(m, Bottleneck) else m.bn2 if isinstance(m, BasicBlock) else None
                if last is not None:
                    nn.init.zeros_(last.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64, H/4, W/4)
        x = self.layer1(x)  # (B, 64 e, H/4, W/4), e = block expansion (1 or 4)
        x = self.layer2(x)  # (B, 128 e, H/8, W/8)
        x = self.layer3(x)  # (B, 256 e, H/16, W/16)
        x = self.layer4(x)  # (B, 512 e, H/32, W/32)
        x = torch.flatten(self.avgpool(x), 1)  # (B, 512 e)
        return self.fc(x)  # (B, num_classes)


@register_model(task="image", input_size=(3, 224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                torchvision_compatible=True, description="ResNet-18 (11.7M params)")
def resnet18(*, num_classes: int = 1000, in_channels: int = 3,
             zero_init_residual: bool = False) -> ResNet:
    """ResNet-18: basic blocks [2, 2, 2, 2]; the classic server-side baseline for edge models."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes=num_classes, in_channels=in_channels,
                  zero_init_residual=zero_init_residual)


@register_model(task="image", input_size=(3, 224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                torchvision_compatible=True, description="ResNet-50 (25.6M params, v1.5)")
def resnet50(*, num_classes: int = 1000, in_channels: int = 3,
             zero_init_residual: bool = False) -> ResNet:
    """ResNet-50 (v1.5): bottleneck blocks [3, 4, 6, 3]; the standard accuracy/cost reference."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes=num_classes, in_channels=in_channels,
                  zero_init_residual=zero_init_residual)
