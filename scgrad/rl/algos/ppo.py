"""Proximal Policy Optimization, clipped (Schulman et al. 2017), on ``scgrad``.

The policy loss is the shared graph (``onpolicy.policy_loss``) with an
``ImportanceWeighted(behavior_log_prob, clip=ε)`` action node: per sample
max(r·(−Â), clip(r, 1 − ε, 1 + ε)·(−Â)), r = π(a|s) / π_old(a|s) — the clipped surrogate
written for costs. Several epochs of minibatch steps reuse each rollout; policy steps stop
early once the approximate KL to π_old passes 1.5 × target_kl (the value steps go on).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

import torch

from scgrad.estimators import ImportanceWeighted

from scgrad.rl import distributed
from scgrad.rl.algos import onpolicy, registry as algorithms
from scgrad.rl.algos.base import RunResult
from scgrad.rl.algos.onpolicy import OnPolicyConfig, adam
from scgrad.rl.config import require, require_positive
from scgrad.rl.data.batch import Batch
from scgrad.rl.losses import approx_kl, policy_loss, value_loss
from scgrad.rl.optim import average_gradients, step


@dataclasses.dataclass
class PPOConfig(OnPolicyConfig):
    """PPO settings; defaults are Spinning Up's (its 80 full-batch iterations are
    update_epochs=80 with no minibatch_size).

    Attributes:
        clip_ratio: ε, how far the probability ratio may move before the loss stops caring, in (0, 1).
        pi_lr: learning rate of the policy (Adam).
        update_epochs: passes over each rollout.
        minibatch_size: samples per gradient step (none: the whole rollout).
        target_kl: stop the policy's steps once the approximate KL exceeds 1.5 × this (none: never).
        ent_coef: weight of the entropy bonus.
        vf_coef: weight of the value loss in the minibatch loss. The two networks have their own
            Adam, which a constant weight does not change, so it acts only through the joint
            gradient clipping (``max_grad_norm``) and Adam's ε; SB3 uses 0.5.
        normalize_minibatch_advantages: normalise the advantages to mean 0, std 1 again within
            each minibatch (as SB3 and CleanRL do).
    """

    clip_ratio: float = 0.2
    pi_lr: float = 3e-4
    update_epochs: int = 80
    minibatch_size: Optional[int] = None
    target_kl: Optional[float] = 0.01
    ent_coef: float = 0.0
    vf_coef: float = 1.0
    normalize_minibatch_advantages: bool = False

    def validate(self) -> None:
        super().validate()
        require(0.0 < self.clip_ratio < 1.0, f"clip_ratio must be in (0, 1), got {self.clip_ratio}")
        require_positive(self, "pi_lr", "update_epochs")
        require(self.minibatch_size is None or self.minibatch_size > 0,
                f"minibatch_size must be > 0 or none, got {self.minibatch_size}")
        require(self.target_kl is None or self.target_kl > 0, f"target_kl must be > 0 or none, got {self.target_kl}")
        require(self.ent_coef >= 0, f"ent_coef must be >= 0, got {self.ent_coef}")
        require(self.vf_coef > 0, f"vf_coef must be > 0, got {self.vf_coef}")


class PPO:
    """PPO's optimisers and update (the rest is ``onpolicy.OnPolicyLearner`` and ``base.train``)."""

    name = "ppo"
    Config = PPOConfig

    def __init__(self, config: PPOConfig) -> None:
        self.config = config

    def optimizers(self, model) -> Dict[str, torch.optim.Optimizer]:
        """Adam for the policy ("pi") and for the critic ("v"); one Adam for the whole model
        ("model", at pi_lr) when the policy and the critic share a body (``nets.cnn``)."""
        c = self.config
        if getattr(model, "shared_body", False):
            return {"model": adam(model, c.pi_lr, c.adam_eps)}
        # one each: after an early stop the policy's optimiser must not step (momentum would move it)
        return {"pi": adam(model.pi, c.pi_lr, c.adam_eps), "v": adam(model.v, c.vf_lr, c.adam_eps)}

    def loss_pi(self, model, batch: Batch):
        """The policy graph with a clipped importance-weighted action node (baseline −V)."""
        estimator = ImportanceWeighted(batch.logp, clip=self.config.clip_ratio, baseline=-batch.v)
        return policy_loss(model.pi, batch, estimator)

    def update(self, model, optimizers, batch: Batch) -> Dict[str, float]:
        """``update_epochs`` passes over shuffled minibatches of the clipped surrogate and the
        value loss; the policy stops stepping once its KL to π_old passes 1.5·``target_kl``
        (with a shared body, the whole update stops there, as CleanRL's does)."""
        c = self.config
        with torch.no_grad():
            before = self.loss_pi(model, batch)
            info = dict(zip(("LossPi", "LossV", "Entropy"), distributed.mean(
                before.value, value_loss(model.v, batch), before.dist.entropy().mean())))
        policy_on, steps, shared = True, 0, "model" in optimizers
        # in a data-parallel run each process steps on its share of every minibatch
        size = c.minibatch_size // distributed.world().size if c.minibatch_size else len(batch)
        for _ in range(c.update_epochs):
            if shared and not policy_on:
                break
            shuffled = batch[torch.randperm(len(batch))]  # one gather per epoch; minibatches are views
            if c.normalize_minibatch_advantages:  # every minibatch's moments in one all-reduce
                shuffled = dataclasses.replace(shuffled, adv=distributed.standardize_chunks(shuffled.adv, size))
            for start in range(0, len(batch), size):
                mb = shuffled[start:start + size]
                loss, kl = c.vf_coef * value_loss(model.v, mb), []
                if policy_on:
                    pl = self.loss_pi(model, mb)
                    loss = loss + pl.loss - (c.ent_coef * pl.dist.entropy().mean() if c.ent_coef else 0.0)
                    if c.target_kl is not None:
                        kl = [approx_kl(mb.logp, pl.logp.detach())]
                candidates = ([optimizers["model"]] if shared else
                              [optimizers["v"], optimizers["pi"]] if policy_on else [optimizers["v"]])
                for optimizer in candidates:
                    optimizer.zero_grad()
                loss.backward()
                # the KL of the policy before this step travels with the gradients (one collective)
                kl = average_gradients(candidates, *kl)
                # Spinning Up's early stop: the policy may not drift far from π_old; the critic
                # keeps learning (its parameters get the only gradients from here on)
                if kl and kl[0] > 1.5 * c.target_kl:
                    policy_on = False
                    if shared:
                        break
                    candidates = [optimizers["v"]]  # the policy's gradient is dropped
                steps += policy_on
                step(candidates, c.max_grad_norm, averaged=True)  # clipped together, as SB3's single optimiser does
        return {**info, **self.drift(model, batch), "StopIter": steps}

    def drift(self, model, batch: Batch) -> Dict[str, float]:
        """KL(π_old ‖ π) and the fraction of samples whose ratio left [1 − ε, 1 + ε], after the update."""
        with torch.no_grad():
            log_ratio = model.pi.distribution(batch.obs).log_prob(batch.act) - batch.logp
            clipped = ((log_ratio.exp() - 1.0).abs() > self.config.clip_ratio).float().mean()
            kl, clip_frac = distributed.mean(approx_kl(batch.logp, batch.logp + log_ratio), clipped)
            return {"KL": kl, "ClipFrac": clip_frac}


def ppo(env: str, out_dir: Optional[str] = None, **options: Any) -> RunResult:
    """Train PPO-Clip on gymnasium environment ``env``.

    Args:
        env: environment id (Discrete or 1-D Box actions, Box observations).
        out_dir: run folder (config.json, progress.csv, checkpoint); ``None``: no files.
        **options: ``resume``, ``progress``, ``threads``, ``stop_after``, ``actor_critic`` (as in
            ``registry.train``; tuned presets fill the settings not given) and
            any field of :class:`PPOConfig` (and the shared ``OnPolicyConfig`` and
            ``RunConfig``): seed, steps, num_envs, steps_per_epoch, gamma, lam, clip_ratio,
            pi_lr, vf_lr, update_epochs, minibatch_size, target_kl, ...

    Returns:
        A ``RunResult`` with the trained model and the progress rows.
    """
    return algorithms.train("ppo", env, out_dir, **options)


ALGORITHM = onpolicy.algorithm("ppo", PPOConfig, PPO)
