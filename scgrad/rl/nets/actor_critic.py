"""MLP actor-critics: a Categorical head for Discrete actions, a diagonal Gaussian for Box ones.

Shapes: observations [B, obs_dim]; Discrete actions [B] (int64); Box actions [B, act_dim].
Each policy's ``distribution(obs)`` has batch shape [B] (a Box policy's log-prob sums over its
action dimensions), which is what ``sg.Graph.sample(..., value=actions)`` scores; ``sample`` is
the action with its log-probability (no distribution object), ``act`` the action alone
(through ``forward_fast``), ``numpy_actor`` the rollout's path (the same draws computed in
NumPy) and ``mode`` the deterministic action.
"""
from __future__ import annotations

from typing import Sequence, Tuple, Type

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Distribution

from scgrad.distributions import DiagNormal
from scgrad.rl.envs.make import check_spaces
from scgrad.rl.nets.mlp import HALF_LOG_2PI, Actor, activation_class, forward_fast, mlp, numpy_forward, torch_actor


class CategoricalPolicy(nn.Module):
    """π(a|s) = Categorical(logits = MLP(s)) over ``n`` actions."""

    def __init__(self, obs_dim: int, n: int, hidden: Sequence[int], activation: Type[nn.Module]) -> None:
        super().__init__()
        self.logits = mlp([obs_dim, *hidden, n], activation, output_gain=0.01)

    def distribution(self, obs: torch.Tensor) -> Distribution:
        """Batch shape [B] for obs [B, obs_dim]. Arguments are not validated: the logits
        come from the network, and the check would cost a host sync per call."""
        return Categorical(logits=self.logits(obs), validate_args=False)

    def sample(self, obs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(action [B] int64, log π(action|obs) [B]), drawn with torch's global generator."""
        log_p = torch.log_softmax(self.logits(obs), dim=-1)
        # Gumbel-max: argmax(log p − log E), E ~ Exp(1); twice as fast as torch.multinomial
        action = (log_p - torch.empty_like(log_p).exponential_().log()).argmax(-1, keepdim=True)
        return action.squeeze(-1), log_p.gather(-1, action).squeeze(-1)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """An action [B] (int64) drawn like ``sample``'s, without its log-probability;
        the rollout's fast path."""
        logits = forward_fast(self.logits, obs)  # Gumbel-max needs no normalisation
        return (logits - torch.empty_like(logits).exponential_().log()).argmax(-1)

    def numpy_actor(self) -> Actor:
        """obs [B, obs_dim] (float32 ndarray) -> actions [B] (int64 ndarray), drawn like ``act``'s
        (the same torch generator draws) but computed in NumPy (``numpy_forward``)."""
        logits = numpy_forward(self.logits)
        if logits is None:
            return torch_actor(self)

        def actor(obs: np.ndarray) -> np.ndarray:
            z = logits(obs)
            return (z - np.log(torch.empty(z.shape).exponential_().numpy())).argmax(-1)

        return actor

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        """The most probable action, [B]."""
        return self.logits(obs).argmax(-1)


class GaussianPolicy(nn.Module):
    """π(a|s) = N(MLP(s), diag(exp(2·log_std))), log_std a state-independent parameter."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], activation: Type[nn.Module],
                 log_std: float = -0.5) -> None:
        super().__init__()
        self.mean = mlp([obs_dim, *hidden, act_dim], activation, output_gain=0.01)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std)))

    def distribution(self, obs: torch.Tensor) -> Distribution:
        """A ``DiagNormal`` (the same distribution as ``Independent(Normal(mean, σ), 1)``, with
        a cheaper log_prob): batch shape [B], event shape [act_dim] for obs [B, obs_dim].
        Arguments are not validated: they come from the network, and the check would cost host
        syncs per call."""
        # a copy of log σ, as Normal's exp made one: the distribution is a snapshot, which a
        # later in-place step of the parameter must not change (TRPO keeps π_old across steps)
        return DiagNormal(self.mean(obs), self.log_std.clone(), validate_args=False)

    def sample(self, obs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(action [B, act_dim], log π(action|obs) [B]), drawn with torch's global generator."""
        mean = self.mean(obs)
        noise = torch.randn_like(mean)
        action = mean + noise * self.log_std.exp()
        log_p = -(0.5 * noise.square() + self.log_std + HALF_LOG_2PI).sum(-1)
        return action, log_p

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """An action [B, act_dim] drawn like ``sample``'s, without its log-probability;
        the rollout's fast path."""
        mean = forward_fast(self.mean, obs)
        return mean + torch.randn_like(mean) * self.log_std.exp()

    def numpy_actor(self) -> Actor:
        """obs [B, obs_dim] (float32 ndarray) -> actions [B, act_dim] (float32 ndarray), drawn like
        ``act``'s (the same torch generator draws) but computed in NumPy (``numpy_forward``)."""
        mean = numpy_forward(self.mean)
        if mean is None or self.log_std.device.type != "cpu":
            return torch_actor(self)
        log_std = self.log_std.detach().numpy()

        def actor(obs: np.ndarray) -> np.ndarray:
            m = mean(obs)
            return m + torch.randn(m.shape).numpy() * np.exp(log_std)

        return actor

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        """The mean action, [B, act_dim]."""
        return self.mean(obs)


class ValueFunction(nn.Module):
    """V(s) = MLP(s), returned with shape [B]."""

    def __init__(self, obs_dim: int, hidden: Sequence[int], activation: Type[nn.Module]) -> None:
        super().__init__()
        self.net = mlp([obs_dim, *hidden, 1], activation)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)


class ActorCritic(nn.Module):
    """A policy ``pi`` and a separate value function ``v`` (no shared layers).

    Args:
        obs_space: a Box; observations are flattened.
        act_space: Discrete (Categorical head) or 1-D Box (diagonal Gaussian head).
        hidden_sizes: widths of the hidden layers of both networks.
        activation: a name from ``ACTIVATIONS``.
        log_std_init: the Gaussian head's initial log standard deviation (Box actions).
    """

    def __init__(self, obs_space: gym.Space, act_space: gym.Space, hidden_sizes: Sequence[int] = (64, 64),
                 activation: str = "tanh", log_std_init: float = -0.5) -> None:
        super().__init__()
        check_spaces(obs_space, act_space, images=False)
        act = activation_class(activation)
        obs_dim = int(np.prod(obs_space.shape))
        if isinstance(act_space, gym.spaces.Discrete):
            self.pi: nn.Module = CategoricalPolicy(obs_dim, int(act_space.n), hidden_sizes, act)
        else:
            self.pi = GaussianPolicy(obs_dim, act_space.shape[0], hidden_sizes, act, log_std_init)
        self.v = ValueFunction(obs_dim, hidden_sizes, act)

