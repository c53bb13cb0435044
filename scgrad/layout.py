"""Where a graph's dimensions lie: its sample (batch) dimensions on the right, and to their left
one dimension per node whose points (an enumerated support, quadrature nodes) are laid out
along it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .errors import ShapeError


@dataclass
class Layout:
    """The dimensions of a graph's tensors, counted from the right.

    Attributes:
        batch_ndim: number of sample dimensions (``None`` until the first node with points
            fixes it, or given as ``Graph(batch_ndim=...)``).
        point_dims: number of point dimensions allocated so far, left of the sample ones.
    """

    batch_ndim: Optional[int] = None
    point_dims: int = 0

    def new_dim(self, batch_rank: int) -> int:
        """Allocate the (negative) dimension of the next node with points, whose distribution
        has batch rank ``batch_rank``."""
        if self.batch_ndim is None:
            self.batch_ndim = batch_rank
        if batch_rank > self.batch_ndim + self.point_dims:
            raise ShapeError(
                f"an enumerated distribution has batch rank {batch_rank}, more than batch_ndim="
                f"{self.batch_ndim} plus {self.point_dims} enumerated dims; pass "
                "Graph(batch_ndim=...) with the number of sample dimensions")
        dim = -(self.batch_ndim + 1 + self.point_dims)
        self.point_dims += 1
        return dim

    def only_points(self, shape: torch.Size, rank: int) -> bool:
        """Whether the dimensions of ``shape`` left of its last ``rank`` are all size 1 or
        point dimensions."""
        lowest = (self.batch_ndim or 0) + 1                  # positions counted from the right
        highest = (self.batch_ndim or 0) + self.point_dims
        return all(size == 1 or (self.point_dims and lowest <= len(shape) - i <= highest)
                   for i, size in enumerate(shape[:len(shape) - rank]))

    def reduce(self, term: torch.Tensor, stacked: bool = False) -> torch.Tensor:
        """A scalar: ``term`` summed over point dimensions (a weighted sum over the points)
        and averaged over sample dimensions. With ``stacked``, dimension 0 holds several
        terms side by side, which are reduced each and added."""
        lead = 1 if stacked else 0
        rank = term.dim() - lead
        if self.point_dims == 0:
            return term.mean() * term.shape[0] if stacked else term.mean()
        assert self.batch_ndim is not None
        if rank > self.batch_ndim + self.point_dims:
            raise ShapeError(f"a term of shape {tuple(term.shape[lead:])} has more dimensions than "
                             f"batch_ndim={self.batch_ndim} plus {self.point_dims} enumerated ones")
        axes = [lead + rank - self.batch_ndim - 1 - i for i in range(self.point_dims)
                if rank - self.batch_ndim - 1 - i >= 0]
        summed = term.sum(axes) if axes else term
        if not stacked:
            return summed.mean()
        return summed.mean(list(range(1, summed.dim()))).sum() if summed.dim() > 1 else summed.sum()
