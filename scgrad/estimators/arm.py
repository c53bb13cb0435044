"""ARM and DisARM: antithetic, unbiased gradients for Bernoulli nodes, from two evaluations.

Both draw one uniform u per bit and evaluate the model at the antithetic pair

    b = 1[u < σ(φ)],    b̃ = 1[1 − u < σ(φ)]        (φ: the logits)

— each marginally Bernoulli(σ(φ)) — laid along a point dimension of their own (weights ½, so
the surrogate's value and the pathwise gradients of everything else average the two). With
f(b), f(b̃) the costs downstream of the node at each point (its ``Credit``), the gradient
with respect to the logits is

    ARM     (Yin & Zhou 2019):        (f(b̃) − f(b)) · (u − ½)
    DisARM  (Dong, Mnih & Tucker 2020): ½ (f(b) − f(b̃)) · (−1)^b̃ · 1[b ≠ b̃] · σ(|φ|)

DisARM is ARM with u integrated out given (b, b̃): never worse, and zero when the pair agrees.
For a vector of bits (``Independent(Bernoulli)``) f is the cost of the whole vector and the
formulas hold bit by bit. Both are unbiased for the first derivative only: the term that
carries the gradient is a product with a detached coefficient, so its second derivative is not
an estimate of anything (use ``ScoreFunction`` or ``Enumerate`` for Hessians).
"""
from __future__ import annotations

import abc
import math
from typing import Optional, Tuple

import torch
from torch.distributions import Bernoulli, Distribution, Independent

from ..errors import GraphError
from ..nodes import Points, StochasticNode
from ..protocol import Credit, Draw, DrawContext, Estimator, Terms


def bernoulli_logits(dist: Distribution) -> Optional[Tuple[torch.Tensor, int]]:
    """(logits φ [*batch, *event], event rank) of a Bernoulli or ``Independent(Bernoulli)``
    distribution, else ``None``."""
    base, event = dist, 0
    while isinstance(base, Independent):
        base, event = base.base_dist, event + base.reinterpreted_batch_ndims
    return (base.logits, event) if type(base) is Bernoulli else None


class _Antithetic(Estimator):
    """The draw shared by ARM and DisARM; subclasses give the coefficient of the logits."""

    unbiased = True
    needs_credit = True

    def draw(self, dist: Distribution, ctx: DrawContext) -> Draw:
        found = bernoulli_logits(dist)
        if found is None:
            raise GraphError(f"node '{ctx.name}': {type(self).__name__} supports Bernoulli and "
                             f"Independent(Bernoulli), not {type(dist).__name__}")
        if ctx.value is not None:
            raise GraphError(f"node '{ctx.name}': {type(self).__name__} draws its own antithetic pair "
                             "and cannot score a given value (value=)")
        logits = found[0]
        u = torch.rand_like(logits, dtype=logits.dtype)
        p = torch.sigmoid(logits.detach())
        pair = torch.stack([(u < p), (1 - u < p)]).to(logits.dtype)    # [2, *batch, *event]
        dim = ctx.new_point_dim(len(dist.batch_shape))
        lead = (2,) + (1,) * (-dim - 1 - len(dist.batch_shape))         # the point dim, then 1s
        value = pair.reshape(lead + pair.shape[1:])
        half = torch.full((2,) + (1,) * (-dim - 1), math.log(0.5), dtype=logits.dtype, device=logits.device)
        return Draw(value, dist.log_prob(value), points=Points(dim, half), noise=u)

    def terms(self, node: StochasticNode, credit: Credit) -> Terms:
        logits, event = bernoulli_logits(node.dist)
        dim = node.points.dim
        f = credit.value                                                   # [2, …, *batch]
        f_b, f_pair = f.select(dim, 0), f.select(dim, 1)                   # [*batch] each
        for _ in range(event):                                             # one value per bit
            f_b, f_pair = f_b.unsqueeze(-1), f_pair.unsqueeze(-1)
        value = node.value
        b, b_pair = value.select(dim - event, 0), value.select(dim - event, 1)
        coefficient = self.coefficient(f_b, f_pair, b, b_pair, logits.detach(), node.noise)
        # value 0; gradient with respect to the logits: the coefficient (summed over an event's bits)
        gradient_term = coefficient * (logits - logits.detach())
        if event:
            gradient_term = gradient_term.sum(list(range(-event, 0)))
        return Terms(control_variate=gradient_term)

    @abc.abstractmethod
    def coefficient(self, f_b: torch.Tensor, f_pair: torch.Tensor, b: torch.Tensor, b_pair: torch.Tensor,
                    logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """The estimate of ∂E[f]/∂φ, elementwise [*batch, *event]."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ARM(_Antithetic):
    """Augment-REINFORCE-merge (Yin & Zhou 2019) for ``Bernoulli`` and ``Independent(Bernoulli)``
    nodes of any batch shape. Unbiased (first derivative); two evaluations per node.

    The value holds the antithetic pair (b, b̃) along a new point dimension of size 2, left of
    the graph's sample dimensions (as ``Enumerate``'s support): write the model for any leading
    dimensions. See the module docstring for the estimate.
    """

    def coefficient(self, f_b, f_pair, b, b_pair, logits, u):
        return (f_pair - f_b) * (u - 0.5)


class DisARM(_Antithetic):
    """DisARM (Dong, Mnih & Tucker 2020): ARM with its uniform integrated out given the pair.
    ``Bernoulli`` and ``Independent(Bernoulli)`` nodes of any batch shape. Unbiased (first
    derivative), variance never above ARM's; two evaluations per node, laid out as ``ARM``'s."""

    def coefficient(self, f_b, f_pair, b, b_pair, logits, u):
        sign = 1 - 2 * b_pair                                              # (−1)^b̃
        return 0.5 * (f_b - f_pair) * sign * (b != b_pair).to(logits.dtype) * torch.sigmoid(logits.abs())

