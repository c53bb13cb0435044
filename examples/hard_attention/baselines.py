"""The paper's comparison networks, trained on the same images and budget as the attention model:
a fully connected net with two hidden layers of 256 ReLU units, and a two-layer convolutional net."""
from __future__ import annotations

import torch
from torch import nn


def fully_connected(size: int, classes: int = 10) -> nn.Module:
    """Images [B, size, size] → logits [B, classes] through 2 × 256 ReLU units."""
    return nn.Sequential(nn.Flatten(), nn.Linear(size * size, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, classes))


class ConvNet(nn.Module):
    """Images [B, size, size] → logits [B, classes]: two 5×5 convolutions (32 and 64 filters,
    ReLU, 2×2 max-pooling after each), then 256 ReLU units."""

    def __init__(self, size: int, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        side = size // 2 // 2
        self.head = nn.Sequential(nn.Linear(64 * side * side, 256), nn.ReLU(), nn.Linear(256, classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images[:, None]))
