"""Vanilla policy gradient with a learned critic as baseline (Williams 1992; Schulman et al.
2016's GAE), on ``scgrad``.

The policy loss is the shared graph (``onpolicy.policy_loss``) with a ``ScoreFunction``
action node scored at the replayed actions and baselined by −V: one gradient step per epoch
on −mean(log π(a|s)·Â) in gradient, followed by ``train_v_iters`` steps on the critic.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

import torch

from scgrad.estimators import ScoreFunction

from scgrad.rl import distributed
from scgrad.rl.algos import onpolicy, registry as algorithms
from scgrad.rl.algos.base import RunResult
from scgrad.rl.algos.onpolicy import OnPolicyConfig, adam, fit_value, require_separate_networks
from scgrad.rl.config import require, require_positive
from scgrad.rl.data.batch import Batch
from scgrad.rl.losses import approx_kl, policy_loss, value_loss
from scgrad.rl.optim import step


@dataclasses.dataclass
class VPGConfig(OnPolicyConfig):
    """VPG settings; defaults are Spinning Up's.

    Attributes:
        pi_lr: learning rate of the policy (Adam), one step per epoch.
        train_v_iters: full-batch gradient steps on the value function per epoch.
        ent_coef: weight of the entropy bonus.
    """

    pi_lr: float = 3e-4
    train_v_iters: int = 80
    ent_coef: float = 0.0

    def validate(self) -> None:
        super().validate()
        require_positive(self, "pi_lr", "train_v_iters")
        require(self.ent_coef >= 0, f"ent_coef must be >= 0, got {self.ent_coef}")


class VPG:
    """VPG's optimisers and update (the rest is ``onpolicy.OnPolicyLearner`` and ``base.train``)."""

    name = "vpg"
    Config = VPGConfig

    def __init__(self, config: VPGConfig) -> None:
        self.config = config

    def optimizers(self, model) -> Dict[str, torch.optim.Optimizer]:
        """Adam for the policy ("pi") and for the critic ("v")."""
        require_separate_networks(model, "vpg")
        c = self.config
        return {"pi": adam(model.pi, c.pi_lr, c.adam_eps), "v": adam(model.v, c.vf_lr, c.adam_eps)}

    def loss_pi(self, model, batch: Batch):
        """The policy graph with a score-function action node baselined by −V."""
        return policy_loss(model.pi, batch, ScoreFunction(baseline=-batch.v))

    def update(self, model, optimizers, batch: Batch) -> Dict[str, float]:
        """One policy step (with the entropy bonus), then ``train_v_iters`` critic steps."""
        c = self.config
        pl = self.loss_pi(model, batch)
        entropy = pl.dist.entropy().mean()
        with torch.no_grad():
            info = dict(zip(("LossPi", "LossV", "Entropy"),
                            distributed.mean(pl.value, value_loss(model.v, batch), entropy)))
        optimizers["pi"].zero_grad()
        (pl.loss - c.ent_coef * entropy).backward()
        step([optimizers["pi"]], c.max_grad_norm)
        fit_value(model.v, optimizers["v"], batch, c.train_v_iters, c.max_grad_norm)
        with torch.no_grad():
            info["KL"] = distributed.mean(approx_kl(batch.logp, model.pi.distribution(batch.obs).log_prob(batch.act)))
        return info


def vpg(env: str, out_dir: Optional[str] = None, **options: Any) -> RunResult:
    """Train VPG on gymnasium environment ``env``.

    Args:
        env: environment id (Discrete or 1-D Box actions, Box observations).
        out_dir: run folder (config.json, progress.csv, checkpoint); ``None``: no files.
        **options: ``resume``, ``progress``, ``threads``, ``stop_after``, ``actor_critic`` (as in
            ``registry.train``; tuned presets fill the settings not given) and
            any field of :class:`VPGConfig` (and the shared ``OnPolicyConfig`` and
            ``RunConfig``): seed, steps, num_envs, steps_per_epoch, gamma, lam, pi_lr, vf_lr,
            train_v_iters, ...
    """
    return algorithms.train("vpg", env, out_dir, **options)


ALGORITHM = onpolicy.algorithm("vpg", VPGConfig, VPG)
