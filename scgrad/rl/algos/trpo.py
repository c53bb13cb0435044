"""Trust Region Policy Optimization (Schulman et al. 2015), on ``scgrad``.

The surrogate is the shared graph (``onpolicy.policy_loss``) with an unclipped
``ImportanceWeighted`` action node: L(θ) = −mean(r·Â), r = π_θ(a|s) / π_old(a|s). Each epoch
takes one natural-gradient step: x = F⁻¹∇L by conjugate gradient with Fisher-vector products
(double backprop through KL(π_old ‖ π_θ)), scaled to the trust region's edge √(2δ / xᵀFx),
then shrunk until KL ≤ δ and the surrogate improves (``trust_region``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple

import torch
from torch.distributions import kl_divergence

from scgrad.estimators import ImportanceWeighted

from scgrad.rl import distributed
from scgrad.rl.algos import onpolicy, registry as algorithms
from scgrad.rl.algos.base import RunResult
from scgrad.rl.algos.onpolicy import OnPolicyConfig, adam, fit_value, require_separate_networks
from scgrad.rl.algos.trust_region import (backtracking_line_search, conjugate_gradient, fisher_vector_product,
                                          flat_grad, flat_params, set_flat_params)
from scgrad.rl.config import require, require_positive
from scgrad.rl.data.batch import Batch
from scgrad.rl.losses import policy_loss, value_loss


@dataclasses.dataclass
class TRPOConfig(OnPolicyConfig):
    """TRPO settings; defaults are Spinning Up's.

    Attributes:
        delta: the trust region's KL bound δ.
        damping: added to the Fisher matrix's diagonal in conjugate gradient.
        cg_iters: conjugate-gradient iterations.
        backtrack_iters: line-search shrinks before giving up the step.
        backtrack_coef: line-search shrink factor, in (0, 1).
        train_v_iters: full-batch gradient steps on the value function per epoch.
    """

    delta: float = 0.01
    damping: float = 0.1
    cg_iters: int = 10
    backtrack_iters: int = 10
    backtrack_coef: float = 0.8
    train_v_iters: int = 80

    def validate(self) -> None:
        super().validate()
        require_positive(self, "delta", "cg_iters", "train_v_iters")
        require(self.damping >= 0, f"damping must be >= 0, got {self.damping}")
        require(self.backtrack_iters >= 0, f"backtrack_iters must be >= 0, got {self.backtrack_iters}")
        require(0.0 < self.backtrack_coef < 1.0, f"backtrack_coef must be in (0, 1), got {self.backtrack_coef}")


class TRPO:
    """TRPO's optimiser (the critic's) and update (the rest is ``onpolicy.OnPolicyLearner`` and ``base.train``)."""

    name = "trpo"
    Config = TRPOConfig

    def __init__(self, config: TRPOConfig) -> None:
        self.config = config

    def optimizers(self, model) -> Dict[str, torch.optim.Optimizer]:
        """Adam for the critic only ("v"): the policy moves by the natural-gradient step."""
        require_separate_networks(model, "trpo")
        return {"v": adam(model.v, self.config.vf_lr, self.config.adam_eps)}

    def loss_pi(self, model, batch: Batch):
        """The policy graph with an importance-weighted action node (ratio to π_old, baseline −V)."""
        return policy_loss(model.pi, batch, ImportanceWeighted(batch.logp, baseline=-batch.v))

    def update(self, model, optimizers, batch: Batch) -> Dict[str, float]:
        """The natural-gradient step F⁻¹∇L (conjugate gradient on Fisher-vector products),
        scaled to KL = ``delta`` and backtracked until the loss improves within the KL bound;
        then ``train_v_iters`` critic steps."""
        c = self.config
        params = [p for p in model.pi.parameters() if p.requires_grad]
        with torch.no_grad():
            old_dist = model.pi.distribution(batch.obs)
        pl = self.loss_pi(model, batch)
        info = dict(zip(("LossPi", "LossV", "Entropy"),
                        distributed.mean(pl.value, value_loss(model.v, batch), pl.dist.entropy().mean())))
        # in a data-parallel run every process holds a share of the batch: the gradient, the
        # Fisher-vector products and the line search's loss and KL are means over all of them
        grad = distributed.mean_tensor(flat_grad(pl.loss, params))
        kl_grad = flat_grad(kl_divergence(old_dist, model.pi.distribution(batch.obs)).mean(), params,
                            create_graph=True)
        fvp = lambda v: distributed.mean_tensor(fisher_vector_product(kl_grad, params, v, c.damping))  # noqa: E731
        direction = conjugate_gradient(fvp, grad, c.cg_iters)  # ≈ F⁻¹ ∇L
        shs = direction.dot(fvp(direction)).clamp_min(1e-12)
        full_step = -torch.sqrt(2.0 * c.delta / shs) * direction  # descend the loss
        theta_old = flat_params(params)

        def evaluate(step: torch.Tensor) -> Tuple[float, float]:
            set_flat_params(params, theta_old + step)
            with torch.no_grad():
                loss = self.loss_pi(model, batch)
                return tuple(distributed.mean(loss.value, kl_divergence(old_dist, loss.dist).mean()))

        result = backtracking_line_search(evaluate, full_step, info["LossPi"], c.delta, c.backtrack_coef,
                                          c.backtrack_iters)
        set_flat_params(params, theta_old + result.step if result.step is not None else theta_old)
        fit_value(model.v, optimizers["v"], batch, c.train_v_iters, c.max_grad_norm)
        return {**info, "KL": result.kl if result.step is not None else 0.0,
                "BacktrackIters": result.backtracks}


def trpo(env: str, out_dir: Optional[str] = None, **options: Any) -> RunResult:
    """Train TRPO on gymnasium environment ``env``.

    Args:
        env: environment id (Discrete or 1-D Box actions, Box observations).
        out_dir: run folder (config.json, progress.csv, checkpoint); ``None``: no files.
        **options: ``resume``, ``progress``, ``threads``, ``stop_after``, ``actor_critic`` (as in
            ``registry.train``; tuned presets fill the settings not given) and
            any field of :class:`TRPOConfig` (and the shared ``OnPolicyConfig`` and
            ``RunConfig``): seed, steps, num_envs, steps_per_epoch, gamma, lam, delta, damping,
            cg_iters, vf_lr, train_v_iters, ...
    """
    return algorithms.train("trpo", env, out_dir, **options)


ALGORITHM = onpolicy.algorithm("trpo", TRPOConfig, TRPO)
