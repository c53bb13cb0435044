"""One training skeleton for all six algorithms, and the contract of a model passed in.

``train`` does what every algorithm does — seed, make the vector environment, build the model
(the algorithm's default or the user's ``actor_critic``), the env runner, the algorithm's
``Learner``, then hand the epochs to the run loop (``run.loop``: run folder, checkpoints,
exact resume, progress) — and an algorithm supplies only its ``Learner``: the objects a
checkpoint must keep and the work of one epoch. The two families' learners live in
``onpolicy`` (collect a rollout → advantages → the update) and ``offpolicy`` (step → replay →
gradient steps → test episodes).

**A model of your own** (``ppo(env, actor_critic=factory)``, likewise for every algorithm):
``factory(obs_space, act_space) -> nn.Module``, called once per run with the single
environment's spaces. The module is saved as the checkpoint's "model" and must offer what the
algorithm's family uses (B: a batch of observations, obs [B, *obs_space.shape] float32):

- on-policy (VPG, TRPO, PPO): a module ``pi`` with ``distribution(obs)`` → a
  ``torch.distributions`` object of batch shape [B] whose ``log_prob(actions)`` is [B] (actions
  [B] int64 for Discrete, [B, A] float32 for Box), ``act(obs)`` → sampled actions (the
  rollout's call; a ``numpy_actor()`` is used instead where present), ``sample(obs)`` →
  (actions, log-probs [B]) and ``mode(obs)`` → deterministic actions; and a module ``v`` with
  ``v(obs)`` → values [B]. ``pi`` and ``v`` must not share parameters: each has its own
  optimiser (TRPO steps ``pi`` by its own rule). ``nets.actor_critic.ActorCritic`` is the
  default (an MLP per network).
- off-policy (DDPG, TD3, SAC): the attributes of ``nets.offpolicy.DeterministicActorCritic``
  (DDPG, TD3) or ``SoftActorCritic`` (SAC), whose classes are the defaults; the simplest own
  model is one of them built with other sizes.

A run trained with an own model records ``"model": "own"`` in config.json; ``eval`` and
``scgrad.rl.load`` then need the same factory (``load(dir, actor_critic=factory)``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Protocol, Type

import gymnasium as gym
import numpy as np
from torch import nn

from scgrad.rl import distributed
from scgrad.rl.config import RunConfig, require
from scgrad.rl.data.runner import EnvRunner
from scgrad.rl.envs.make import make_vector_env
from scgrad.rl.envs.normalize import RunningNormalizer
from scgrad.rl.run.checkpoint import seed_everything
from scgrad.rl.run.loop import Training, run

#: ``factory(obs_space, act_space) -> nn.Module``: a model of the user's own (see the module docstring)
ActorCriticFactory = Callable[[gym.Space, gym.Space], nn.Module]


class Learner(Protocol):
    """What an algorithm builds for one run.

    Attributes:
        state: objects a checkpoint keeps besides the model and the runner (optimisers, a
            replay buffer, counters), by name: anything with ``state_dict``/``load_state_dict``.
    """

    state: Dict[str, Any]

    def epoch(self, i: int, start: int, stop: int) -> Dict[str, Optional[float]]:
        """Epoch ``i`` (1-based), taking the run from ``start`` to ``stop`` environment steps;
        returns its progress columns (``None``: not measured this epoch, e.g. no gradient step yet)."""
        ...


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """An algorithm as the command line and ``train`` know it.

    Attributes:
        name: its command-line name.
        config: its settings dataclass (every field becomes a ``--flag``).
        make_model: ``make_model(config, obs_space, act_space)``: the default model.
        learner: ``learner(config, model, runner) -> Learner``.
        data_parallel: whether it trains on several processes (``torchrun``): its learner
            averages gradients and batch statistics over them (``scgrad.rl.distributed``).
    """

    name: str
    config: Type[RunConfig]
    make_model: Callable[[Any, gym.Space, gym.Space], nn.Module]
    learner: Callable[[Any, nn.Module, EnvRunner], Learner]
    data_parallel: bool = False

    def train(self, config: RunConfig, out_dir: Optional[str] = None, resume: bool = False, progress: bool = False,
              stop_after: Optional[int] = None, actor_critic: Optional[ActorCriticFactory] = None) -> "RunResult":
        """Run this algorithm as configured (``train``)."""
        return train(config, self, out_dir, resume, progress, stop_after, actor_critic)


@dataclasses.dataclass
class RunResult:
    """What training returns.

    Attributes:
        config: the settings it ran with.
        model: the trained model (``model.pi.mode(obs)`` acts deterministically).
        normalizer: the observation normaliser, or ``None``.
        progress: one dict per epoch, the rows of progress.csv (as strings).
        path: the run folder, or ``None``.
        stopped_early: training stopped before the last epoch (``stop_after``).
    """

    config: RunConfig
    model: nn.Module
    normalizer: Optional[RunningNormalizer]
    progress: List[Dict[str, str]]
    path: Optional[str]
    stopped_early: bool = False


def check_data_parallel(config: RunConfig, algorithm: Algorithm, processes: int) -> None:
    """``ConfigError`` for settings a run on ``processes`` processes cannot share out evenly."""
    require(algorithm.data_parallel, f"{algorithm.name} trains in one process; several processes (torchrun) "
            "train the on-policy algorithms: vpg, trpo, ppo")
    require(config.num_envs % processes == 0,
            f"num_envs ({config.num_envs}) must be a multiple of the number of processes ({processes}): "
            "each process steps an equal share of the environments")
    minibatch = getattr(config, "minibatch_size", None)
    require(minibatch is None or minibatch % processes == 0,
            f"minibatch_size ({minibatch}) must be a multiple of the number of processes ({processes}): "
            "each process takes an equal share of every minibatch")


def train(config: RunConfig, algorithm: Algorithm, out_dir: Optional[str] = None, resume: bool = False,
          progress: bool = False, stop_after: Optional[int] = None,
          actor_critic: Optional[ActorCriticFactory] = None) -> RunResult:
    """Run ``algorithm`` as configured.

    Args:
        config: the settings (the algorithm's config dataclass).
        algorithm: the algorithm (``ppo.ALGORITHM``, ...).
        out_dir: run folder for config.json, progress.csv and the checkpoint; ``None``: no files.
        resume: continue the run in ``out_dir`` from its checkpoint (same random streams, so the
            progress equals an uninterrupted run's).
        progress: draw a progress bar on stderr.
        stop_after: stop after this many epochs in total (as if killed right after a
            checkpoint); resume later with ``resume=True``.
        actor_critic: a model of your own (see the module docstring); ``None``: the default.
    """
    here = distributed.start(getattr(config, "device", "cpu"))
    if here.size > 1:
        check_data_parallel(config, algorithm, here.size)
    seed_everything(distributed.seed_of_rank(config.seed, here.rank))
    envs = config.num_envs // here.size  # this process's share; environment i of rank r is number r·envs + i
    env = make_vector_env(config.env, envs)
    obs_space, act_space = env.single_observation_space, env.single_action_space
    normalizer = RunningNormalizer((int(np.prod(obs_space.shape)),)) if config.normalize_obs else None
    if normalizer is not None:
        normalizer.keep_pending = here.size > 1  # the processes share their statistics every epoch
    runner = EnvRunner(env, config.seed + here.rank * envs, normalizer)
    model = (actor_critic(obs_space, act_space) if actor_critic is not None
             else algorithm.make_model(config, obs_space, act_space))
    distributed.copy_from_main(model)  # every process starts from rank 0's weights
    learner = algorithm.learner(config, model, runner)
    state = {"model": model, "runner": runner, **learner.state,
             **({"normalizer": normalizer} if normalizer is not None else {})}
    training = Training(algorithm.name, config, config.steps, config.steps_per_epoch, model, state,
                        learner.epoch, runner, options={"model": "own"} if actor_critic is not None else {})
    rows, stopped = run(training, out_dir, resume, progress, stop_after)
    return RunResult(config, model, normalizer, rows, out_dir, stopped)
