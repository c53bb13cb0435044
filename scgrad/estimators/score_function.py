"""The score-function (REINFORCE, likelihood-ratio) estimator."""
from __future__ import annotations

from typing import Optional

import torch
from torch.distributions import Distribution

from ..baselines import BaselineLike, resolve
from ..nodes import StochasticNode
from ..protocol import Credit, Draw, DrawContext, Estimator, Terms, observed_log_prob


def baseline_terms(baseline, node: StochasticNode, credit: Optional[Credit], score: torch.Tensor) -> Terms:
    """Terms of a score function with score ``score`` (log-weight: its magic box) and an
    optional baseline.

    The graph adds ``(1 − exp(box(score))) · b``: value zero, and expected gradient zero (of
    every order) when b does not depend on the node's sample (Loaded DiCE).
    """
    if baseline is None:
        return Terms(score=score)
    b = baseline(node, credit)
    return Terms(score=score, baseline=b.value, aux_loss=b.loss)


class ScoreFunction(Estimator):
    """∇E[f(w)] = E[f(w) ∇log p(w)] (Williams 1992), in DiCE form. Unbiased at every order.

    Works for any distribution with ``log_prob``, discrete or continuous, and for observed
    values (``value=``, e.g. actions replayed from a buffer). No gradient flows through the
    sample itself.

    Args:
        baseline: a ``scgrad.baselines.Baseline``, a tensor, a number or ``None``.
    """

    unbiased = True

    def __init__(self, baseline: BaselineLike = None) -> None:
        self.baseline = resolve(baseline)
        self.needs_credit = self.baseline is not None

    def draw(self, dist: Distribution, ctx: DrawContext) -> Draw:
        if ctx.value is not None:
            return observed_log_prob(dist, ctx)
        value = dist.sample()
        return Draw(value, dist.log_prob(value))

    def terms(self, node: StochasticNode, credit: Optional[Credit]) -> Terms:
        return baseline_terms(self.baseline, node, credit, node.log_prob)

    def __repr__(self) -> str:
        return f"ScoreFunction(baseline={self.baseline!r})"
