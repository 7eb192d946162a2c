"""SqueezeNet 1.0 and 1.1 (Iandola et al., 2016), module-for-module compatible with torchvision.

State-dict keys and shapes equal torchvision's ``squeezenet1_0``/``squeezenet1_1``, so an ImageNet
checkpoint from torchvision loads with ``strict=True``. The classifier is a 1x1 convolution
(``classifier.1``) followed by ReLU and global average pooling, as in the paper and torchvision.
Global pooling is adaptive, so inputs as small as 32x32 work (the ``ceil_mode`` max-pools never
shrink a side below 1).

The final ReLU. It makes the "logits" non-negative, and with a freshly initialised head it can
switch a class off for every input: the features entering the head are post-ReLU (positive), so
the sign of ``w . f`` barely depends on the image, and a class whose sum comes out negative gives
0 with zero gradient. With few classes, all of them can start dead (about one seed in five for
4 classes at 32x32) and training never moves. ``final_relu=False`` removes that ReLU; it has no
parameters, so state dicts are unchanged. Keep the default (True) when loading torchvision's
ImageNet weights to get its logits exactly; prefer False when training a small head from scratch.
"""
from __future__ import annotations

import torch
from torch import nn

from edgecv.models.registry import register_model
from edgecv.preprocess import IMAGENET_MEAN, IMAGENET_STD


class Fire(nn.Module):
    """Squeeze (1x1) then expand (1x1 and 3x3 side by side, concatenated on channels)."""

    def __init__(self, inplanes: int, squeeze_planes: int, expand1x1_planes: int,
                 expand3x3_planes: int) -> None:
        super().__init__()
        self.inplanes = inplanes
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))  # (B, S, H, W)
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)  # (B, E1 + E3, H, W)


class SqueezeNet(nn.Module):
    """``version`` is ``"1_0"`` (7x7 stem) or ``"1_1"`` (3x3 stem, earlier pooling: ~2.4x fewer MACs)."""

    head_name = "classifier.1"  # the final 1x1 conv (see edgecv.models.weights)

    def __init__(self, version: str = "1_0", *, num_classes: int = 1000, in_channels: int = 3,
                 dropout: float = 0.5, final_relu: bool = True) -> None:
        super().__init__()
        self.num_classes = num_classes
        if version == "1_0":
            self.features = nn.Sequential(
                nn.Conv2d(in_channels, 96, kernel_size=7, stride=2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(96, 16, 64, 64),
                Fire(128, 16, 64, 64),
                Fire(128, 32, 128, 128),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(256, 32, 128, 128),
                Fire(256, 48, 192, 192),
                Fire(384, 48, 192, 192),
                Fire(384, 64, 256, 256),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(512, 64, 256, 256),
            )
        elif version == "1_1":
            self.features = nn.Sequential(
                nn.Conv2d(in_channels, 64, kernel_size=3, stride=2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(64, 16, 64, 64),
                Fire(128, 16, 64, 64),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(128, 32, 128, 128),
                Fire(256, 32, 128, 128),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(256, 48, 192, 192),
                Fire(384, 48, 192, 192),
                Fire(384, 64, 256, 256),
                Fire(512, 64, 256, 256),
            )
        else:
            raise ValueError(f"SqueezeNet version must be '1_0' or '1_1', got {version!r}")

        final_conv = nn.Conv2d(512, num_classes, kernel_size=1)
        # Index 2 stays a module either way so the head keeps its name, classifier.1.
        activation = nn.ReLU(inplace=True) if final_relu else nn.Identity()
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), final_conv, activation, nn.AdaptiveAvgPool2d((1, 1)))

        # Same initialisation as torchvision: small normal head, Kaiming-uniform elsewhere.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                if module is final_conv:
                    nn.init.normal_(module.weight, mean=0.0, std=0.01)
                else:
                    nn.init.kaiming_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.constant_(module.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 512, h, w)
        x = self.classifier(x)  # (B, num_classes, 1, 1)
        return torch.flatten(x, 1)  # (B, num_classes)


@register_model(task="image", input_size=(3, 224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                torchvision_compatible=True, description="SqueezeNet 1.0 (1.25M params)")
def squeezenet1_0(*, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5,
                  final_relu: bool = True) -> SqueezeNet:
    """SqueezeNet 1.0: AlexNet-level ImageNet accuracy with 50x fewer parameters.

    ``final_relu=False`` drops the ReLU after the head (see the module docstring).
    """
    return SqueezeNet("1_0", num_classes=num_classes, in_channels=in_channels, dropout=dropout,
                      final_relu=final_relu)


@register_model(task="image", input_size=(3, 224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                torchvision_compatible=True, description="SqueezeNet 1.1 (1.24M params, ~2.4x cheaper)")
def squeezenet1_1(*, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5,
                  final_relu: bool = True) -> SqueezeNet:
    """SqueezeNet 1.1: same accuracy as 1.0 with about 2.4x less computation.

    ``final_relu=False`` drops the ReLU after the head (see the module docstring).
    """
    return SqueezeNet("1_1", num_classes=num_classes, in_channels=in_channels, dropout=dropout,
                      final_relu=final_relu)
