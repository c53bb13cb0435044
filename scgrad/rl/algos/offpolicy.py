"""The off-policy family, DDPG, TD3 and SAC: their shared settings, pure pieces of their updates
and their epoch (act, random at first, then the exploring actor → store the transition in the
replay buffer → every ``update_every`` steps, as many gradient steps on minibatches → at the
epoch's end, test episodes with the deterministic actor); the rest of the run is the skeleton
every algorithm shares (``base.train``). Only the gradient step differs between the three.

Each algorithm's actor loss is an ``sg.Graph`` with one action node drawn with ``Reparam``:
the cost's gradient reaches the actor's parameters through the action (pathwise, through the
learned critic), where the on-policy algorithms score a replayed action instead.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections import defaultdict
from typing import Any, Dict, Iterator, List, Optional, Protocol, Sequence, Tuple, Type

import numpy as np
import torch
from torch import nn

from scgrad.rl.algos.base import Algorithm
from scgrad.rl.config import RunConfig, require, require_positive, require_unit_interval
from scgrad.rl.data.replay import ReplayBuffer, Transitions
from scgrad.rl.data.runner import EnvRunner
from scgrad.rl.nets.offpolicy import box_dims
from scgrad.rl.run.evaluate import Agent, evaluate

TEST_SEED_OFFSET = 10_000  # test episode i of every epoch starts from reset(seed + offset + i)


@dataclasses.dataclass
class OffPolicyConfig(RunConfig):
    """Settings shared by the off-policy algorithms (Spinning Up's defaults; actions are in
    [−1, 1] units, rescaled to the Box bounds by the environment adapter).

    Attributes:
        env: gymnasium environment id with a bounded 1-D Box action space, e.g. Pendulum-v1.
        hidden_sizes: hidden layer widths of the actor and of each critic.
        activation: hidden activation: tanh, relu, elu, gelu or silu.
        replay_size: transitions the replay buffer keeps (the oldest are overwritten).
        batch_size: transitions per gradient step.
        start_steps: the first this many environment steps take uniformly random actions.
        update_after: no gradient steps until the buffer holds this many transitions.
        update_every: environment steps between rounds of updates; each round makes this many
            gradient steps (one per step on average). A multiple of num_envs.
        polyak: ρ in θ_targ ← ρ·θ_targ + (1 − ρ)·θ, in [0, 1].
        pi_lr: learning rate of the actor (Adam).
        q_lr: learning rate of the critics (Adam).
        num_test_episodes: deterministic test episodes at each epoch's end (TestEpRet; 0: none).
        save_buffer: save the replay buffer with each checkpoint. Off: smaller, faster
            checkpoints, but a resumed run restarts from an empty buffer (no gradient steps
            until it again holds update_after transitions, then learning from recent
            experience only), so it no longer equals an uninterrupted run.
        flush_denormal: treat subnormal floats as zero while training (``torch.set_flush_denormal``;
            switched off again afterwards). Adam's first moments of dead ReLU units decay
            into the subnormal range, where x86 arithmetic is slow: with 14% of the moments
            subnormal, a SAC gradient step took 1.39× as long without flushing
            (``benchmarks/rl_parts.py``).
    """

    env: str = "Pendulum-v1"
    hidden_sizes: Tuple[int, ...] = (256, 256)
    activation: str = "relu"
    replay_size: int = 1_000_000
    batch_size: int = 100
    start_steps: int = 10_000
    update_after: int = 1000
    update_every: int = 50
    polyak: float = 0.995
    pi_lr: float = 1e-3
    q_lr: float = 1e-3
    num_test_episodes: int = 10
    save_buffer: bool = True
    flush_denormal: bool = True

    def validate(self) -> None:
        super().validate()
        require_positive(self, "replay_size", "batch_size", "update_every", "pi_lr", "q_lr")
        require(self.start_steps >= 0, f"start_steps must be >= 0, got {self.start_steps}")
        require(self.update_after >= 0, f"update_after must be >= 0, got {self.update_after}")
        require(self.num_test_episodes >= 0, f"num_test_episodes must be >= 0, got {self.num_test_episodes}")
        require_unit_interval(self, "polyak")
        require(self.update_every % self.num_envs == 0,
                f"update_every ({self.update_every}) must be a multiple of num_envs ({self.num_envs})")
        # the runner normalises observations before anyone sees them; stored transitions would
        # keep stale statistics while the normaliser moves on
        require(not self.normalize_obs, "normalize_obs is not supported by the off-policy algorithms")


# ------------------------------------------------------------------ pure pieces of the update
def td_target(rew: torch.Tensor, terminated: torch.Tensor, next_value: torch.Tensor, gamma: float) -> torch.Tensor:
    """y = r + γ·(1 − terminated)·V′, all [B] (V′: the target critic's value of s′).

    A time-limit truncation is stored with terminated = 0, so it bootstraps from its true
    last observation; only a terminal state stops the sum.
    """
    return torch.addcmul(rew, 1.0 - terminated, next_value, value=gamma)


def critic_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Σ_k mean_b (Q_k(s_b, a_b) − y_b)²: q [n, B], target [B] → scalar (Spinning Up's sum of
    the members' mean squared errors)."""
    return (q - target).square().mean(-1).sum()


def polyak_update(targets: Sequence[torch.Tensor], sources: Sequence[torch.Tensor], polyak: float) -> None:
    """θ_targ ← ρ·θ_targ + (1 − ρ)·θ for every pair, in one fused call (no loop per tensor)."""
    with torch.no_grad():
        torch._foreach_lerp_(list(targets), list(sources), 1.0 - polyak)


def gradient_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """Clear the optimiser's gradients, backpropagate ``loss`` and step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """No parameter gradients for ``module`` inside the block: the actor's step needs dQ/da,
    not dQ/dθ_Q, and skipping the weight gradients saves their matrix products.

    Toggling ``requires_grad`` is the simplest of the fast ways: in ``benchmarks/rl_parts.py``
    (a SAC actor step, 256-256 networks, batch 100) leaving the critics' gradients on took
    1.15× as long, and ``torch.func.functional_call`` with detached parameters about as long.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


@contextlib.contextmanager
def denormals_flushed(enabled: bool) -> Iterator[None]:
    """Treat subnormal floats as zero inside the block (where the CPU supports it), then go
    back to torch's default (off; torch cannot report the current mode)."""
    if not (enabled and torch.set_flush_denormal(True)):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


class Stats:
    """Per-epoch means of scalar tensors recorded in the update, read with one host sync.

    ``add`` keeps detached 0-dim tensors (no ``.item()`` in the update); ``means`` stacks
    them and converts once, then starts over.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self._values: Dict[str, List[torch.Tensor]] = defaultdict(list)

    def add(self, **values: torch.Tensor) -> None:
        """Record one value (a 0-dim tensor) under each name."""
        for name, value in values.items():
            self._values[name].append(value.detach())

    def means(self) -> Dict[str, Optional[float]]:
        """name → mean of this epoch's values (``None``: none recorded, e.g. the buffer still
        filling; NaN in progress.csv, and not taken for divergence), in ``names`` order."""
        recorded = [n for n in self.names if self._values[n]]
        means = torch.stack([torch.stack(self._values[n]).mean() for n in recorded]).tolist() if recorded else []
        self._values.clear()
        found = dict(zip(recorded, means))
        return {n: found.get(n) for n in self.names}


# ------------------------------------------------------------------ the skeleton
class OffPolicyAlgorithm(Protocol):
    """What an off-policy algorithm supplies: its model, optimisers and gradient step."""

    name: str

    @staticmethod
    def make_model(config: Any, obs_space: Any, act_space: Any) -> nn.Module:
        """The module saved as "model": ``pi`` (with ``act``, ``mode``, ``sample``) and the rest."""
        ...

    def __init__(self, config: Any, model: nn.Module) -> None: ...

    optimizers: Dict[str, torch.optim.Optimizer]
    stats: Stats

    def update(self, batch: Transitions) -> None:
        """One gradient step on a minibatch; records its losses in ``stats``."""
        ...

    def state_dict(self) -> Dict[str, Any]:
        """What the update keeps beyond the networks and optimisers (e.g. TD3's step counter)."""
        ...

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore ``state_dict``'s output."""
        ...


def collect_step(runner: EnvRunner, actor: nn.Module, buffer: ReplayBuffer, explore_randomly: bool) -> None:
    """One vector step: actions for ``runner.obs`` (uniform in [−1, 1] or ``actor.act``), the
    environment step, and the N transitions into ``buffer``.

    The stored s′ is the true last observation where an episode ended (``Step.final_obs``),
    with ``terminated`` only for true terminations: truncations bootstrap.
    """
    obs = runner.obs.numpy().copy()  # copied now: the runner may reuse its observation array
    if explore_randomly:
        action = torch.empty(len(obs), buffer.act_dim).uniform_(-1.0, 1.0).numpy()
    else:
        with torch.inference_mode():  # no_grad's stricter sibling: a little less bookkeeping per call
            action = actor.act(runner.obs).numpy()
    step = runner.step(action)
    next_obs = runner.obs.numpy()
    if step.ended.size:
        next_obs = next_obs.copy()
        next_obs[step.ended] = step.final_obs.numpy()
    buffer.add(obs, action, step.reward, next_obs, step.terminated)


def mean_test_return(agent: Agent, config: OffPolicyConfig) -> float:
    """Mean return of ``config.num_test_episodes`` episodes of ``agent``'s deterministic
    policy (``evaluate.evaluate``), from the same starts at every epoch, so that the
    TestEpRet column follows the policy rather than the luck of the starts. Draws nothing
    from the global random streams (the environments are seeded), so resuming stays exact."""
    return float(np.mean(evaluate(agent, config.num_test_episodes, config.seed + TEST_SEED_OFFSET)))


class OffPolicyLearner:
    """The off-policy epoch (``base.Learner``): per vector step, act (uniformly at random for
    the first ``start_steps``, then the exploring actor) and store the transitions; every
    ``update_every`` steps as many gradient steps on minibatches; at the end, test episodes of
    the deterministic actor. Subnormal floats are flushed during the epoch if configured.

    Args:
        update_class: the algorithm's class (``sac.SAC``, ...), built with the settings and model.
        config: the settings.
        model: the model (``pi`` and the critics the algorithm uses; see ``base``).
        runner: the env runner.
    """

    def __init__(self, update_class: Type[OffPolicyAlgorithm], config: OffPolicyConfig, model: nn.Module,
                 runner: EnvRunner) -> None:
        self.config, self.model, self.runner = config, model, runner
        self.algo = update_class(config, model)
        spaces = runner.env.single_observation_space, runner.env.single_action_space
        self.buffer = ReplayBuffer(config.replay_size, *box_dims(*spaces), seed=config.seed,
                                   save_data=config.save_buffer)
        self.agent = Agent(update_class.name, config, model, None, *spaces)  # for the test episodes
        self.state = {"replay": self.buffer, "algo": self.algo,
                      **{f"optimizer_{k}": o for k, o in self.algo.optimizers.items()}}

    def epoch(self, i: int, start: int, stop: int) -> Dict[str, Optional[float]]:
        """Steps, gradient steps and the test (``base.Learner.epoch``)."""
        c, n = self.config, self.config.num_envs
        with denormals_flushed(c.flush_denormal):
            for t in range(start, stop, n):  # t: steps taken before this one
                collect_step(self.runner, self.model.pi, self.buffer, explore_randomly=t < c.start_steps)
                if (t + n) % c.update_every == 0 and len(self.buffer) >= max(c.update_after, 1):
                    for _ in range(c.update_every):
                        self.algo.update(self.buffer.sample(c.batch_size))
        test = {"TestEpRet": mean_test_return(self.agent, c)} if c.num_test_episodes else {}
        return {**self.algo.stats.means(), **test}


def algorithm(name: str, config: Type[OffPolicyConfig], update_class: Type[OffPolicyAlgorithm]) -> Algorithm:
    """The registry entry of an off-policy algorithm: the shared skeleton with its gradient step."""
    return Algorithm(name, config, update_class.make_model, functools.partial(OffPolicyLearner, update_class))
