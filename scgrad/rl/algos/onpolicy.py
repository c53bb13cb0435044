"""The skeleton VPG, TRPO and PPO share: collect a rollout → compute advantages → the
algorithm's update (its losses) → log → checkpoint. Only ``update`` differs between them.

The policy loss of all three is one stochastic computation graph: the action node
a ~ π(·|s), scored at the replayed actions (``value=``), and the cost −(Â + V(s)) credited to
it, with −V(s) as the node's baseline. The score term is then ∇log π(a|s)·(cost − baseline) =
−Â ∇log π(a|s), the policy gradient with the critic as baseline (Schulman et al. 2016); the
estimator on the node (score function, importance-weighted, clipped) is all that tells the
algorithms apart.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Protocol, Tuple, Type

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from scgrad.rl.config import RunConfig, require, require_positive, require_unit_interval
from scgrad.rl.data.batch import Batch, compute_batch
from scgrad.rl.data.rollout_buffer import RolloutBuffer
from scgrad.rl.data.runner import EnvRunner, collect_rollout
from scgrad.rl.envs.make import make_vector_env
from scgrad.rl.envs.normalize import RunningNormalizer
from scgrad.rl.losses import value_loss
from scgrad.rl.nets.actor_critic import ActorCritic
from scgrad.rl.optim import FlatAdam, step
from scgrad.rl.run.checkpoint import seed_everything
from scgrad.rl.run.loop import Training, run


@dataclasses.dataclass
class OnPolicyConfig(RunConfig):
    """Settings shared by the on-policy algorithms (Spinning Up's defaults).

    Attributes:
        steps_per_epoch: environment steps per epoch, all environments together (a multiple of
            num_envs); one policy update per epoch.
        lam: GAE's λ, in [0, 1].
        vf_lr: learning rate of the value function (Adam).
        normalize_advantages: shift and scale advantages to mean 0, std 1 in each epoch.
        max_grad_norm: clip the gradient norm of each optimiser's parameters (PPO: both networks
            together; VPG, TRPO: each network) to this before a step (none: no clipping).
        anneal_lr: decay learning rates linearly to zero over the run.
        log_std_init: initial log standard deviation of a Gaussian policy (Box actions).
        adam_eps: Adam's ε (the optimisers of every network); SB3's PPO uses 1e-5.
    """

    steps_per_epoch: int = 4000
    lam: float = 0.97
    vf_lr: float = 1e-3
    normalize_advantages: bool = True
    max_grad_norm: Optional[float] = None
    anneal_lr: bool = False
    log_std_init: float = -0.5
    adam_eps: float = 1e-8

    def validate(self) -> None:
        super().validate()
        require_positive(self, "steps_per_epoch", "vf_lr")
        require_unit_interval(self, "lam")
        require(self.steps_per_epoch % self.num_envs == 0,
                f"steps_per_epoch ({self.steps_per_epoch}) must be a multiple of num_envs ({self.num_envs})")
        require(self.steps % self.num_envs == 0,
                f"steps ({self.steps}) must be a multiple of num_envs ({self.num_envs}): every step "
                "steps all the environments")
        require(self.max_grad_norm is None or self.max_grad_norm > 0,
                f"max_grad_norm must be > 0 or none, got {self.max_grad_norm}")
        require(self.adam_eps > 0, f"adam_eps must be > 0, got {self.adam_eps}")

    @property
    def epochs(self) -> int:
        """Epochs in the run: the last one is shorter when ``steps_per_epoch`` does not divide ``steps``."""
        return -(-self.steps // self.steps_per_epoch)


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


@dataclasses.dataclass
class RunResult:
    """What training returns.

    Attributes:
        config: the settings it ran with.
        model: the trained actor-critic (``model.pi.mode(obs)`` acts deterministically).
        normalizer: the observation normaliser, or ``None``.
        progress: one dict per epoch, the rows of progress.csv (as strings).
        path: the run folder, or ``None``.
        stopped_early: training stopped before the last epoch (``stop_after``).
    """

    config: OnPolicyConfig
    model: ActorCritic
    normalizer: Optional[RunningNormalizer]
    progress: List[Dict[str, str]]
    path: Optional[str]
    stopped_early: bool = False


def make_model(config: OnPolicyConfig, obs_space: gym.Space, act_space: gym.Space) -> ActorCritic:
    """The actor-critic the settings describe (``Algorithm.make_model``)."""
    return ActorCritic(obs_space, act_space, config.hidden_sizes, config.activation, config.log_std_init)


def train(config: OnPolicyConfig, algorithm: Type[OnPolicyAlgorithm], out_dir: Optional[str] = None,
          resume: bool = False, progress: bool = False, stop_after: Optional[int] = None) -> RunResult:
    """Run ``algorithm`` as configured; see the algorithm modules for the settings.

    Each epoch: collect ``steps_per_epoch`` steps → advantages → ``algorithm.update`` → log
    and checkpoint (``loop.run``).

    Args:
        config: the settings (an algorithm's config dataclass).
        algorithm: the algorithm class (``ppo.PPO``, ...).
        out_dir: run folder for config.json, progress.csv and the checkpoint; ``None``: no files.
        resume: continue the run in ``out_dir`` from its checkpoint (same random streams, so the
            progress equals an uninterrupted run's).
        progress: draw a progress bar on stderr.
        stop_after: stop after this many epochs in total (as if killed right after a
            checkpoint); resume later with ``resume=True``.
    """
    algo = algorithm(config)
    seed_everything(config.seed)
    env = make_vector_env(config.env, config.num_envs)
    obs_dim = int(np.prod(env.single_observation_space.shape))
    normalizer = RunningNormalizer((obs_dim,)) if config.normalize_obs else None
    runner = EnvRunner(env, config.seed, normalizer)
    model = make_model(config, env.single_observation_space, env.single_action_space)
    optimizers = algo.optimizers(model)
    buffer = RolloutBuffer(config.steps_per_epoch // config.num_envs, config.num_envs, obs_dim,
                           *action_layout(env.single_action_space))

    def epoch(i: int, start: int, stop: int) -> Dict[str, float]:
        set_learning_rates(optimizers, 1.0 - start / config.steps if config.anneal_lr else 1.0)
        steps = (stop - start) // config.num_envs
        # a short last epoch (steps_per_epoch does not divide steps) gets a buffer of its own
        rollout = buffer if steps == buffer.steps else RolloutBuffer(steps, config.num_envs, obs_dim,
                                                                     *action_layout(env.single_action_space))
        collect_rollout(runner, model.pi, rollout)
        batch = compute_batch(rollout, model.pi, model.v, config.gamma, config.lam, config.normalize_advantages)
        return algo.update(model, optimizers, batch)

    state = {"model": model, "runner": runner, **{f"optimizer_{k}": o for k, o in optimizers.items()},
             **({"normalizer": normalizer} if normalizer is not None else {})}
    rows, stopped = run(Training(algorithm.name, config, config.steps, config.steps_per_epoch, model,
                                 state, epoch, runner), out_dir, resume, progress, stop_after)
    return RunResult(config, model, normalizer, rows, out_dir, stopped)


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
