"""Tiny modules shared by tests."""
import torch
from torch import nn


class Affine(nn.Module):
    """w·x + b, elementwise, starting at 0 (no BLAS call: cheap on a busy 2-core machine)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.b = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x * self.w + self.b
