"""Off-policy score function: importance weighting, optionally clipped (PPO)."""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch.distributions import Distribution

from ..baselines import BaselineLike, resolve
from ..errors import GraphError
from ..nodes import StochasticNode
from ..protocol import Credit, Draw, DrawContext, Estimator, Terms, observed_log_prob


class ImportanceWeighted(Estimator):
    """Score a value drawn from a behaviour distribution μ with the ratio ρ = p(w)/μ(w).

    Without ``clip``: cost terms are weighted by ρ (gradient ρ ∇log p), an unbiased estimate of
    the gradient under p from samples of μ; at μ = p it equals the score function. The baseline
    enters as ``(1 − ρ) · b``, which has zero mean under μ.

    With ``clip=ε``: PPO's clipped surrogate (Schulman et al. 2017), written for costs:
    per element max(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A) with A = credit − b the node's (detached)
    downstream cost less its baseline. Biased by design (it limits the policy change).

    Args:
        behavior_log_prob: log μ(value), batch-shaped; treated as a constant.
        clip: PPO's ε in (0, 1), or ``None``.
        baseline: as for ``ScoreFunction``.
    """

    def __init__(self, behavior_log_prob: torch.Tensor, clip: Optional[float] = None,
                 baseline: BaselineLike = None) -> None:
        if clip is not None and not 0.0 < clip < 1.0:
            raise ValueError(f"ImportanceWeighted: clip must be in (0, 1), got {clip}")
        self.behavior_log_prob = torch.as_tensor(behavior_log_prob).detach()
        self.clip = clip
        self.baseline = resolve(baseline)
        self.unbiased = clip is None
        self.needs_credit = True

    def draw(self, dist: Distribution, ctx: DrawContext) -> Draw:
        if ctx.value is None:
            raise GraphError(
                f"node '{ctx.name}': ImportanceWeighted scores samples drawn from the behaviour "
                "distribution; pass them as value="
            )
        drawn = observed_log_prob(dist, ctx)
        if self.behavior_log_prob.shape != drawn.log_prob.shape:
            raise GraphError(
                f"node '{ctx.name}': behavior_log_prob has shape "
                f"{tuple(self.behavior_log_prob.shape)} but the node's log_prob has shape "
                f"{tuple(drawn.log_prob.shape)}"
            )
        return drawn

    def log_ratio(self, node: StochasticNode) -> torch.Tensor:
        """log ρ = log p(w) − log μ(w), differentiable in p's parameters; shape ``node.shape``."""
        return node.log_prob - self.behavior_log_prob.to(node.log_prob.device)

    def terms(self, node: StochasticNode, credit: Credit) -> Terms:
        log_ratio = self.log_ratio(node)
        b = self.baseline(node, credit) if self.baseline is not None else None
        if self.clip is not None:
            advantage_cost = credit.value - b.value if b is not None else credit.value
            log_ratio = clipped_log_ratio(log_ratio, advantage_cost, self.clip)
        return Terms(log_weight=log_ratio, baseline=b.value if b is not None else None,
                     aux_loss=b.loss if b is not None else None)

    def __repr__(self) -> str:
        return f"ImportanceWeighted(clip={self.clip}, baseline={self.baseline!r})"


def clipped_log_ratio(log_ratio: torch.Tensor, advantage_cost: torch.Tensor, clip: float) -> torch.Tensor:
    """log of PPO's effective ratio for costs: the ratio r that attains max(ρA, clip(ρ)A).

    Args:
        log_ratio: log ρ, shape [*B], differentiable.
        advantage_cost: A = downstream cost − baseline (detached), shape [*B]; A < 0 is good.
        clip: ε.
    Returns:
        log r, shape [*B]: equal to log ρ where the unclipped term is the larger, else the
        log of the clipped ratio (whose gradient is zero outside [1 − ε, 1 + ε]).
    """
    # In log space: log clip(ρ, 1 − ε, 1 + ε) = clip(log ρ, log(1 − ε), log(1 + ε)), and since exp
    # is increasing, ρ·A ≥ clip(ρ)·A exactly when (log ρ − log clip(ρ))·A ≥ 0. That saves the
    # exp and log a ratio-space version needs, and their backward passes, on every minibatch.
    clipped = log_ratio.clamp(math.log(1.0 - clip), math.log(1.0 + clip))
    with torch.no_grad():
        use_ratio = (log_ratio - clipped) * advantage_cost >= 0
    return torch.where(use_ratio, log_ratio, clipped)
