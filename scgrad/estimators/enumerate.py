"""Exact summation over a finite support."""
from __future__ import annotations

from torch.distributions import Distribution

from ..errors import GraphError
from ..nodes import Points
from ..protocol import Draw, DrawContext, Estimator


class Enumerate(Estimator):
    """Sum over every value of a finite support, weighted by its probability. Exact, unbiased.

    For Bernoulli, Categorical, OneHotCategorical and any distribution with
    ``has_enumerate_support``. The value is the whole support laid along a new batch dimension
    to the left of the graph's batch dimensions (see ``Graph(batch_ndim=...)``): everything
    computed from it is vectorised over the support, and the surrogate sums over that dimension
    with weights p(value). Nodes enumerated later get further dimensions to the left, so joint
    outcomes are covered by broadcasting, never by a Python loop.
    """

    unbiased = True

    def draw(self, dist: Distribution, ctx: DrawContext) -> Draw:
        if not dist.has_enumerate_support:
            raise GraphError(
                f"node '{ctx.name}': Enumerate needs a finite support, but {type(dist).__name__} "
                "has none; use ScoreFunction or Reparam"
            )
        if ctx.value is not None:
            raise GraphError(f"node '{ctx.name}': Enumerate cannot score a given value (value=)")
        support = dist.enumerate_support(expand=False)  # (K,) + (1,)*len(batch) + event
        dim = ctx.new_point_dim(len(dist.batch_shape))
        value = support.reshape((support.shape[0],) + (1,) * (-dim - 1) + dist.event_shape)
        log_prob = dist.log_prob(value)
        # The weight p(value) itself, not a magic box: its value is the probability.
        return Draw(value, log_prob, points=Points(dim, log_prob))
