"""Networks of the off-policy algorithms: a deterministic actor (DDPG, TD3), a tanh-Gaussian
actor (SAC), and an ensemble of Q-functions evaluated in one batched call.

Shapes: observations [B, obs_dim]; actions [B, A] in the policy's units [−1, 1] (the env's
``ActionAdapter`` rescales them to the Box bounds); an ensemble of n critics returns [n, B].
Every actor has ``mode(obs)`` (the deterministic action), ``sample(obs)`` (an exploring
action with a log-density) and ``act(obs)`` (the exploring action alone: the collection's
fast path).
"""
from __future__ import annotations

import copy
import math
from typing import List, Optional, Sequence, Tuple, Type

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from scgrad.distributions import TanhNormal

from scgrad.rl.envs.make import check_spaces
from scgrad.rl.errors import EnvError
from scgrad.rl.nets.mlp import activation_class, forward_fast, mlp

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SAC's clamp on log σ (Haarnoja et al.'s code; Spinning Up)


class DeterministicActor(nn.Module):
    """μ(s) = tanh(MLP(s)) in [−1, 1]^A; explores with Gaussian noise of std ``noise``.

    The last layer starts small (``mlp``'s orthogonal init with gain 0.01), so μ starts near 0.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], activation: Type[nn.Module],
                 noise: float = 0.1) -> None:
        super().__init__()
        self.net = mlp([obs_dim, *hidden, act_dim], activation, nn.Tanh, output_gain=0.01)
        self.noise = noise

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """μ(obs), [B, A]."""
        # no module hooks are used here: the direct path skips nn.Module's call machinery
        return forward_fast(self.net, obs)

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        """μ(obs), [B, A]."""
        return forward_fast(self.net, obs)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """clip(μ(obs) + noise·ε, −1, 1), ε ~ N(0, I): [B, A], torch's global generator."""
        mu = forward_fast(self.net, obs)
        return (mu + self.noise * torch.randn_like(mu)).clamp_(-1.0, 1.0)

    def sample(self, obs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(``act``'s action [B, A], the Gaussian noise's log-density before clipping [B]; 0
        when ``noise`` is 0, a point mass)."""
        mu = forward_fast(self.net, obs)
        if self.noise == 0:
            return mu, torch.zeros(mu.shape[:-1])
        eps = torch.randn_like(mu)
        log_p = -(0.5 * eps.square() + math.log(self.noise) + _HALF_LOG_2PI).sum(-1)
        return (mu + self.noise * eps).clamp_(-1.0, 1.0), log_p


class SquashedGaussianActor(nn.Module):
    """π(·|s) = TanhNormal(m(s), exp(clamp(ℓ(s), −20, 2))): one MLP outputs [m, ℓ] (2A values);
    its last layer starts small, so π starts near tanh(N(0, I))."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], activation: Type[nn.Module]) -> None:
        super().__init__()
        self.net = mlp([obs_dim, *hidden, 2 * act_dim], activation, output_gain=0.01)

    def _params(self, obs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = forward_fast(self.net, obs).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()

    def distribution(self, obs: torch.Tensor) -> TanhNormal:
        """π(·|obs): batch shape [B], event shape [A]."""
        return TanhNormal(*self._params(obs), validate_args=False)

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        """tanh(m(obs)), [B, A]."""
        mean, _ = forward_fast(self.net, obs).chunk(2, dim=-1)
        return torch.tanh(mean)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """a ~ π(·|obs), [B, A] (no log-probability)."""
        mean, std = self._params(obs)
        return torch.tanh(mean + std * torch.randn_like(mean))

    def sample(self, obs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(a ~ π(·|obs) [B, A], reparameterized; log π(a|obs) [B])."""
        dist = self.distribution(obs)
        action = dist.rsample()
        return action, dist.log_prob(action)


class EnsembleQ(nn.Module):
    """n critics Q_k(s, a) = MLP_k([s, a]) evaluated together.

    Layer l of all members is one weight tensor [n, in, out] and one bias [n, 1, out], and the
    forward pass is one batched matrix product per layer (``torch.baddbmm``): TD3's and SAC's
    twin critics cost one call and one autograd node per layer, not one per member. (The
    arithmetic itself takes about as long as n separate ``nn.Linear`` products on a CPU.)
    Members start as independent ``networks.mlp`` initialisations (orthogonal, zero biases).

    Args:
        obs_dim, act_dim: input sizes; the input is the concatenation [s, a].
        hidden: hidden layer widths (at least one layer).
        activation: the hidden activation's module class.
        n: number of members.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], activation: Type[nn.Module],
                 n: int = 2) -> None:
        super().__init__()
        members = [mlp([obs_dim + act_dim, *hidden, 1], activation) for _ in range(n)]
        self._stack(members, activation)

    @classmethod
    def from_mlps(cls, members: Sequence[nn.Sequential]) -> "EnsembleQ":
        """An ensemble holding copies of the weights of ``networks.mlp`` critics with one
        output each (all of the same shape and activation)."""
        ensemble = cls.__new__(cls)
        nn.Module.__init__(ensemble)
        ensemble._stack(list(members), type(members[0][1]))
        return ensemble

    def _stack(self, members: Sequence[nn.Sequential], activation: Type[nn.Module]) -> None:
        layers = [[m for m in member if isinstance(m, nn.Linear)] for member in members]
        self.n, self.depth = len(members), len(layers[0])
        # plain attributes, not a ParameterList: the forward pass reads them without its indexing
        for i in range(self.depth):
            weight = torch.stack([ls[i].weight.detach().T for ls in layers]).contiguous()
            bias = torch.stack([ls[i].bias.detach()[None] for ls in layers]).contiguous()
            setattr(self, f"weight{i}", nn.Parameter(weight))
            setattr(self, f"bias{i}", nn.Parameter(bias))
        self.activation = activation()

    @property
    def weights(self) -> List[torch.Tensor]:
        """Each layer's weights of all members, [n, in, out]."""
        return [getattr(self, f"weight{i}") for i in range(self.depth)]

    @property
    def biases(self) -> List[torch.Tensor]:
        """Each layer's biases of all members, [n, 1, out]."""
        return [getattr(self, f"bias{i}") for i in range(self.depth)]

    def forward(self, obs: torch.Tensor, act: torch.Tensor, members: Optional[slice] = None) -> torch.Tensor:
        """Q_k(obs, act) for obs [B, obs_dim], act [B, A] and the members ``members`` selects
        (default: all, without slicing, which would add autograd nodes): [n, B]."""
        x = torch.cat([obs, act], dim=-1)
        weights, biases = self.weights, self.biases
        if members is not None:
            weights, biases = [w[members] for w in weights], [b[members] for b in biases]
        # the first layer's input is shared by the members: broadcast it (a view, no copy)
        h = torch.baddbmm(biases[0], x.expand(weights[0].shape[0], *x.shape), weights[0])
        for w, b in zip(weights[1:], biases[1:]):
            h = torch.baddbmm(b, self.activation.forward(h), w)
        return h.squeeze(-1)


def box_dims(obs_space: gym.Space, act_space: gym.Space) -> Tuple[int, int]:
    """(obs_dim, act_dim) for a Box observation and a bounded 1-D Box action space; an
    ``EnvError`` otherwise (these actors are tanh-squashed, so every bound must be finite)."""
    check_spaces(obs_space, act_space, images=False)
    if not isinstance(act_space, gym.spaces.Box):
        raise EnvError(f"action space {act_space} is not supported by the off-policy algorithms "
                       "(they need a Box)")
    if not (np.isfinite(act_space.low).all() and np.isfinite(act_space.high).all()):
        raise EnvError(f"action space {act_space} has infinite bounds; the off-policy actors act "
                       "in [-1, 1] rescaled to the bounds, so they must be finite")
    return int(np.prod(obs_space.shape)), int(act_space.shape[0])


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` for a target network: no gradients, updated only by polyak."""
    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target


class DeterministicActorCritic(nn.Module):
    """DDPG's and TD3's model: actor ``pi``, critics ``q`` (n members) and their polyak-averaged
    targets ``pi_targ``, ``q_targ`` (saved with the model, so a resumed run continues them)."""

    def __init__(self, obs_space: gym.Space, act_space: gym.Space, hidden_sizes: Sequence[int] = (256, 256),
                 activation: str = "relu", n_critics: int = 1, act_noise: float = 0.1) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim = box_dims(obs_space, act_space)
        act = activation_class(activation)
        self.pi = DeterministicActor(obs_dim, act_dim, hidden_sizes, act, act_noise)
        self.q = EnsembleQ(obs_dim, act_dim, hidden_sizes, act, n_critics)
        self.pi_targ, self.q_targ = frozen_copy(self.pi), frozen_copy(self.q)


class Temperature(nn.Module):
    """SAC's entropy weight α = exp(log_alpha), a learned scalar (or a fixed one)."""

    def __init__(self, alpha: float, learned: bool) -> None:
        super().__init__()
        self.log_alpha = nn.Parameter(torch.tensor(math.log(alpha)), requires_grad=learned)

    def forward(self) -> torch.Tensor:
        """α, detached (a 0-dim tensor: no host sync to read it in the update)."""
        return self.log_alpha.detach().exp()


class SoftActorCritic(nn.Module):
    """SAC's model: actor ``pi``, twin critics ``q``, their target ``q_targ`` and the
    ``temperature`` α."""

    def __init__(self, obs_space: gym.Space, act_space: gym.Space, hidden_sizes: Sequence[int] = (256, 256),
                 activation: str = "relu", alpha: float = 1.0, learn_alpha: bool = True) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim = box_dims(obs_space, act_space)
        act = activation_class(activation)
        self.pi = SquashedGaussianActor(obs_dim, act_dim, hidden_sizes, act)
        self.q = EnsembleQ(obs_dim, act_dim, hidden_sizes, act, 2)
        self.q_targ = frozen_copy(self.q)
        self.temperature = Temperature(alpha, learn_alpha)
