"""MLP actor-critics: a Categorical head for Discrete actions, a diagonal Gaussian for Box ones.

Shapes: observations [B, obs_dim]; Discrete actions [B] (int64); Box actions [B, act_dim].
Each policy's ``distribution(obs)`` has batch shape [B] (a Box policy's log-prob sums over its
action dimensions), which is what ``sg.Graph.sample(..., value=actions)`` scores; ``sample`` is
the action with its log-probability (no distribution object), ``act`` the action alone
(through ``forward_fast``), ``numpy_actor`` the rollout's path (the same draws computed in
NumPy) and ``mode`` the deterministic action.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Type, Union

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Distribution

from scgrad.distributions import DiagNormal

from .envs import check_spaces

ACTIVATIONS: Dict[str, Type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU,
                                           "gelu": nn.GELU, "silu": nn.SiLU}
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
# the function each activation module applies, for ``forward_fast`` and (where NumPy has it) ``numpy_forward``
_FUNCTIONS = {nn.Tanh: torch.tanh, nn.ReLU: torch.relu, nn.ELU: F.elu, nn.GELU: F.gelu, nn.SiLU: F.silu}
_NUMPY_FUNCTIONS = {nn.Tanh: np.tanh, nn.ReLU: lambda x: np.maximum(x, 0.0)}
Actor = Callable[[np.ndarray], np.ndarray]


def activation_class(name: str) -> Type[nn.Module]:
    """The ``nn.Module`` class for an activation name; ``ValueError`` listing the known ones."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}'; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def mlp(sizes: Sequence[int], activation: Type[nn.Module] = nn.Tanh,
        output_activation: Type[nn.Module] = nn.Identity, output_gain: float = 1.0) -> nn.Sequential:
    """Linear layers ``sizes[0] -> ... -> sizes[-1]`` with ``activation`` between them.

    Orthogonal initialisation (gain √2 inside, ``output_gain`` on the last layer) and zero biases,
    as in the PPO implementations studied by Engstrom et al. 2020 and Andrychowicz et al. 2021.
    """
    layers: list = []
    for i in range(len(sizes) - 1):
        linear = nn.Linear(sizes[i], sizes[i + 1])
        last = i == len(sizes) - 2
        nn.init.orthogonal_(linear.weight, gain=output_gain if last else math.sqrt(2.0))
        nn.init.zeros_(linear.bias)
        layers += [linear, output_activation() if last else activation()]
    return nn.Sequential(*layers)


def forward_fast(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` for an ``mlp``, calling ``F.linear`` and the activation functions directly.

    A rollout feeds the policy one observation per environment per step, where nn.Module's
    call machinery costs more than the arithmetic: at batch size 1, ``net(x)`` took 1.4× as
    long as this path for a 64-64 policy mean (``numpy_forward``, faster still, is what the
    rollout uses where it applies; all three in ``benchmarks/rl_parts.py``).
    Module hooks are not run; use it for inference (under ``torch.inference_mode``).
    """
    for layer in net:
        if type(layer) is nn.Linear:
            x = F.linear(x, layer.weight, layer.bias)
        elif type(layer) in _FUNCTIONS:
            x = _FUNCTIONS[type(layer)](x)
        elif type(layer) is not nn.Identity:
            x = layer(x)
    return x


def numpy_forward(net: nn.Sequential) -> Optional[Actor]:
    """``net`` as a NumPy function of a float32 batch [B, in] -> [B, out], for an ``mlp`` of
    float32 CPU weights with tanh or ReLU; ``None`` for anything else.

    At batch sizes of a few environments, a NumPy operation costs a fraction of a torch
    dispatch, and a rollout pays for the policy on every environment step. The weights are
    read through NumPy views of the parameters, so in-place optimiser steps show through;
    parameters replaced after the call (e.g. by ``optim.flatten_parameters``) do not: build the
    function again after that. The arithmetic is float32 like torch's, but NumPy may sum in
    another order, so outputs agree with ``net(x)`` to rounding, not bit for bit.
    """
    steps: List[Union[Tuple[np.ndarray, Optional[np.ndarray]], Callable[[np.ndarray], np.ndarray]]] = []
    for layer in net:
        if type(layer) is nn.Linear:
            if layer.weight.device.type != "cpu" or layer.weight.dtype != torch.float32:
                return None
            bias = None if layer.bias is None else layer.bias.detach().numpy()
            steps.append((layer.weight.detach().numpy().T, bias))
        elif type(layer) in _NUMPY_FUNCTIONS:
            steps.append(_NUMPY_FUNCTIONS[type(layer)])
        elif type(layer) is not nn.Identity:
            return None

    def forward(x: np.ndarray) -> np.ndarray:
        for step in steps:
            if isinstance(step, tuple):
                weight_t, bias = step
                x = x @ weight_t if bias is None else x @ weight_t + bias
            else:
                x = step(x)
        return x

    return forward


def torch_actor(policy: nn.Module) -> Actor:
    """``policy.act`` as a function of NumPy observations to NumPy actions, without gradients
    (the rollout's path for policies without a NumPy form)."""
    def actor(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return policy.act(torch.from_numpy(obs)).numpy()

    return actor


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
        log_p = -(0.5 * noise.square() + self.log_std + _HALF_LOG_2PI).sum(-1)
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
        check_spaces(obs_space, act_space)
        act = activation_class(activation)
        obs_dim = int(np.prod(obs_space.shape))
        if isinstance(act_space, gym.spaces.Discrete):
            self.pi: nn.Module = CategoricalPolicy(obs_dim, int(act_space.n), hidden_sizes, act)
        else:
            self.pi = GaussianPolicy(obs_dim, act_space.shape[0], hidden_sizes, act, log_std_init)
        self.v = ValueFunction(obs_dim, hidden_sizes, act)

