"""Measure-valued derivatives of Normal nodes (Mohamed et al. 2020, "Monte Carlo Gradient
Estimation in Machine Learning", section 6).

The derivative of a density with respect to a parameter is written as a difference of two
densities, c·(p⁺ − p⁻); then ∂E_p[f] = c·(E_{p⁺}[f] − E_{p⁻}[f]), two evaluations of f and no
derivative of f at all. For x ~ N(μ, σ²):

    ∂/∂μ:  c = 1/(σ√(2π)),  x⁺ = μ + σW,  x⁻ = μ − σW,    W ~ Weibull(√2, 2)  (Rayleigh)
    ∂/∂σ:  c = 1/σ,         x⁺ = μ + σM,  x⁻ ~ N(μ, σ²),  M ~ double-sided Maxwell(0, 1)

For a vector of coordinates (``Independent(Normal)``, whose cost may couple them) each
coordinate gets its own perturbed points, the others kept at the sample: 1 + 3E evaluation
points for E coordinates (the sample itself is x⁻ for every σ), laid along a point dimension
with weights (1, 0, …, 0), so the surrogate's value and the pathwise gradients of everything
else are those of the sample. Unbiased (first derivative).
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch.distributions import Distribution, Independent, Normal

from ..errors import GraphError
from ..nodes import Points, StochasticNode
from ..protocol import Credit, Draw, DrawContext, Estimator, Terms


def normal_parameters(dist: Distribution) -> Optional[Tuple[torch.Tensor, torch.Tensor, int]]:
    """(loc, scale [*batch, *event], event rank) of a Normal or ``Independent(Normal)``, else ``None``."""
    base, event = dist, 0
    while isinstance(base, Independent):
        base, event = base.base_dist, event + base.reinterpreted_batch_ndims
    if type(base) is not Normal:
        return None
    loc, scale = torch.broadcast_tensors(base.loc, base.scale)
    return loc, scale, event


def double_sided_maxwell(shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
    """Standard double-sided Maxwell samples (density m² e^{−m²/2}/√(2π)): a random sign times
    the norm of three standard normals."""
    norm = torch.randn(*shape, 3, dtype=like.dtype, device=like.device).norm(dim=-1)
    sign = torch.randint(0, 2, shape, device=like.device).to(like.dtype) * 2 - 1
    return sign * norm


class MeasureValued(Estimator):
    """Measure-valued derivative for ``Normal`` and ``Independent(Normal)`` nodes of any batch
    shape, with respect to the mean and the scale. Unbiased (first derivative); 1 + 3E
    evaluations for E coordinates per event (4 for a plain Normal), along a point dimension left
    of the graph's sample dimensions. No gradient flows through the sample: the cost need not be
    differentiable in it."""

    unbiased = True
    needs_credit = True

    def draw(self, dist: Distribution, ctx: DrawContext) -> Draw:
        found = normal_parameters(dist)
        if found is None:
            raise GraphError(f"node '{ctx.name}': MeasureValued supports Normal and Independent(Normal), "
                             f"not {type(dist).__name__}")
        if ctx.value is not None:
            raise GraphError(f"node '{ctx.name}': MeasureValued draws its own points and cannot score a "
                             "given value (value=)")
        loc, scale, event = (t.detach() if torch.is_tensor(t) else t for t in found)
        shape = loc.shape
        flat = lambda t: t.reshape(*shape[:len(shape) - event], -1)  # noqa: E731  [*batch, E]
        mu, sigma = flat(loc), flat(scale)
        coordinates = mu.shape[-1]
        x = mu + sigma * torch.randn_like(mu)
        weibull = torch.sqrt(-2 * torch.log1p(-torch.rand_like(mu)))
        maxwell = double_sided_maxwell(mu.shape, mu)
        points = 1 + 3 * coordinates
        grid = x.unsqueeze(0).repeat(points, *[1] * x.dim())                  # [P, *batch, E]
        by_coordinate = grid.movedim(-1, 1)                                   # [P, E, *batch] (a view)
        e = torch.arange(coordinates)
        for offset, values in ((1, mu + sigma * weibull), (2, mu - sigma * weibull), (3, mu + sigma * maxwell)):
            by_coordinate[1 + 3 * e + offset - 1, e] = values.movedim(-1, 0)
        dim = ctx.new_point_dim(len(dist.batch_shape))
        lead = (points,) + (1,) * (-dim - 1 - len(dist.batch_shape))
        value = grid.reshape(lead + shape)
        log_weight = torch.full((points,) + (1,) * (-dim - 1), -math.inf, dtype=mu.dtype, device=mu.device)
        log_weight[0] = 0.0
        return Draw(value, dist.log_prob(value), points=Points(dim, log_weight))

    def terms(self, node: StochasticNode, credit: Credit) -> Terms:
        loc, scale, event = normal_parameters(node.dist)
        f = credit.value.movedim(node.points.dim, 0)                           # [P, 1s, *batch]
        f0, per = f[0], f[1:].reshape(-1, 3, *f.shape[1:])                     # per: [E, 3, 1s, *batch]
        f_plus_mu, f_minus_mu, f_plus_sigma = (per[:, i].movedim(0, -1) for i in range(3))  # [1s, *batch, E]
        batch_shape = loc.shape[:loc.dim() - event]
        mu, sigma = loc.reshape(*batch_shape, -1), scale.reshape(*batch_shape, -1)
        s = sigma.detach()
        grad_mu = (f_plus_mu - f_minus_mu) / (s * math.sqrt(2 * math.pi))
        grad_sigma = (f_plus_sigma - f0.unsqueeze(-1)) / s
        term = grad_mu.detach() * (mu - mu.detach()) + grad_sigma.detach() * (sigma - sigma.detach())
        return Terms(control_variate=term.sum(-1))                            # value 0: [1s, *batch]

    def __repr__(self) -> str:
        return "MeasureValued()"
