"""Soft Actor-Critic (Haarnoja et al. 2018), with automatic entropy tuning, on ``scgrad``.

The actor's loss is a graph with a reparameterized tanh-Gaussian action node (``TanhNormal``,
``Reparam``: a = tanh(m(s) + σ(s)·ε)) and the costs α·log π(a|s) and −min_k Q_k(s, a): the
gradient of their mean is the pathwise gradient of E[α log π − min Q], through the learned
critics and through the exact log-density of the squashed action. The critics regress onto
r + γ(1 − terminated)·(min_k Q_targ,k(s′, a′) − α log π(a′|s′)), a′ ~ π(·|s′). With ``alpha``
left unset, log α follows the gradient of −log α·(log π(a|s) + H̄) (target entropy H̄ = −dim A
by default), which raises α while the policy's entropy is below H̄ and lowers it above.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple

import gymnasium as gym
import torch

import scgrad as sg
from scgrad.estimators import Reparam

from scgrad.rl.algos import offpolicy, registry as algorithms
from scgrad.rl.algos.base import RunResult
from scgrad.rl.algos.offpolicy import (OffPolicyConfig, Stats, critic_loss, frozen, gradient_step, polyak_update,
                                       td_target)
from scgrad.rl.algos.onpolicy import adam
from scgrad.rl.config import require
from scgrad.rl.data.replay import Transitions
from scgrad.rl.nets.offpolicy import SoftActorCritic
from scgrad.rl.optim import FlatAdam


@dataclasses.dataclass
class SACConfig(OffPolicyConfig):
    """SAC settings; defaults are Spinning Up's, with α learned as in Haarnoja et al.'s second
    paper (Spinning Up's fixed α is ``alpha=0.2``, ``--alpha 0.2``).

    Attributes:
        alpha: a fixed entropy weight α > 0; none: learn α, aiming at target_entropy.
        alpha_init: α at the start when it is learned.
        alpha_lr: learning rate of log α (Adam).
        target_entropy: the entropy the policy should keep when α is learned; none: −dim(A).
    """

    alpha: Optional[float] = None
    alpha_init: float = 1.0
    alpha_lr: float = 1e-3
    target_entropy: Optional[float] = None

    def validate(self) -> None:
        super().validate()
        require(self.alpha is None or self.alpha > 0, f"alpha must be > 0 or none, got {self.alpha}")
        require(self.alpha_init > 0, f"alpha_init must be > 0, got {self.alpha_init}")
        require(self.alpha_lr > 0, f"alpha_lr must be > 0, got {self.alpha_lr}")


def soft_policy_loss(model: SoftActorCritic, obs: torch.Tensor,
                     alpha: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(the actor's surrogate, log π(a|s) [B]) for obs [B, obs_dim], as an ``sg.Graph``.

    Costs per state: α·log π(a|s) and −min(Q_1, Q_2)(s, a), a ~ π(·|s) reparameterized; α is
    a detached 0-dim tensor. The graph is not entered: with a single node the untracked rule
    is exact (see ``ddpg.deterministic_policy_loss``).
    """
    graph = sg.Graph(check_finite=False)  # the RL loop has its own NaN guard
    dist = model.pi.distribution(obs)
    action = graph.sample("action", dist, estimator=Reparam())
    log_p = dist.log_prob(action)  # the cached pre-tanh sample: no atanh
    graph.cost("alpha_log_pi", alpha * log_p)
    graph.cost("neg_q", -model.q(obs, action).amin(0))
    return graph.surrogate(), log_p


def alpha_loss(log_alpha: torch.Tensor, log_p: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """−mean(log α · (log π(a|s) + H̄)), log_p [B] detached: its gradient in log α is the gap
    between the policy's estimated entropy −mean(log π) and the target H̄."""
    return -(log_alpha * (log_p.detach() + target_entropy)).mean()


class SAC:
    """SAC's gradient step (the rest is ``offpolicy.OffPolicyLearner`` and ``base.train``).

    Args:
        config: the settings.
        model: a ``SoftActorCritic`` from ``make_model``.
    """

    name = "sac"
    Config = SACConfig

    @staticmethod
    def make_model(config: SACConfig, obs_space: gym.Space, act_space: gym.Space) -> SoftActorCritic:
        """The actor, twin critics, their target and α the settings describe."""
        learned = config.alpha is None
        return SoftActorCritic(obs_space, act_space, config.hidden_sizes, config.activation,
                               config.alpha_init if learned else config.alpha, learned)

    def __init__(self, config: SACConfig, model: SoftActorCritic) -> None:
        self.config, self.model = config, model
        self.learn_alpha = config.alpha is None
        # α joins the actor's optimiser as a second group: one backward and one step for both
        # (their losses share no parameter: the actor's loss sees α detached, α's sees log π detached)
        pi_groups = [(model.pi, config.pi_lr)] + ([(model.temperature, config.alpha_lr)] if self.learn_alpha else [])
        self.optimizers = {"pi": FlatAdam(pi_groups), "q": adam(model.q, config.q_lr)}
        self.target_entropy = float(-model.act_dim if config.target_entropy is None else config.target_entropy)
        self.stats = Stats(["LossPi", "LossQ", "QVals", "LogPi", "Alpha"])
        # listed after the optimisers exist: building one may replace the parameters (FlatAdam)
        self._sources, self._targets = list(model.q.parameters()), list(model.q_targ.parameters())

    def critic_target(self, batch: Transitions, alpha: torch.Tensor) -> torch.Tensor:
        """The soft target y = r + γ(1 − d)·(min_k Q_targ,k(s′, a′) − α log π(a′|s′)),
        a′ ~ π(·|s′): [B], no gradient."""
        with torch.no_grad():
            next_action, next_log_p = self.model.pi.sample(batch.next_obs)
            next_v = self.model.q_targ(batch.next_obs, next_action).amin(0) - alpha * next_log_p
            return td_target(batch.rew, batch.terminated, next_v, self.config.gamma)

    def loss_q(self, batch: Transitions, alpha: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(critic loss, Q(s, a) [2, B]) against ``critic_target``."""
        target = self.critic_target(batch, alpha)
        q = self.model.q(batch.obs, batch.act)
        return critic_loss(q, target), q

    def update(self, batch: Transitions) -> None:
        """A critic step, an actor and α step (critics frozen), and the polyak update of the
        target critics."""
        alpha = self.model.temperature()
        loss_q, q = self.loss_q(batch, alpha)
        gradient_step(self.optimizers["q"], loss_q)
        with frozen(self.model.q):
            loss_pi, log_p = soft_policy_loss(self.model, batch.obs, alpha)
            loss = loss_pi
            if self.learn_alpha:
                loss = loss + alpha_loss(self.model.temperature.log_alpha, log_p, self.target_entropy)
            gradient_step(self.optimizers["pi"], loss)
        self.update_targets(self.config.polyak)
        self.stats.add(LossPi=loss_pi, LossQ=loss_q, QVals=q.mean(), LogPi=log_p.mean(), Alpha=alpha)

    def update_targets(self, polyak: float) -> None:
        """θ_targ ← ρ·θ_targ + (1 − ρ)·θ for the critics (ρ = ``polyak``)."""
        polyak_update(self._targets, self._sources, polyak)

    def state_dict(self) -> Dict[str, Any]:
        """Nothing beyond the networks and optimisers, which are saved on their own."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Nothing to restore (see ``state_dict``)."""


def sac(env: str, out_dir: Optional[str] = None, **options: Any) -> RunResult:
    """Train SAC on gymnasium environment ``env``.

    Args:
        env: environment id (a bounded 1-D Box action space, Box observations).
        out_dir: run folder (config.json, progress.csv, checkpoint); ``None``: no files.
        **options: ``resume``, ``progress``, ``threads``, ``stop_after``, ``actor_critic`` (as in
            ``registry.train``; tuned presets fill the settings not given) and
            any field of :class:`SACConfig` (and the shared ``OffPolicyConfig`` and
            ``RunConfig``): seed, steps, steps_per_epoch, hidden_sizes, batch_size, replay_size,
            start_steps, update_after, update_every, polyak, gamma, pi_lr, q_lr, alpha,
            alpha_init, alpha_lr, target_entropy, ...

    Returns:
        A ``RunResult`` with the trained model (``model.pi.mode(obs)`` acts) and the progress rows.
    """
    return algorithms.train("sac", env, out_dir, **options)


ALGORITHM = offpolicy.algorithm("sac", SACConfig, SAC)
