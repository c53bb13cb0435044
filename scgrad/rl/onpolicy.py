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
from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple, Type

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Distribution

import scgrad as sg
from scgrad.estimators import Estimator

from .buffer import RolloutBuffer
from .checkpoint import seed_everything
from .config import RunConfig, require, require_positive, require_unit_interval
from .envs import make_vector_env
from .loop import Training, run
from .networks import ActorCritic
from .normalize import RunningNormalizer
from .optim import FlatAdam, clip_grad_norm_
from .returns import gae
from .rollout import EnvRunner, collect_rollout


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


# ------------------------------------------------------------------ data for the update
@dataclasses.dataclass
class Batch:
    """One epoch's experience, flattened over time and environments (M = T·N samples).

    ====  =================  ==============================================
    obs   [M, obs_dim]       s
    act   [M] or [M, A]      a, as sampled
    logp  [M]                log π_old(a|s)
    adv   [M]                Â, GAE (normalised if enabled)
    ret   [M]                the critic's target: the λ-return Â_raw + V_old
    v     [M]                V_old(s)
    ====  =================  ==============================================
    """

    obs: torch.Tensor
    act: torch.Tensor
    logp: torch.Tensor
    adv: torch.Tensor
    ret: torch.Tensor
    v: torch.Tensor

    def __len__(self) -> int:
        return self.obs.shape[0]

    def __getitem__(self, index: torch.Tensor | slice) -> "Batch":
        return Batch(*(getattr(self, f.name)[index] for f in dataclasses.fields(self)))


def compute_batch(buffer: RolloutBuffer, policy: nn.Module, value: nn.Module, gamma: float, lam: float,
                  normalize_advantages: bool) -> Batch:
    """Behaviour log-probabilities, values, advantages and returns for a filled buffer, each
    network evaluated in batched calls (``policy`` is the policy that collected the rollout).

    The successor value V(s'_t) is V(s_{t+1}) inside an episode, V(s_T) at the rollout's end,
    and V(final observation) at a truncation (terminal steps do not bootstrap; ``gae`` ignores
    them).
    """
    T, N = buffer.steps, buffer.num_envs
    with torch.no_grad():
        v_t = value(buffer.obs.reshape(T * N, -1)).reshape(T, N)
        v_next_t = torch.cat([v_t[1:], value(buffer.last_obs)[None]])
        cut = buffer.truncated.nonzero(as_tuple=True)
        if cut[0].numel():
            v_next_t[cut] = value(buffer.final_obs[cut])
        adv_t = gae(buffer.rew, v_t, v_next_t, buffer.terminated, buffer.truncated, gamma, lam)
        ret_t = adv_t + v_t
        if normalize_advantages:
            adv_t = standardize(adv_t)
        flat = lambda x: x.reshape(T * N, *x.shape[2:])  # noqa: E731
        obs, act = flat(buffer.obs), flat(buffer.act)
        logp = policy.distribution(obs).log_prob(act)
    return Batch(obs, act, logp, flat(adv_t), flat(ret_t), flat(v_t))


def standardize(x: torch.Tensor) -> torch.Tensor:
    """(x − mean) / (std + 1e-8) over all elements: advantages on a common scale."""
    return (x - x.mean()) / (x.std() + 1e-8)


# ------------------------------------------------------------------ losses
@dataclasses.dataclass
class PolicyLoss:
    """The policy surrogate of one batch.

    Attributes:
        loss: the graph's surrogate (scalar, differentiable); minimise it.
        dist: π_θ(·|s) for the batch.
        logp: log π_θ(a|s), [M].
        mean_v: mean of the batch's V_old(s) (the surrogate's constant baseline part).
    """

    loss: torch.Tensor
    dist: Distribution
    logp: torch.Tensor
    mean_v: torch.Tensor

    @property
    def value(self) -> float:
        """Spinning Up's ``LossPi``: the surrogate less its constant baseline part, i.e.
        −mean(r·Â) (r = 1 for VPG, the (clipped) ratio for PPO/TRPO). Computed on demand: it
        waits for the loss, which the minibatch loop should not do."""
        return self.loss.item() + self.mean_v.item()


def policy_loss(policy: nn.Module, batch: Batch, estimator: Estimator) -> PolicyLoss:
    """The policy surrogate as an ``sg.Graph``: one action node, one cost.

    ``estimator`` must carry the baseline −V (``baseline=-batch.v``). The graph is not entered
    (no ``with``): with a single node and a single cost, the fallback rule (credit every cost
    to every earlier node) is exact, and it skips data-flow tracking in the inner loop.
    """
    dist = policy.distribution(batch.obs)
    graph = sg.Graph(check_finite=False)  # the RL loop has its own NaN guard
    graph.sample("action", dist, value=batch.act, estimator=estimator)
    graph.cost("neg_return", -(batch.adv + batch.v))
    loss = graph.surrogate()
    return PolicyLoss(loss, dist, graph["action"].log_prob, batch.v.mean())


def value_loss(value: nn.Module, batch: Batch) -> torch.Tensor:
    """Mean squared error of V(s) against the λ-return."""
    return (value(batch.obs) - batch.ret).square().mean()


def approx_kl(logp_old: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """KL(π_old ‖ π) estimated from samples of π_old: mean((r − 1) − log r), r = π/π_old.

    Non-negative and unbiased (Schulman's "k3" estimator), unlike mean(log π_old − log π).
    """
    log_ratio = logp - logp_old
    return (log_ratio.exp() - 1.0 - log_ratio).mean()


def step(optimizers: Sequence[torch.optim.Optimizer], max_grad_norm: Optional[float]) -> None:
    """Clip the gradient norm of all the optimisers' parameters together (if asked, as SB3
    does) and step each."""
    if max_grad_norm is not None:
        params = [p for optimizer in optimizers for group in optimizer.param_groups for p in group["params"]]
        clip_grad_norm_(params, max_grad_norm)
    for optimizer in optimizers:
        optimizer.step()


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
