"""Pixel actor-critics: a convolutional body shared by a Categorical policy head and a value head.

Observations are channel-first uint8 images [B, C, H, W] (the Atari ids give [B, 4, 84, 84]),
scaled to [0, 1] inside the network, so buffers keep them as uint8 (4× smaller than float32).

Bodies (``BODIES``):

- ``nature``: the DQN Nature network (Mnih et al. 2015) that CleanRL's and SB3's Atari PPO use:
  32 8×8 filters stride 4, 64 4×4 stride 2, 64 3×3 stride 1, 512 units (1.7M parameters at 84×84);
- ``small``: the 2013 DQN network, for CPUs: 16 8×8 stride 4, 32 4×4 stride 2, 256 units
  (0.7M parameters, several times fewer operations per frame).

The body is shared (``shared_body = True``): PPO then trains the whole model with one
optimiser, as CleanRL does; VPG and TRPO, which step the policy and the value separately, need
a model with separate networks. ``pi`` and ``v`` follow the on-policy contract of
``algos.base``; the body's features are computed once for an observation batch that both heads
see in a row (the policy and value losses of a minibatch), until the weights change.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from scgrad.rl.errors import EnvError


def nature_body(channels: int) -> nn.Sequential:
    """The Nature DQN convolutions (features: 512 after the linear layer)."""
    return nn.Sequential(nn.Conv2d(channels, 32, 8, stride=4), nn.ReLU(), nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
                         nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten())


def small_body(channels: int) -> nn.Sequential:
    """The 2013 DQN convolutions (features: 256 after the linear layer)."""
    return nn.Sequential(nn.Conv2d(channels, 16, 8, stride=4), nn.ReLU(), nn.Conv2d(16, 32, 4, stride=2), nn.ReLU(),
                         nn.Flatten())


#: body name -> (convolutions for C channels, width of the linear layer after them)
BODIES: Dict[str, Tuple[Callable[[int], nn.Sequential], int]] = {"nature": (nature_body, 512), "small": (small_body, 256)}


class CNNActorCritic(nn.Module):
    """A shared convolutional body with a policy head (logits [B, n]) and a value head ([B]).

    Args:
        obs_space: channel-first uint8 images [C, H, W].
        act_space: Discrete.
        body: a name from ``BODIES``.
    """

    shared_body = True

    def __init__(self, obs_space: gym.Space, act_space: gym.Space, body: str = "nature") -> None:
        super().__init__()
        if not isinstance(act_space, gym.spaces.Discrete):
            raise EnvError(f"the CNN policies take Discrete actions; got {act_space}")
        if body not in BODIES:
            raise EnvError(f"unknown CNN body '{body}'; choose one of {', '.join(BODIES)}")
        make, width = BODIES[body]
        convolutions = make(obs_space.shape[0])
        with torch.no_grad():
            flat = convolutions(torch.zeros(1, *obs_space.shape)).shape[1]
        self.body = nn.Sequential(*convolutions, nn.Linear(flat, width), nn.ReLU())
        self.policy_head, self.value_head = nn.Linear(width, int(act_space.n)), nn.Linear(width, 1)
        for layer in self.body:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.orthogonal_(layer.weight, np.sqrt(2))
                nn.init.zeros_(layer.bias)
        for head, gain in ((self.policy_head, 0.01), (self.value_head, 1.0)):  # CleanRL's initialisation
            nn.init.orthogonal_(head.weight, gain)
            nn.init.zeros_(head.bias)
        self.pi, self.v = _Policy(self), _Value(self)
        self._cached: Optional[Tuple[torch.Tensor, int, bool, torch.Tensor]] = None

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """Body features [B, width] of uint8 images [B, C, H, W]. Reused when called again with
        the same tensor, the same weights (their version counter) and the same grad mode."""
        key = (self.body[0].weight._version, torch.is_grad_enabled())
        if self._cached is not None and self._cached[0] is obs and self._cached[1:3] == key:
            return self._cached[3]
        out = self.body(obs.float() / 255.0)
        self._cached = (obs, *key, out)
        return out

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        """Action logits [B, n]."""
        return self.policy_head(self.features(obs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(s) [B]."""
        return self.value_head(self.features(obs)).squeeze(-1)


class _Policy:
    """``model.pi`` of the on-policy contract (not a module: the model holds the weights)."""

    def __init__(self, model: CNNActorCritic) -> None:
        self.model = model

    def distribution(self, obs: torch.Tensor) -> Categorical:
        """π(·|s), batch shape [B]."""
        return Categorical(logits=self.model.logits(obs))

    def sample(self, obs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(actions [B], log-probabilities [B])."""
        dist = self.distribution(obs)
        action = dist.sample()
        return action, dist.log_prob(action)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Sampled actions [B] (the rollout's call)."""
        return self.distribution(obs).sample()

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        """The most probable actions [B]."""
        return self.model.logits(obs).argmax(-1)


class _Value:
    """``model.v`` of the on-policy contract: V(s) [B]."""

    def __init__(self, model: CNNActorCritic) -> None:
        self.model = model

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        return self.model.value(obs)
