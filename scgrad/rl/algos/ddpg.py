"""Deep Deterministic Policy Gradient (Lillicrap et al. 2016), on ``scgrad``.

The actor's loss is a graph with a deterministic action node, a = μ(s) recorded as
``Delta(μ(s))`` with the ``Reparam`` estimator, and the cost −Q(s, a): its gradient is
−∇_a Q(s, a)·∇_θ μ(s), Silver et al.'s deterministic policy gradient, taken pathwise through
the learned critic. The critic regresses onto r + γ(1 − terminated)·Q_targ(s′, μ_targ(s′)).
TD3 (``td3.py``) is this class with twin critics, target smoothing and delayed actor steps.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple

import gymnasium as gym
import torch
from torch import nn

import scgrad as sg
from scgrad.distributions import Delta
from scgrad.estimators import Reparam

from scgrad.rl.algos import offpolicy, registry as algorithms
from scgrad.rl.algos.base import RunResult
from scgrad.rl.algos.offpolicy import (OffPolicyConfig, Stats, critic_loss, frozen, gradient_step, polyak_update,
                                       td_target)
from scgrad.rl.algos.onpolicy import adam
from scgrad.rl.config import require
from scgrad.rl.data.replay import Transitions
from scgrad.rl.nets.offpolicy import DeterministicActorCritic, EnsembleQ


@dataclasses.dataclass
class DDPGConfig(OffPolicyConfig):
    """DDPG settings; defaults are Spinning Up's.

    Attributes:
        act_noise: standard deviation of the Gaussian noise added to μ(s) while exploring, in
            the policy's [−1, 1] action units (0.1: a tenth of each action's half-range).
    """

    act_noise: float = 0.1

    def validate(self) -> None:
        super().validate()
        require(self.act_noise >= 0, f"act_noise must be >= 0, got {self.act_noise}")


def deterministic_policy_loss(pi: nn.Module, q: EnsembleQ, obs: torch.Tensor) -> torch.Tensor:
    """The actor's surrogate: mean over the batch of −Q_1(s, μ(s)), as an ``sg.Graph``.

    obs: [B, obs_dim]. Only the first critic is used (TD3 trains its actor on Q_1). The graph
    is not entered (no ``with``): with one node and one cost the untracked rule, crediting the
    cost to every earlier node, is exact and skips data-flow tracking in the inner loop.
    """
    graph = sg.Graph(check_finite=False)  # the RL loop has its own NaN guard
    action = graph.sample("action", Delta(pi(obs), event_dim=1, validate_args=False), estimator=Reparam())
    graph.cost("neg_q", -q(obs, action, members=None if q.n == 1 else slice(0, 1))[0])
    return graph.surrogate()


class DDPG:
    """DDPG's gradient step (the rest is ``offpolicy.OffPolicyLearner`` and ``base.train``); TD3 overrides the class
    attributes and ``target_action``.

    Args:
        config: the settings.
        model: a ``DeterministicActorCritic`` from ``make_model``.
    """

    name = "ddpg"
    Config = DDPGConfig
    n_critics = 1

    @classmethod
    def make_model(cls, config: DDPGConfig, obs_space: gym.Space, act_space: gym.Space) -> DeterministicActorCritic:
        """The actor, the critic(s) and their targets the settings describe."""
        return DeterministicActorCritic(obs_space, act_space, config.hidden_sizes, config.activation,
                                        cls.n_critics, config.act_noise)

    def __init__(self, config: DDPGConfig, model: DeterministicActorCritic) -> None:
        self.config, self.model = config, model
        self.optimizers = {"pi": adam(model.pi, config.pi_lr), "q": adam(model.q, config.q_lr)}
        self.stats = Stats(["LossPi", "LossQ", "QVals"])
        self.updates = 0  # gradient steps taken, for TD3's delayed actor steps
        # listed after the optimisers exist: building one may replace the parameters (FlatAdam)
        self._sources = [*model.pi.parameters(), *model.q.parameters()]
        self._targets = [*model.pi_targ.parameters(), *model.q_targ.parameters()]

    @property
    def policy_delay(self) -> int:
        """Critic steps per actor step."""
        return 1

    def target_action(self, next_obs: torch.Tensor) -> torch.Tensor:
        """The action the target bootstraps with at s′: μ_targ(s′), [B, A]."""
        return self.model.pi_targ(next_obs)

    def critic_target(self, batch: Transitions) -> torch.Tensor:
        """y = r + γ(1 − d)·min_k Q_targ,k(s′, a′), a′ = ``target_action(s′)``: [B], no gradient."""
        with torch.no_grad():
            next_q = self.model.q_targ(batch.next_obs, self.target_action(batch.next_obs)).amin(0)
            return td_target(batch.rew, batch.terminated, next_q, self.config.gamma)

    def loss_q(self, batch: Transitions) -> Tuple[torch.Tensor, torch.Tensor]:
        """(critic loss, Q(s, a) [n, B]) against ``critic_target``."""
        target = self.critic_target(batch)
        q = self.model.q(batch.obs, batch.act)
        return critic_loss(q, target), q

    def update(self, batch: Transitions) -> None:
        """A critic step; every ``policy_delay``-th call also an actor step and the polyak
        update of both targets."""
        loss_q, q = self.loss_q(batch)
        gradient_step(self.optimizers["q"], loss_q)
        self.stats.add(LossQ=loss_q, QVals=q.mean())
        if self.updates % self.policy_delay == 0:
            with frozen(self.model.q):
                loss_pi = deterministic_policy_loss(self.model.pi, self.model.q, batch.obs)
                gradient_step(self.optimizers["pi"], loss_pi)
            self.stats.add(LossPi=loss_pi)
            self.update_targets(self.config.polyak)
        self.updates += 1

    def update_targets(self, polyak: float) -> None:
        """θ_targ ← ρ·θ_targ + (1 − ρ)·θ for the actor and the critics (ρ = ``polyak``)."""
        polyak_update(self._targets, self._sources, polyak)

    def state_dict(self) -> Dict[str, Any]:
        """The gradient-step count (the networks and optimisers are saved on their own)."""
        return {"updates": self.updates}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore ``state_dict``'s output."""
        self.updates = int(state["updates"])


def ddpg(env: str, out_dir: Optional[str] = None, **options: Any) -> RunResult:
    """Train DDPG on gymnasium environment ``env``.

    Args:
        env: environment id (a bounded 1-D Box action space, Box observations).
        out_dir: run folder (config.json, progress.csv, checkpoint); ``None``: no files.
        **options: ``resume``, ``progress``, ``threads``, ``stop_after``, ``actor_critic`` (as in
            ``registry.train``; tuned presets fill the settings not given) and
            any field of :class:`DDPGConfig` (and the shared ``OffPolicyConfig`` and
            ``RunConfig``): seed, steps, steps_per_epoch, hidden_sizes, batch_size, replay_size,
            start_steps, update_after, update_every, polyak, gamma, pi_lr, q_lr, act_noise, ...

    Returns:
        A ``RunResult`` with the trained model (``model.pi.mode(obs)`` acts) and the progress rows.
    """
    return algorithms.train("ddpg", env, out_dir, **options)


ALGORITHM = offpolicy.algorithm("ddpg", DDPGConfig, DDPG)
