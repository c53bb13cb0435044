"""The on-policy family, VPG, TRPO and PPO: their shared settings and their epoch (collect a
rollout → compute advantages → the algorithm's update); the rest of the run is the skeleton
every algorithm shares (``base.train``). Only ``update`` differs between the three.

The policy loss (``losses.policy_loss``) of all three is one stochastic computation graph: the action node
a ~ π(·|s), scored at the replayed actions (``value=``), and the cost −(Â + V(s)) credited to
it, with −V(s) as the node's baseline. The score term is then ∇log π(a|s)·(cost − baseline) =
−Â ∇log π(a|s), the policy gradient with the critic as baseline (Schulman et al. 2016); the
estimator on the node (score function, importance-weighted, clipped) is all that tells the
algorithms apart.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Dict, Optional, Protocol, Tuple, Type

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from scgrad.rl import distributed
from scgrad.rl.algos.base import Algorithm
from scgrad.rl.config import RunConfig, require, require_positive, require_unit_interval
from scgrad.rl.data.batch import Batch, compute_batch
from scgrad.rl.data.rollout_buffer import RolloutBuffer
from scgrad.rl.data.runner import EnvRunner, collect_rollout
from scgrad.rl.losses import value_loss
from scgrad.rl.envs.make import is_image
from scgrad.rl.nets.actor_critic import ActorCritic
from scgrad.rl.nets.cnn import BODIES, CNNActorCritic
from scgrad.rl.optim import FlatAdam, step


@dataclasses.dataclass
class OnPolicyConfig(RunConfig):
    """Settings shared by the on-policy algorithms (Spinning Up's defaults).

    Attributes:
        lam: GAE's λ, in [0, 1].
        vf_lr: learning rate of the value function (Adam).
        normalize_advantages: shift and scale advantages to mean 0, std 1 in each epoch.
        max_grad_norm: clip the gradient norm of each optimiser's parameters (PPO: both networks
            together; VPG, TRPO: each network) to this before a step (none: no clipping).
        anneal_lr: decay learning rates linearly to zero over the run.
        log_std_init: initial log standard deviation of a Gaussian policy (Box actions).
        adam_eps: Adam's ε (the optimisers of every network); SB3's PPO uses 1e-5.
        cnn: the convolutional body of the default model for image observations: nature (the
            DQN Nature network) or small (the 2013 DQN network, for CPUs); see ``nets.cnn``.
        clip_rewards: train on the sign of each reward (−1, 0, 1), as Atari agents do; the
            returns reported (progress.csv, eval) stay the environment's own.
        device: where the networks run and learn: cpu, cuda (an error if CUDA is missing) or
            auto (cuda when present). Environments and buffers stay on the CPU.
    """

    lam: float = 0.97
    vf_lr: float = 1e-3
    normalize_advantages: bool = True
    max_grad_norm: Optional[float] = None
    anneal_lr: bool = False
    log_std_init: float = -0.5
    adam_eps: float = 1e-8
    cnn: str = "nature"
    clip_rewards: bool = False
    device: str = "cpu"

    def validate(self) -> None:
        super().validate()
        require_positive(self, "vf_lr")
        require(self.cnn in BODIES, f"cnn must be one of {', '.join(BODIES)}, got '{self.cnn}'")
        require(self.device in ("cpu", "cuda", "auto"), f"device must be cpu, cuda or auto, got '{self.device}'")
        require_unit_interval(self, "lam")
        require(self.max_grad_norm is None or self.max_grad_norm > 0,
                f"max_grad_norm must be > 0 or none, got {self.max_grad_norm}")
        require(self.adam_eps > 0, f"adam_eps must be > 0, got {self.adam_eps}")


def fit_value(value: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch, iters: int,
              max_grad_norm: Optional[float]) -> None:
    """``iters`` full-batch gradient steps on the value loss (Spinning Up's train_v_iters)."""
    for _ in range(iters):
        optimizer.zero_grad()
        value_loss(value, batch).backward()
        step([optimizer], max_grad_norm)


def adam(module: nn.Module, lr: float, eps: float = 1e-8) -> FlatAdam:
    """Adam for one network, its parameters flattened (``optim.FlatAdam``: on these small
    networks fused Adam over the separate tensors is slower, see ``benchmarks/rl_parts.py``)."""
    return FlatAdam([(module, lr)], eps=eps)


# ------------------------------------------------------------------ the skeleton
class OnPolicyAlgorithm(Protocol):
    """What an on-policy algorithm supplies: its optimisers and its update."""

    name: str

    def __init__(self, config: Any) -> None: ...

    def optimizers(self, model: ActorCritic) -> Dict[str, torch.optim.Optimizer]:
        """The optimisers by name (saved with checkpoints under those names)."""
        ...

    def update(self, model: ActorCritic, optimizers: Dict[str, torch.optim.Optimizer],
               batch: Batch) -> Dict[str, float]:
        """One epoch's update; returns at least LossPi, LossV, KL, Entropy (before/after as in
        Spinning Up: losses and entropy before the update, KL after it)."""
        ...


def make_model(config: OnPolicyConfig, obs_space: gym.Space, act_space: gym.Space) -> nn.Module:
    """The default model (``Algorithm.make_model``): for images the CNN actor-critic with the
    ``cnn`` body, else the MLP actor-critic the settings describe."""
    if is_image(obs_space):
        return CNNActorCritic(obs_space, act_space, config.cnn)
    return ActorCritic(obs_space, act_space, config.hidden_sizes, config.activation, config.log_std_init)


def require_separate_networks(model: nn.Module, algo: str) -> None:
    """``ConfigError`` for a model whose policy and critic share a body (VPG and TRPO step them apart)."""
    require(not getattr(model, "shared_body", False),
            f"{algo} steps the policy and the value network separately, and this model's share a body "
            "(the CNN actor-critic does): train images with ppo, or pass actor_critic= with separate networks")


def device_of(config: OnPolicyConfig) -> torch.device:
    """The device the ``device`` setting names; ``ConfigError`` for cuda without CUDA."""
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    require(config.device != "cuda" or torch.cuda.is_available(),
            "device is cuda, but this torch sees no CUDA device; use cpu or auto")
    return torch.device(config.device)


class OnPolicyLearner:
    """The on-policy epoch (``base.Learner``): collect ``steps_per_epoch`` steps with π →
    advantages (``data.batch.compute_batch``) → the algorithm's ``update``.

    Args:
        update_class: the algorithm's class (``ppo.PPO``, ...), built with the settings.
        config: the settings.
        model: the actor-critic (``pi``, ``v``; see ``base``).
        runner: the env runner.
    """

    def __init__(self, update_class: Type[OnPolicyAlgorithm], config: OnPolicyConfig, model: nn.Module,
                 runner: EnvRunner) -> None:
        self.config, self.model, self.runner = config, model, runner
        self.device = device_of(config)
        model.to(self.device)  # before the optimisers flatten the parameters
        self.algo = update_class(config)
        self.optimizers = self.algo.optimizers(model)
        self.state = {f"optimizer_{k}": o for k, o in self.optimizers.items()}
        space = runner.env.single_observation_space
        # images stay uint8 [C, H, W] (4x smaller), feature vectors are flattened float32
        self.obs_layout = ((tuple(space.shape), torch.uint8) if runner.images
                           else (int(np.prod(space.shape)), torch.float32))
        self.buffer = self._buffer(config.steps_per_epoch // config.num_envs)

    def _buffer(self, steps: int) -> RolloutBuffer:
        (shape, dtype), space = self.obs_layout, self.runner.env.single_action_space
        return RolloutBuffer(steps, self.runner.num_envs, shape, *action_layout(space), obs_dtype=dtype)

    def epoch(self, i: int, start: int, stop: int) -> Dict[str, float]:
        """Collect, compute the batch and update (``base.Learner.epoch``)."""
        c = self.config
        set_learning_rates(self.optimizers, 1.0 - start / c.steps if c.anneal_lr else 1.0)
        steps = (stop - start) // c.num_envs
        # a short last epoch (steps_per_epoch does not divide steps) gets a buffer of its own
        rollout = self.buffer if steps == self.buffer.steps else self._buffer(steps)
        collect_rollout(self.runner, self.model.pi, rollout, self.device)
        if self.runner.normalizer is not None and distributed.world().size > 1:
            # every process normalised by what it saw; from here on all use what all saw
            self.runner.normalizer.share(distributed.gather(self.runner.normalizer.pending))
        if c.clip_rewards:  # the runner has already counted the true rewards into the episode returns
            rollout.rew.sign_()
        if self.device.type != "cpu":
            rollout = rollout.to(self.device)
        batch = compute_batch(rollout, self.model.pi, self.model.v, c.gamma, c.lam, c.normalize_advantages)
        return self.algo.update(self.model, self.optimizers, batch)


def algorithm(name: str, config: Type[OnPolicyConfig], update_class: Type[OnPolicyAlgorithm]) -> Algorithm:
    """The registry entry of an on-policy algorithm: the shared skeleton with its update."""
    return Algorithm(name, config, make_model, functools.partial(OnPolicyLearner, update_class), data_parallel=True)


def set_learning_rates(optimizers: Dict[str, torch.optim.Optimizer], fraction: float) -> None:
    """Set every group's lr to ``fraction`` of its ``initial_lr``."""
    for optimizer in optimizers.values():
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * fraction


def action_layout(space: gym.Space) -> Tuple[Tuple[int, ...], torch.dtype]:
    """(shape of one action, dtype) as the policies produce them."""
    if isinstance(space, gym.spaces.Discrete):
        return (), torch.int64
    return tuple(space.shape), torch.float32
