"""Biased, low-variance estimators for discrete nodes: relaxations and straight-through."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.distributions import (Bernoulli, Categorical, Distribution, Independent, OneHotCategorical,
                                 RelaxedBernoulli, RelaxedOneHotCategorical)

from ..errors import GraphError
from ..protocol import Draw, DrawContext, Estimator

_SUPPORTED = (Bernoulli, Categorical, OneHotCategorical)


def _check(estimator: Estimator, dist: Distribution, ctx: DrawContext) -> Distribution:
    """The distribution to relax: ``dist``, or the Bernoulli inside an ``Independent``."""
    base = dist.base_dist if isinstance(dist, Independent) and isinstance(dist.base_dist, Bernoulli) else dist
    if not isinstance(base, _SUPPORTED):
        raise GraphError(
            f"node '{ctx.name}': {type(estimator).__name__} supports Bernoulli (also inside Independent), "
            f"Categorical and OneHotCategorical, not {type(dist).__name__}"
        )
    if ctx.value is not None:
        raise GraphError(f"node '{ctx.name}': {type(estimator).__name__} cannot score a given value")
    return base


class GumbelSoftmax(Estimator):
    """Concrete / Gumbel-softmax relaxation (Maddison et al. 2017; Jang et al. 2017). BIASED.

    The value is a relaxed sample: in (0, 1) for Bernoulli, on the simplex (one-hot shaped,
    last dim = number of categories) for Categorical and OneHotCategorical. Gradients flow
    through it; the bias shrinks as ``temperature`` → 0 while the variance grows.

    Args:
        temperature: > 0.
        hard: return the one-hot (0/1) sample in the forward pass with the relaxed gradient.
    """

    unbiased = False

    def __init__(self, temperature: float = 1.0, hard: bool = False) -> None:
        if temperature <= 0:
            raise ValueError(f"GumbelSoftmax: temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.hard = hard

    def draw(self, dist: Distribution, ctx: DrawContext) -> Draw:
        dist = _check(self, dist, ctx)
        t = torch.as_tensor(self.temperature, dtype=dist.logits.dtype, device=dist.logits.device)
        if isinstance(dist, Bernoulli):
            soft = RelaxedBernoulli(t, logits=dist.logits).rsample()
            hard = (soft > 0.5).to(soft.dtype)
        else:
            soft = RelaxedOneHotCategorical(t, logits=dist.logits).rsample()
            hard = F.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
        # (soft − soft) is exactly 0, so the forward value stays exactly 0/1.
        return Draw(hard + (soft - soft.detach()) if self.hard else soft)

    def __repr__(self) -> str:
        return f"GumbelSoftmax(temperature={self.temperature}, hard={self.hard})"


class StraightThrough(Estimator):
    """Straight-through (Bengio et al. 2013): a hard sample forward, ∂value/∂p = 1 backward. BIASED.

    The value is the exact 0/1 sample (one-hot for Categorical); its gradient is taken as if
    it were the probabilities. Unbiased only for costs linear in the sample.
    """

    unbiased = False

    def draw(self, dist: Distribution, ctx: DrawContext) -> Draw:
        dist = _check(self, dist, ctx)
        probs = dist.probs
        if isinstance(dist, Bernoulli):
            hard = dist.sample()
        elif isinstance(dist, Categorical):
            hard = F.one_hot(dist.sample(), probs.shape[-1]).to(probs.dtype)
        else:
            hard = dist.sample()
        return Draw(hard + (probs - probs.detach()))  # exactly 0/1 forward
