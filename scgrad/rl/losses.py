"""Losses of the policy-gradient algorithms, as pure functions of a batch.

The policy loss of VPG, TRPO and PPO is one stochastic computation graph: the action node
a ~ π(·|s), scored at the replayed actions (``value=``), and the cost −(Â + V(s)) credited to
it, with −V(s) as the node's baseline. The score term is then ∇log π(a|s)·(cost − baseline) =
−Â ∇log π(a|s), the policy gradient with the critic as baseline (Schulman et al. 2016); the
estimator on the node (score function, importance-weighted, clipped) is all that tells the
algorithms apart.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.distributions import Distribution

import scgrad as sg
from scgrad.protocol import Estimator
from scgrad.rl.data.batch import Batch


@dataclasses.dataclass
class PolicyLoss:
    """The policy surrogate of one batch.

    Attributes:
        loss: the graph's surrogate (scalar, differentiable); minimise it.
        dist: π_θ(·|s) for the batch.
        logp: log π_θ(a|s), [M].
        mean_v: mean of the batch's V_old(s) (the surrogate's constant baseline part).
    """

    loss: torch.Tensor
    dist: Distribution
    logp: torch.Tensor
    mean_v: torch.Tensor

    @property
    def value(self) -> float:
        """Spinning Up's ``LossPi``: the surrogate less its constant baseline part, i.e.
        −mean(r·Â) (r = 1 for VPG, the (clipped) ratio for PPO/TRPO). Computed on demand: it
        waits for the loss, which the minibatch loop should not do."""
        return self.loss.item() + self.mean_v.item()


def policy_loss(policy: nn.Module, batch: Batch, estimator: Estimator) -> PolicyLoss:
    """The policy surrogate as an ``sg.Graph``: one action node, one cost.

    ``estimator`` must carry the baseline −V (``baseline=-batch.v``). The graph is not entered
    (no ``with``): with a single node and a single cost, the fallback rule (credit every cost
    to every earlier node) is exact, and it skips data-flow tracking in the inner loop.
    """
    dist = policy.distribution(batch.obs)
    graph = sg.Graph(check_finite=False)  # the RL loop has its own NaN guard
    graph.sample("action", dist, value=batch.act, estimator=estimator)
    graph.cost("neg_return", -(batch.adv + batch.v))
    loss = graph.surrogate()
    return PolicyLoss(loss, dist, graph["action"].log_prob, batch.v.mean())


def value_loss(value: nn.Module, batch: Batch) -> torch.Tensor:
    """Mean squared error of V(s) against the λ-return."""
    return (value(batch.obs) - batch.ret).square().mean()


def approx_kl(logp_old: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """KL(π_old ‖ π) estimated from samples of π_old: mean((r − 1) − log r), r = π/π_old.

    Non-negative and unbiased (Schulman's "k3" estimator), unlike mean(log π_old − log π).
    """
    log_ratio = logp - logp_old
    return (log_ratio.exp() - 1.0 - log_ratio).mean()
