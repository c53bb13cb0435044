"""Shape helpers shared by the graph, the estimators and the baselines."""
from __future__ import annotations

import math
from typing import Sequence

import torch

from .errors import ShapeError


def broadcast_shapes(*shapes: Sequence[int]) -> torch.Size:
    """The broadcast of ``shapes`` (NumPy rules); raises ``RuntimeError`` if they do not broadcast.

    Pure Python: ``torch.broadcast_shapes`` costs tens of microseconds per call and imports
    sympy on first use, which matters on the surrogate's hot path.
    """
    rank = max((len(shape) for shape in shapes), default=0)
    result = [1] * rank
    for shape in shapes:
        for i, size in enumerate(shape, start=rank - len(shape)):
            if size != 1:
                if result[i] not in (1, size):
                    raise RuntimeError(f"shapes {[tuple(s) for s in shapes]} do not broadcast")
                result[i] = size
    return torch.Size(result)


def align(x: torch.Tensor, shape: torch.Size, what: str) -> torch.Tensor:
    """Bring ``x`` to ``shape``: broadcast it up, or sum the dimensions ``shape`` lacks.

    Summing is the right reduction for log-probabilities (a cost that depends on several
    independent samples is credited with the sum of their log-probabilities). ``what`` names
    the tensors for the error message.
    """
    shape = torch.Size(shape)
    if x.shape == shape:
        return x
    try:
        if broadcast_shapes(x.shape, shape) == shape:
            return x.expand(shape)
    except RuntimeError:
        pass
    try:
        return x.sum_to_size(shape)
    except RuntimeError:
        raise ShapeError(
            f"{what}: shape {tuple(x.shape)} cannot be aligned with {tuple(shape)}; leading "
            "dimensions are independent samples and must match (or be 1) across nodes and costs"
        ) from None


def numel(shape: torch.Size) -> int:
    """Number of elements in a tensor of ``shape``."""
    return math.prod(shape)
