"""Gauss–Hermite quadrature as an estimator: the exact expectation over a Normal node.

Used by :func:`scgrad.testing.exact_objective` to integrate Normal nodes the way
``Enumerate`` sums finite supports, so that a whole graph's expected cost (and every derivative
of it) can be computed without sampling.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.distributions import Distribution, Normal

from ..errors import GraphError
from ..protocol import Draw, DrawContext, Estimator
from ..nodes import Points


class GaussHermite(Estimator):
    """Integrate a Normal node with ``order``-point Gauss–Hermite quadrature.

    E[f(x)] for x ~ N(μ, σ²) equals Σ_k (w_k/√π) · f(μ + σ√2 · t_k), where (t_k, w_k) are
    the nodes and weights of ``numpy.polynomial.hermite.hermgauss(order)``. The sum is
    **exact when f is a polynomial of degree < 2·order** in the Normal value (and, since
    derivatives in μ and σ of such an expectation are expectations of polynomials of no higher
    degree, so are its derivatives of every order); for smooth non-polynomial f it is an
    approximation that improves quickly with ``order``.

    The value is ``loc + scale·√2·t_k`` laid along a new enumerated batch dimension to the left
    of the graph's batch dimensions (the same layout as ``Enumerate``): shape
    ``[order, 1, …, 1] + batch_shape`` broadcast. The log-weight ``log(w_k/√π)`` is a constant,
    so gradients flow pathwise through the value, as with ``Reparam``.

    Plain ``torch.distributions.Normal`` only (event shape ``()``): a multivariate node would
    need a tensor-product grid.

    Args:
        order: number of quadrature points, ≥ 1.
    """

    unbiased = True

    def __init__(self, order: int = 10) -> None:
        if int(order) != order or order < 1:
            raise ValueError(f"GaussHermite: order must be a positive integer, got {order}")
        self.order = int(order)
        points, weights = np.polynomial.hermite.hermgauss(self.order)
        self._points = torch.from_numpy(points * math.sqrt(2.0))  # [order], in units of σ
        self._log_weights = torch.from_numpy(np.log(weights / math.sqrt(math.pi)))  # [order]

    def draw(self, dist: Distribution, ctx: DrawContext) -> Draw:
        if type(dist) is not Normal:  # a subclass may change the density (e.g. a truncation)
            raise GraphError(
                f"node '{ctx.name}': GaussHermite integrates torch.distributions.Normal only, "
                f"not {type(dist).__name__}; use Enumerate for finite supports"
            )
        if ctx.value is not None:
            raise GraphError(
                f"node '{ctx.name}': GaussHermite integrates over the node's value and cannot "
                "score a given value (value=); run the model without value= for exact expectations"
            )
        dim = ctx.new_point_dim(len(dist.batch_shape))
        points = self._along(self._points, dim, dist.loc)
        return Draw(dist.loc + dist.scale * points, log_prob=None,
                    points=Points(dim, self._along(self._log_weights, dim, dist.loc)))

    @staticmethod
    def _along(values: torch.Tensor, dim: int, like: torch.Tensor) -> torch.Tensor:
        """``values`` [order] reshaped to ``[order, 1, …, 1]`` so it lies along (negative) ``dim``."""
        return values.to(device=like.device, dtype=like.dtype).reshape((-1,) + (1,) * (-dim - 1))

    def __repr__(self) -> str:
        return f"GaussHermite(order={self.order})"
