"""The classic small CNN of MNIST tutorials.

conv 3x3 (32) -> ReLU -> max-pool 2 -> conv 3x3 (64) -> ReLU -> max-pool 2 -> flatten
-> dense 1024 -> ReLU -> dropout -> dense num_classes. "Same" padding keeps H, W until each pool.
"""
from __future__ import annotations

import torch
from torch import nn

from edgecv.models.registry import register_model


class SimpleCNN(nn.Module):
    def __init__(self, *, num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
                 dropout: float = 0.5) -> None:
        super().__init__()
        if input_size % 4:
            raise ValueError(f"input_size must be a multiple of 4 (two 2x2 pools), got {input_size}")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        side = input_size // 4
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * side * side, 1024),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(1024, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, S, S) -> (B, 64, S/4, S/4) -> (B, num_classes)
        return self.classifier(self.features(x))


@register_model(task="image", input_size=(1, 28, 28), mean=(0.5,), std=(0.5,),
                description="Small 2-conv CNN (MNIST-tutorial style)")
def simple_cnn(*, num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
               dropout: float = 0.5) -> SimpleCNN:
    """Small 2-conv CNN (MNIST-tutorial style); ``input_size`` is the square side in pixels."""
    return SimpleCNN(num_classes=num_classes, in_channels=in_channels, input_size=input_size, dropout=dropout)
