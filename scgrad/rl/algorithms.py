"""The algorithms the command line knows, found by name. An algorithm module defines
``ALGORITHM = Algorithm(...)``; adding one is one line in ``_MODULES``."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, List, Type

import gymnasium as gym
from torch import nn

from .config import RunConfig
from .errors import ConfigError

_MODULES = {"vpg": "scgrad.rl.vpg", "trpo": "scgrad.rl.trpo", "ppo": "scgrad.rl.ppo",
            "ddpg": "scgrad.rl.ddpg", "td3": "scgrad.rl.td3", "sac": "scgrad.rl.sac"}


@dataclass(frozen=True)
class Algorithm:
    """What the command line needs from an algorithm.

    Attributes:
        name: its command-line name.
        config: its settings dataclass (every field becomes a ``--flag``).
        train: ``train(config, out_dir=, resume=, progress=, stop_after=)``; runs it.
        make_model: ``make_model(config, obs_space, act_space)``: the module saved as the
            checkpoint's "model", with a ``pi`` that has ``mode(obs)`` and ``sample(obs)``.
    """

    name: str
    config: Type[RunConfig]
    train: Callable[..., Any]
    make_model: Callable[[Any, gym.Space, gym.Space], nn.Module]


def names() -> List[str]:
    """The command-line names of every registered algorithm, sorted."""
    return sorted(_MODULES)


def get(name: str) -> Algorithm:
    """The algorithm called ``name``; ``ConfigError`` listing the known ones otherwise."""
    if name not in _MODULES:
        raise ConfigError(f"unknown algorithm '{name}'; choose one of {', '.join(names())}")
    return importlib.import_module(_MODULES[name]).ALGORITHM
