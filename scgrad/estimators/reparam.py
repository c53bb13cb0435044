"""The reparameterization (pathwise) estimator."""
from __future__ import annotations

from torch.distributions import Distribution

from ..errors import GraphError
from ..protocol import Draw, DrawContext, Estimator


class Reparam(Estimator):
    """w = g(ε, θ): gradients flow through the sample (Kingma & Welling 2014). Unbiased.

    Needs ``dist.has_rsample``; adds no score term. It cannot score an observed value, since a
    given value has no path back to the parameters.
    """

    unbiased = True

    def draw(self, dist: Distribution, ctx: DrawContext) -> Draw:
        if not dist.has_rsample:
            raise GraphError(
                f"node '{ctx.name}': Reparam needs a reparameterizable distribution, but "
                f"{type(dist).__name__} has no rsample; use ScoreFunction or Enumerate"
            )
        if ctx.value is not None:
            raise GraphError(
                f"node '{ctx.name}': Reparam cannot score a given value (value=); use ScoreFunction"
            )
        return Draw(dist.rsample())
