"""Benchmark scgrad's estimators: step overhead, gradient variance, and Storchastic as a peer.

Run from the repository root::

    python benchmarks/estimators.py            # full run (a few minutes)
    python benchmarks/estimators.py --quick    # smoke run (< 1 minute)

It writes the "Estimators" section of ``benchmarks/RESULTS.md`` (between the markers
``<!-- estimators:start -->`` and ``<!-- estimators:end -->``), leaving other sections alone.

Three measurements:

1. Overhead of one REINFORCE training step of an MLP policy (forward, sample, surrogate,
   backward): hand-written vs. scgrad tracked (``with sg.Graph()``) vs. scgrad untracked,
   interleaved in the same process.
2. Gradient mean, bias and variance of each estimator and baseline on two small problems with
   exact gradients, at matched numbers of cost evaluations.
3. The same with Storchastic (``storch``) where it has the estimator. Importing ``storch``
   monkey-patches torch for the whole process, so every Storchastic measurement runs in a
   child process (this script re-invoked with ``--storch-worker``).
"""
from __future__ import annotations

import abc
import argparse
import json
import os
import random
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Categorical, Distribution, Independent, OneHotCategorical

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing  # noqa: E402  (sibling helper module; benchmarks/ is not a package)
from _results import update_section  # noqa: E402

import scgrad as sg  # noqa: E402
from scgrad.baselines import LeaveOneOut, MovingAverage  # noqa: E402
from scgrad.estimators import (ARM, REBAR, RELAX, DisARM, Enumerate, GumbelSoftmax,  # noqa: E402
                               ScoreFunction, StraightThrough)

DEFAULT_THREADS = torch.get_num_threads()  # before this script changes it
DEFAULT_OUT = Path(__file__).resolve().parent / "RESULTS.md"
START_MARK = "<!-- estimators:start -->"
END_MARK = "<!-- estimators:end -->"
PEER_TIMEOUT_S = 540


# ============================================================================ configuration
@dataclass(frozen=True)
class Config:
    """How much work each measurement does.

    Attributes:
        quick: smoke-test sizes (< 1 minute in all).
        rounds: interleaved timing rounds per batch size (overhead benchmark).
        replicates: independent gradient estimates per estimator (variance benchmark).
        samples: cost evaluations per gradient estimate for the Monte Carlo estimators.
        batches: policy batch sizes for the overhead benchmark.
        threads: torch intra-op thread counts for the overhead benchmark (the variance
            benchmark, on tiny tensors, always runs single-threaded).
        seed: seed for torch and for the shuffling of timing rounds.
        max_seconds: time cap of each timed configuration (one thread count and batch size) and
            of each problem's variance run; on a busy machine fewer rounds or estimates are
            taken, and the tables say how many.
    """

    quick: bool
    rounds: int
    replicates: int
    samples: int = 8
    batches: Sequence[int] = (64, 4096)
    threads: Sequence[int] = (1,)
    seed: int = 0
    max_seconds: float = 30.0

    def to_json(self) -> Dict[str, Any]:
        """The configuration as JSON-able data (sent to the Storchastic worker)."""
        return {"quick": self.quick, "rounds": self.rounds, "replicates": self.replicates,
                "samples": self.samples, "batches": list(self.batches), "threads": list(self.threads),
                "seed": self.seed, "max_seconds": self.max_seconds}

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "Config":
        """Inverse of :meth:`to_json`."""
        return cls(quick=data["quick"], rounds=data["rounds"], replicates=data["replicates"],
                   samples=data["samples"], batches=tuple(data["batches"]), threads=tuple(data["threads"]),
                   seed=data["seed"], max_seconds=data["max_seconds"])


def inner_calls(batch: int) -> int:
    """Steps timed back to back per measurement: enough for a few milliseconds per block."""
    return 10 if batch <= 256 else 2


# ============================================================================ 1. overhead
N_OBS, HIDDEN, N_ACTIONS = 8, 64, 4
PAYOFF = torch.tensor([0.0, 1.0, 2.0, 3.0])
BASELINE = torch.tensor(1.5)


def make_policy(seed: int) -> nn.Module:
    """The benchmark's policy: 8 → 64 → 64 → 4 logits, tanh activations."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(N_OBS, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN), nn.Tanh(),
                         nn.Linear(HIDDEN, N_ACTIONS))


def make_observations(batch: int, seed: int) -> torch.Tensor:
    """A fixed batch of observations, shape [batch, 8]."""
    generator = torch.Generator().manual_seed(seed + batch)
    return torch.randn(batch, N_OBS, generator=generator)


def action_cost(obs: Any, action: Any) -> Any:
    """Per-sample cost of an action: a payoff per action plus the first observation feature.

    Written with ``one_hot`` rather than ``PAYOFF[action]`` so that the very same function also
    runs on Storchastic tensors (indexing a tensor with one recurses forever under torch 2.x).
    """
    return F.one_hot(action, N_ACTIONS).to(PAYOFF.dtype) @ PAYOFF + obs[..., 0]


def hand_written_step(policy: nn.Module, obs: torch.Tensor) -> None:
    """REINFORCE with a constant baseline, written by hand: the reference cost of a step."""
    policy.zero_grad(set_to_none=True)
    dist = Categorical(logits=policy(obs))
    action = dist.sample()
    log_prob = dist.log_prob(action)
    cost = action_cost(obs, action)
    (log_prob * (cost - BASELINE).detach()).mean().backward()


def _record_policy_step(graph: sg.Graph, policy: nn.Module, obs: torch.Tensor) -> None:
    """The policy's forward pass, sample and cost, recorded in ``graph``."""
    action = graph.sample("action", Categorical(logits=policy(obs)),
                          estimator=ScoreFunction(baseline=BASELINE))
    graph.cost("cost", action_cost(obs, action))


def scgrad_tracked_step(policy: nn.Module, obs: torch.Tensor) -> None:
    """The same step through scgrad with data-flow tracking (``with sg.Graph()``)."""
    policy.zero_grad(set_to_none=True)
    with sg.Graph() as graph:
        _record_policy_step(graph, policy, obs)
    graph.surrogate().backward()


def scgrad_untracked_step(policy: nn.Module, obs: torch.Tensor) -> None:
    """The same step through scgrad without tracking (no ``with``)."""
    policy.zero_grad(set_to_none=True)
    graph = sg.Graph()
    _record_policy_step(graph, policy, obs)
    graph.surrogate().backward()


OVERHEAD_VARIANTS: Dict[str, Callable[[nn.Module, torch.Tensor], None]] = {
    "hand-written": hand_written_step,
    "scgrad tracked": scgrad_tracked_step,
    "scgrad untracked": scgrad_untracked_step,
}


def time_variants(steps: Dict[str, Callable[[nn.Module, torch.Tensor], None]], cfg: Config
                  ) -> List[Dict[str, Any]]:
    """Interleaved per-step times (µs) of each step function, per thread count and batch size.

    Returns:
        one record ``{"threads", "batch", "times": {variant: [µs per step, one per round]}}`` per
        (thread count, batch size).
    """
    policy = make_policy(cfg.seed)
    records = []
    previous = torch.get_num_threads()
    for threads in cfg.threads:
        torch.set_num_threads(threads)
        for batch in cfg.batches:
            obs = make_observations(batch, cfg.seed)
            variants = {name: partial(step, policy, obs) for name, step in steps.items()}
            times = _timing.interleaved(variants, rounds=cfg.rounds, inner=inner_calls(batch),
                                        warmup=max(5, cfg.rounds // 10), seed=cfg.seed + batch,
                                        max_seconds=cfg.max_seconds)
            records.append({"threads": threads, "batch": batch,
                            "times": {name: values.tolist() for name, values in times.items()}})
    torch.set_num_threads(previous)
    return records


# ============================================================================ 2. variance problems
class Problem(abc.ABC):
    """A one-node problem E_{z ~ p_θ}[f(z)] with a closed-form expectation.

    Subclasses define the distribution, the cost and the closed form; the exact gradient is
    autograd on the closed form.
    """

    key: str
    title: str
    support_size: int
    coordinate: str  # how the reported gradient coordinate is written

    def __init__(self) -> None:
        self.theta = self.initial_theta().requires_grad_()

    @abc.abstractmethod
    def initial_theta(self) -> torch.Tensor:
        """θ's starting value."""

    @abc.abstractmethod
    def distribution(self, n: int) -> Distribution:
        """p_θ with batch shape [n] (n independent samples)."""

    @abc.abstractmethod
    def peer_distribution(self) -> Distribution:
        """p_θ without a batch dimension, for Storchastic (which adds its own sample plate)."""

    @abc.abstractmethod
    def cost(self, z: Any) -> Any:
        """f(z) per sample; ``z`` may be a hard sample or a relaxed one."""

    @abc.abstractmethod
    def expected_cost(self) -> torch.Tensor:
        """E[f(z)] in closed form, differentiable in θ."""

    def exact_gradient(self) -> np.ndarray:
        """∇_θ E[f(z)], flattened."""
        grad, = torch.autograd.grad(self.expected_cost(), self.theta)
        return grad.detach().reshape(-1).numpy()


class BernoulliToy(Problem):
    """E_{b ~ Bernoulli(σ(θ))}[(b − t)²] at θ = 0, t = 0.49: a tiny gradient (0.005) under heavy
    noise (t = 0.45: the REBAR paper's toy; t = 0.499: RELAX's, a gradient of 0.0005)."""

    key = "bernoulli"
    title = "Bernoulli toy: E_{b~Bernoulli(σ(θ))}[(b − 0.49)²] at θ = 0"
    support_size = 2
    coordinate = "∂/∂θ"
    target = 0.49

    def initial_theta(self) -> torch.Tensor:
        return torch.tensor(0.0)

    def distribution(self, n: int) -> Distribution:
        return Bernoulli(logits=self.theta.expand(n))

    def peer_distribution(self) -> Distribution:
        return Bernoulli(logits=self.theta)

    def cost(self, z: Any) -> Any:
        return (z - self.target) ** 2

    def expected_cost(self) -> torch.Tensor:
        p = torch.sigmoid(self.theta)
        return p * (1 - self.target) ** 2 + (1 - p) * self.target**2


class BernoulliToy045(BernoulliToy):
    """The REBAR paper's toy, t = 0.45."""

    key = "bernoulli_045"
    title = "Bernoulli toy: E[(b − 0.45)²] at θ = 0 (REBAR's)"
    target = 0.45


class BernoulliToy0499(BernoulliToy):
    """RELAX's toy, t = 0.499."""

    key = "bernoulli_0499"
    title = "Bernoulli toy: E[(b − 0.499)²] at θ = 0 (RELAX's)"
    target = 0.499


class Bits200(Problem):
    """200 independent bits as one node (``Independent(Bernoulli)``): E[Σ_i (b_i − 0.499)²] at
    θ = 0, exact gradient (1 − p)p((1 − t)² − t²) per bit."""

    key = "bits200"
    title = "200 bits: E_{b~Bernoulli(σ(θ))^200}[Σ_i (b_i − 0.499)²] at θ = 0"
    support_size = 2 ** 200
    coordinate = "∂/∂θ₀"
    target = 0.499
    bits = 200

    def initial_theta(self) -> torch.Tensor:
        return torch.zeros(self.bits)

    def distribution(self, n: int) -> Distribution:
        return Independent(Bernoulli(logits=self.theta.expand(n, self.bits)), 1)

    def peer_distribution(self) -> Distribution:
        return Independent(Bernoulli(logits=self.theta), 1)

    def cost(self, z: Any) -> Any:
        return ((z - self.target) ** 2).sum(-1)

    def expected_cost(self) -> torch.Tensor:
        p = torch.sigmoid(self.theta)
        return (p * (1 - self.target) ** 2 + (1 - p) * self.target**2).sum()


class CategoricalLatent(Problem):
    """E_{z ~ Categorical(softmax(θ))}[(onehot(z)·v − t)²], K = 8, v evenly spaced in [0, 1].

    K = 8 so that exact enumeration costs the same 8 cost evaluations as the samplers.
    """

    key = "categorical"
    title = "Categorical latent: E_{z~Cat(softmax(θ))}[(onehot(z)·v − 0.45)²], K = 8"
    support_size = 8
    coordinate = "∂/∂θ₀"
    target = 0.45

    def __init__(self) -> None:
        self.values = torch.linspace(0.0, 1.0, self.support_size)
        super().__init__()

    def initial_theta(self) -> torch.Tensor:
        return torch.linspace(-0.5, 0.5, self.support_size)

    def distribution(self, n: int) -> Distribution:
        return Categorical(logits=self.theta.expand(n, self.support_size))

    def peer_distribution(self) -> Distribution:
        return OneHotCategorical(logits=self.theta)

    def cost(self, z: Any) -> Any:
        if z.dtype.is_floating_point:  # one-hot or relaxed one-hot (not z.is_floating_point():
            # under storch that returns a wrapped bool it cannot handle)
            chosen = (z * self.values).sum(-1)
        else:
            chosen = self.values[z]
        return (chosen - self.target) ** 2

    def expected_cost(self) -> torch.Tensor:
        return (torch.softmax(self.theta, -1) * (self.values - self.target) ** 2).sum()


PROBLEMS: Dict[str, Callable[[], Problem]] = {
    "bernoulli": BernoulliToy, "bernoulli_045": BernoulliToy045, "bernoulli_0499": BernoulliToy0499,
    "bits200": Bits200, "categorical": CategoricalLatent}


# ============================================================================ 2. estimators
@dataclass(frozen=True)
class Spec:
    """One estimator configuration, for scgrad and (where it has one) for Storchastic.

    Attributes:
        label: the row's name.
        make: builds the scgrad estimator (once per run: baselines keep state).
        peer: ``peer(storch, n, problem)`` builds the Storchastic method, or ``None`` if it has none.
        enumerate: evaluates the whole support (one "sample", K cost evaluations).
        warmup: gradient estimates discarded first (a moving average needs history; RELAX's
            control variate trains on them).
        per_sample: cost evaluations per sample (ARM, DisARM: 2; REBAR: 3); the node draws
            cfg.samples // per_sample samples, so that the evaluations match.
        kinds: the problems' distributions it supports ("bernoulli", "bits", "categorical").
        gradient: how one estimate is taken (default ``scgrad_gradient``).
    """

    label: str
    make: Callable[..., Any]
    peer: Optional[Callable[[Any, int, Any], Any]] = None
    enumerate: bool = False
    warmup: int = 5
    per_sample: int = 1
    kinds: Tuple[str, ...] = ("bernoulli", "bits", "categorical")
    gradient: Optional[Callable[..., torch.Tensor]] = None

    def samples(self, cfg: Config) -> int:
        """Batch size of the node: 1 for enumeration, else the matched sample count."""
        return 1 if self.enumerate else max(1, cfg.samples // self.per_sample)

    def evaluations(self, problem: Problem, cfg: Config) -> int:
        """Cost evaluations per gradient estimate."""
        return problem.support_size if self.enumerate else self.samples(cfg) * self.per_sample

    def supports(self, problem: Problem) -> bool:
        """Whether this estimator applies to the problem's distribution."""
        return problem_kind(problem) in self.kinds


def problem_kind(problem: Problem) -> str:
    """"bits" for a vector of bits, else the problem's distribution family."""
    return "bits" if isinstance(problem, Bits200) else ("categorical" if isinstance(problem, CategoricalLatent)
                                                          else "bernoulli")


def relaxed_input_size(problem: Problem) -> int:
    """Width of the relaxed sample a RELAX control variate reads (1 for a single bit)."""
    return {"bits": Bits200.bits, "categorical": CategoricalLatent.support_size}.get(problem_kind(problem), 1)


def make_relax(problem: Problem) -> RELAX:
    """RELAX with a small MLP control variate (width → 16 → 1) and its Adam optimiser, which
    trains during the warm-up estimates and keeps training while estimates are taken."""
    width = relaxed_input_size(problem)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(width, 16), nn.Tanh(), nn.Linear(16, 1))
    if width == 1 and problem_kind(problem) == "bernoulli":  # a single bit [n] -> [n, 1]
        net = nn.Sequential(nn.Unflatten(-1, (-1, 1)), net)
    estimator = RELAX(net)  # the module itself, so that relax.backward trains its parameters
    estimator.optimizer = torch.optim.Adam(estimator.parameters(), lr=1e-2)
    return estimator


def relax_gradient(problem: Problem, estimator: RELAX, n: int) -> torch.Tensor:
    """One RELAX estimate; the control variate takes a variance step on it (``relax.backward``)."""
    with sg.Graph(batch_ndim=1) as graph:
        z = graph.sample("z", problem.distribution(n), estimator=estimator)
        graph.cost("cost", problem.cost(z))
    problem.theta.grad = None
    estimator.optimizer.zero_grad()
    estimator.backward(graph.surrogate(), [problem.theta])
    estimator.optimizer.step()
    return problem.theta.grad.clone()


def _storch_gumbel(temperature: float, hard: bool) -> Callable[[Any, int, Problem], Any]:
    """A Storchastic Gumbel-softmax factory at a fixed temperature (annealing turned off)."""
    return lambda storch, n, _problem: storch.method.GumbelSoftmax(
        "z", n_samples=n, straight_through=hard, initial_temperature=temperature, annealing_rate=0.0)


def _storch_relax(storch: Any, n: int, problem: Problem) -> Any:
    """Storchastic's RELAX with its own control variate for the relaxed sample's width (its
    parameters, temperature and η are not trained here: under torch 2.13 it fails before)."""
    return storch.method.RELAX("z", n_samples=n, in_dim=relaxed_input_size(problem))


SINGLE = ("bernoulli", "categorical")  # one bit or one category per sample (not a vector of bits)
SPECS: List[Spec] = [
    Spec("ScoreFunction", ScoreFunction,
         peer=lambda storch, n, _problem: storch.method.ScoreFunction("z", n_samples=n)),
    Spec("ScoreFunction + LeaveOneOut", lambda: ScoreFunction(baseline=LeaveOneOut(dim=0)),
         peer=lambda storch, n, _problem: storch.method.ScoreFunction("z", n_samples=n, baseline_factory="batch_average")),
    Spec("ScoreFunction + MovingAverage(0.9)", lambda: ScoreFunction(baseline=MovingAverage(0.9)),
         peer=lambda storch, n, _problem: storch.method.ScoreFunction(
             "z", n_samples=n, baseline_factory="moving_average", exponential_decay=0.9),
         warmup=100),
    Spec("Enumerate", Enumerate, peer=lambda storch, n, _problem: storch.method.Expect("z"), enumerate=True, kinds=SINGLE),
    Spec("GumbelSoftmax(t=0.5)", lambda: GumbelSoftmax(0.5), peer=_storch_gumbel(0.5, False), kinds=SINGLE),
    Spec("GumbelSoftmax(t=1.0)", lambda: GumbelSoftmax(1.0), peer=_storch_gumbel(1.0, False), kinds=SINGLE),
    Spec("GumbelSoftmax(t=1.0, hard)", lambda: GumbelSoftmax(1.0, hard=True), peer=_storch_gumbel(1.0, True),
         kinds=SINGLE),
    Spec("StraightThrough", StraightThrough, kinds=SINGLE),
    Spec("ARM", ARM, peer=lambda storch, n, _problem: storch.method.ARM("z", n_samples=n), per_sample=2,
         kinds=("bernoulli", "bits")),
    Spec("DisARM", DisARM, peer=lambda storch, n, _problem: storch.method.DisARM("z", n_samples=n), per_sample=2,
         kinds=("bernoulli", "bits")),
    Spec("REBAR(t=0.5, η=1)", lambda: REBAR(0.5, 1.0), peer=lambda storch, n, _problem: storch.method.REBAR("z", n_samples=n),
         per_sample=3),
    Spec("RELAX (MLP control variate)", make_relax, warmup=300, gradient=relax_gradient, peer=_storch_relax),
]
REFERENCE = "ScoreFunction"  # variance ratios are relative to scgrad's plain score function


def scgrad_gradient(problem: Problem, estimator: sg.estimators.Estimator, n: int) -> torch.Tensor:
    """One scgrad gradient estimate of ∇_θ E[f(z)] from a node with batch shape [n]."""
    with sg.Graph(batch_ndim=1) as graph:
        z = graph.sample("z", problem.distribution(n), estimator=estimator)
        graph.cost("cost", problem.cost(z))
    grad, = torch.autograd.grad(graph.surrogate(), problem.theta)
    return grad


def collect(estimators: Dict[str, Callable[[], torch.Tensor]], warmups: Dict[str, int],
            replicates: int, seed: int, max_seconds: float) -> Dict[str, Dict[str, list]]:
    """``replicates`` gradient estimates (flattened) of each estimator and the time of each, in µs.

    The estimators take turns, in a freshly shuffled order in each round, so that a slow phase
    of the machine hits them alike; each estimator's own state (a moving average) is untouched
    by the others. Stops after the first round that ends past ``max_seconds``. An
    estimator that raises is reported as ``{"error": message}``.
    """
    runs: Dict[str, Dict[str, list]] = {}
    for label, estimate in estimators.items():
        try:
            for _ in range(warmups[label]):
                estimate()
            runs[label] = {"grads": [], "times": []}
        except Exception as error:  # a peer without this feature: report it, keep going
            runs[label] = {"error": f"{type(error).__name__}: {str(error)[:100]}"}
    active = [label for label in estimators if "error" not in runs[label]]
    order = random.Random(seed)
    deadline = time.perf_counter() + max_seconds
    for _ in range(replicates):
        order.shuffle(active)
        for label in list(active):
            start = time.perf_counter_ns()
            try:
                grad = estimators[label]()
            except Exception as error:  # fails on a later draw (a peer's shape bug): report it
                runs[label] = {"error": f"{type(error).__name__}: {str(error)[:100]}"}
                active.remove(label)
                continue
            runs[label]["times"].append((time.perf_counter_ns() - start) / 1e3)
            runs[label]["grads"].append(grad.detach().reshape(-1).tolist())
        if time.perf_counter() > deadline:
            break
    return runs


def scgrad_variance_runs(cfg: Config) -> Dict[str, Dict[str, Dict[str, list]]]:
    """Gradient samples of every scgrad estimator on every problem it supports."""
    runs = {}
    torch.set_num_threads(1)
    for key, make_problem in PROBLEMS.items():
        problem = make_problem()
        torch.manual_seed(cfg.seed)
        specs = [spec for spec in SPECS if spec.supports(problem)]
        estimators = {spec.label: partial(spec.gradient or scgrad_gradient, problem,
                                          spec.make(problem) if spec.gradient else spec.make(), spec.samples(cfg))
                      for spec in specs}
        runs[key] = collect(estimators, {spec.label: spec.warmup for spec in specs}, cfg.replicates,
                            cfg.seed, cfg.max_seconds)
    return runs


@dataclass
class GradStats:
    """Summary of R gradient estimates against the exact gradient (all flattened).

    Attributes:
        mean, exact, bias: vectors; bias = mean − exact.
        total_variance: trace of the covariance of one estimate.
        sq_dev: per-replicate ‖g_r − mean‖² (its mean is ``total_variance``; bootstrapped).
        noise: Monte Carlo error of ``mean``: sqrt(total_variance / R), the size an unbiased
            estimator's measured ‖bias‖ should have.
        time_us: median wall-clock time of one gradient estimate.
    """

    mean: np.ndarray
    exact: np.ndarray
    bias: np.ndarray
    total_variance: float
    sq_dev: np.ndarray
    noise: float
    time_us: float
    evaluations: int = 0
    replicates: int = 0
    ratio: Optional[tuple] = field(default=None)


def grad_stats(run: Dict[str, list], exact: np.ndarray, evaluations: int) -> GradStats:
    """Mean, bias and variance of the gradient samples in ``run``."""
    grads = np.asarray(run["grads"], dtype=float)
    mean = grads.mean(axis=0)
    sq_dev = ((grads - mean) ** 2).sum(axis=1) * len(grads) / max(len(grads) - 1, 1)
    total = float(sq_dev.mean())
    return GradStats(mean=mean, exact=exact, bias=mean - exact, total_variance=total, sq_dev=sq_dev,
                     noise=float(np.sqrt(total / len(grads))), time_us=float(np.median(run["times"])),
                     evaluations=evaluations, replicates=len(grads))


# ============================================================================ 3. Storchastic peer
def storch_worker(cfg: Config) -> Dict[str, Any]:
    """Everything measured with Storchastic; runs in its own process (storch patches torch)."""
    try:
        import storch  # noqa: F401  (the import itself patches torch)
        from importlib.metadata import version
    except ImportError as error:
        return {"error": f"storchastic is not installed ({error}); pip install storchastic"}
    return {"version": version("storchastic"), "overhead": storch_overhead(storch, cfg),
            "variance": storch_variance_runs(storch, cfg)}


def storch_constant_baseline(storch: Any, value: torch.Tensor) -> Callable[[Any, Any], Any]:
    """A Storchastic baseline factory returning a fixed tensor (the overhead benchmark's b)."""

    class ConstantBaseline(storch.method.Baseline):
        def compute_baseline(self, tensor: Any, cost: Any) -> torch.Tensor:
            return value

    return lambda stochastic, cost: ConstantBaseline()


def storch_step(storch: Any, method: Any, policy: nn.Module, obs: torch.Tensor) -> None:
    """The overhead benchmark's step written with Storchastic."""
    policy.zero_grad(set_to_none=True)
    plated = storch.denote_independent(obs, 0, "data")
    action = method(Categorical(logits=policy(plated)))
    storch.add_cost(action_cost(plated, action), "cost")
    storch.backward()


def storch_overhead(storch: Any, cfg: Config) -> Dict[int, Dict[str, List[float]]]:
    """Storchastic's step interleaved with the hand-written one, inside the storch process."""
    method = storch.method.ScoreFunction(
        "action", n_samples=1, baseline_factory=storch_constant_baseline(storch, BASELINE))
    steps = {"hand-written (storch process)": hand_written_step,
             "storchastic": lambda policy, obs: storch_step(storch, method, policy, obs)}
    return time_variants(steps, cfg)


def storch_gradient(storch: Any, problem: Problem, method: Any) -> torch.Tensor:
    """One Storchastic gradient estimate of ∇_θ E[f(z)] (storch's global cost list is reset if
    the method fails half-way, so the next method starts clean)."""
    problem.theta.grad = None
    try:
        z = method(problem.peer_distribution())
        storch.add_cost(problem.cost(z), "cost")
        storch.backward()
    except Exception:
        storch.reset()
        raise
    return problem.theta.grad.clone()


def storch_variance_runs(storch: Any, cfg: Config) -> Dict[str, Dict[str, Dict[str, list]]]:
    """Gradient samples of every Storchastic method that has a scgrad counterpart."""
    runs = {}
    torch.set_num_threads(1)
    for key, make_problem in PROBLEMS.items():
        problem = make_problem()
        torch.manual_seed(cfg.seed)
        specs = [spec for spec in SPECS if spec.peer is not None and spec.supports(problem)]
        estimators = {spec.label: partial(storch_gradient, storch, problem, spec.peer(storch, spec.samples(cfg), problem))
                      for spec in specs}
        runs[key] = collect(estimators, {spec.label: spec.warmup for spec in specs}, cfg.replicates,
                            cfg.seed, cfg.max_seconds)
    return runs


def run_storch_subprocess(cfg: Config) -> Dict[str, Any]:
    """Run :func:`storch_worker` in a child process and return its JSON result."""
    command = [sys.executable, str(Path(__file__).resolve()), "--storch-worker",
               json.dumps(cfg.to_json())]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PEER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"the storchastic worker took more than {PEER_TIMEOUT_S} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": f"the storchastic worker failed: {done.stderr.strip()[-400:]}"}
    return json.loads(lines[-1])


# ============================================================================ rendering
def fmt(x: float, digits: int = 3, keep_zeros: bool = False) -> str:
    """A number in ``digits`` significant digits (trailing zeros kept if ``keep_zeros``)."""
    return f"{x:#.{digits}g}" if keep_zeros else f"{x:.{digits}g}"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def overhead_rows(records: List[Dict[str, Any]], reference: str) -> List[List[str]]:
    """Rows: threads, batch, variant, median µs, IQR, ratio to ``reference`` with a 95% bootstrap CI."""
    rows = []
    for record in records:
        variants = record["times"]
        base = np.asarray(variants[reference])
        for name, values in variants.items():
            values = np.asarray(values)
            s = _timing.spread(values)
            if name == reference:
                ratio = "1 (reference)"
            else:
                r, lo, hi = _timing.ratio_of_medians(values, base)
                ratio = f"**{r:.3f}** [{lo:.3f}, {hi:.3f}]"
            rows.append([str(record["threads"]), str(record["batch"]), name, str(len(values)),
                         f"{s.median:.0f}", f"{s.q1:.0f}–{s.q3:.0f}", ratio])
    return rows


def overhead_section(records: List[Dict[str, Any]], peer: Dict[str, Any], cfg: Config) -> str:
    """The markdown of the overhead measurement (scgrad, then Storchastic)."""
    headers = ["threads", "batch", "variant", "rounds", "median µs/step", "IQR µs", "ratio to hand-written [95% CI]"]
    parts = [
        "### Overhead: one REINFORCE training step",
        "",
        "MLP policy 8 → 64 → 64 → 4 logits (tanh), `Categorical`, constant baseline tensor b; one "
        "step = zero grads, forward, sample, log-prob/surrogate, backward (no optimizer step). "
        "Hand-written: `(logp * (cost - b).detach()).mean().backward()`. scgrad tracked: forward, "
        "`g.sample(..., estimator=ScoreFunction(baseline=b))` and `g.cost` inside `with sg.Graph() as g:`, "
        "then `g.surrogate().backward()`; untracked: the same without `with`. "
        f"The variants alternate in a shuffled order in each of up to {cfg.rounds} rounds (at most "
        f"{cfg.max_seconds:.0f} s) per thread count and batch size "
        f"({', '.join(f'{inner_calls(b)} steps per timed block at batch {b}' for b in cfg.batches)}). "
        "Ratio = median / median of hand-written; interval: paired bootstrap over rounds. "
        "threads = `torch.set_num_threads` (default 1: on a small shared machine every parallel op "
        "of a multi-threaded step stalls on a busy core, which swamps what is measured; "
        "`--threads 1,2` adds rows).",
        "",
        md_table(headers, overhead_rows(records, "hand-written")),
        "",
    ]
    parts += peer_overhead_part(peer, headers)
    return "\n".join(parts)


def peer_overhead_part(peer: Dict[str, Any], headers: Sequence[str]) -> List[str]:
    """Storchastic's step times, measured in its own process against a hand-written step there."""
    if "error" in peer:
        return [f"Storchastic: not measured — {peer['error']}", ""]
    return [
        f"Storchastic {peer['version']} (same policy and step, `storch.method.ScoreFunction` with a "
        "constant-baseline factory, observations put on a plate with `storch.denote_independent`), "
        "measured in a separate process, interleaved with the hand-written step in that process. "
        "Importing storch patches torch globally (`torch.is_tensor`, `Tensor.to/le/gt`) and turns "
        "distribution argument validation off for every distribution, so the hand-written step there "
        "is not the same as above; compare ratios, not absolute times, across the two tables.",
        "",
        md_table(headers, overhead_rows(peer["overhead"], "hand-written (storch process)")),
        "",
    ]


def variance_rows(problem: Problem, ours: Dict[str, GradStats], theirs: Dict[str, Any]) -> List[List[str]]:
    """Rows of one problem's variance table: each scgrad estimator, then its Storchastic twin."""
    rows = []
    for spec in SPECS:
        if not spec.supports(problem):
            continue
        rows.append(stats_row(spec.label, "scgrad", ours[spec.label], problem))
        peer = theirs.get(spec.label) if theirs else None
        if isinstance(peer, GradStats):
            rows.append(stats_row(spec.label, "storchastic", peer, problem))
        elif isinstance(peer, str):
            rows.append([spec.label, "storchastic", f"failed: {peer}"] + [""] * 8)
        elif theirs and spec.peer is None:
            rows.append([spec.label, "storchastic", "not compared"] + [""] * 8)
    return rows


def stats_row(label: str, library: str, stats: GradStats, problem: Problem) -> List[str]:
    """One row: estimator, library, evaluations, mean, exact, bias, noise, variance, ratio, time."""
    scalar = stats.mean.size == 1
    bias = fmt(float(stats.bias[0])) if scalar else fmt(float(np.linalg.norm(stats.bias)))
    ratio = "—"
    if stats.ratio is not None:
        r, lo, hi = stats.ratio
        ratio = f"{r:.3g} [{lo:.3g}, {hi:.3g}]"
    return [label, library, str(stats.evaluations), str(stats.replicates), fmt(float(stats.mean[0]), 4, True),
            fmt(float(stats.exact[0]), 4, True),
            bias, fmt(stats.noise, 2), fmt(stats.total_variance), ratio, f"{stats.time_us:.0f}"]


def attach_ratios(all_stats: Sequence[Dict[str, Any]], reference: GradStats, seed: int) -> None:
    """Set each GradStats' variance ratio to ``reference`` with a bootstrap interval."""
    for stats_by_label in all_stats:
        for stats in stats_by_label.values():
            if isinstance(stats, GradStats):
                if stats.total_variance == 0.0:
                    stats.ratio = (0.0, 0.0, 0.0)
                else:
                    stats.ratio = _timing.bootstrap_mean_ratio(stats.sq_dev, reference.sq_dev, seed=seed)


def summarize_problem(problem: Problem, ours: Dict[str, Dict[str, list]], theirs: Optional[Dict[str, Any]],
                      cfg: Config) -> tuple:
    """GradStats for scgrad's and Storchastic's runs on one problem, ratios attached."""
    exact = problem.exact_gradient()
    evals = {spec.label: spec.evaluations(problem, cfg) for spec in SPECS if spec.supports(problem)}
    mine = {label: grad_stats(run, exact, evals[label]) for label, run in ours.items()}
    peer: Dict[str, Any] = {}
    for label, run in (theirs or {}).items():
        peer[label] = run["error"] if "error" in run else grad_stats(run, exact, evals[label])
    attach_ratios([mine, peer], mine[REFERENCE], cfg.seed)
    return mine, peer


def variance_section(ours: Dict[str, Any], peer: Dict[str, Any], cfg: Config) -> str:
    """The markdown of the variance measurement, one table per problem."""
    headers_scalar = ["estimator", "library", "cost evals", "estimates", "mean grad", "exact", "bias", "MC s.e.",
                      "variance", "var ratio vs ScoreFunction [95% CI]", "µs/grad"]
    parts = [
        "### Gradient variance at matched cost evaluations",
        "",
        f"Up to {cfg.replicates} independent gradient estimates per row (at most {cfg.max_seconds:.0f} s "
        f"per problem and library; column 'estimates'), each from {cfg.samples} cost "
        "evaluations (column 'cost evals': Enumerate, the K points of the support, exact; ARM and "
        f"DisARM, {cfg.samples // 2} antithetic pairs; REBAR, {cfg.samples // 3} samples of 3 points "
        "each, the hard one and two relaxed; RELAX, one evaluation per sample plus its control "
        "variate, an MLP (width → 16 → 1) trained on the estimate's variance with Adam 1e-2 during "
        "300 discarded warm-up estimates and while the estimates are taken). Exact gradients: autograd on "
        "the closed-form expectation. bias = mean − exact; MC s.e. = sqrt(variance / replicates), the "
        "size an unbiased estimator's measured bias should have (|bias| ≲ 2 s.e.). Relaxed estimators "
        "(GumbelSoftmax, StraightThrough) evaluate the cost at the relaxed / straight-through sample: "
        "they are biased by design. MovingAverage: first 100 estimates discarded (baseline warm-up). "
        "Variance ratios are relative to scgrad's plain ScoreFunction (95% bootstrap interval). "
        "µs/grad: median time of one estimate (graph, sample, cost, surrogate, autograd), "
        "the estimators of one library take turns (interleaved); the two libraries run in different "
        "processes, one after the other. Storchastic has no identity straight-through "
        "estimator; its `GumbelSoftmax(straight_through=True)` is compared with "
        "`GumbelSoftmax(hard=True)`. Moving averages differ by design: scgrad's baseline is the "
        "average of earlier calls only; Storchastic's `MovingAverageBaseline` first folds in the "
        "current batch's mean cost, so each sample's baseline holds (1 − decay)/n of its own cost "
        "and the expected gradient shrinks by that factor (1.25% here), which shows as a bias "
        "wherever the variance is small enough to resolve it.",
        "",
    ]
    if "error" in peer:
        parts += [f"Storchastic: not measured — {peer['error']}", ""]
    for key, make_problem in PROBLEMS.items():
        problem = make_problem()
        theirs = peer.get("variance", {}).get(key) if "error" not in peer else None
        mine, peer_stats = summarize_problem(problem, ours[key], theirs, cfg)
        headers = list(headers_scalar)
        if problem.theta.numel() > 1:
            headers[4:7] = [f"mean {problem.coordinate}", f"exact {problem.coordinate}", "‖bias‖₂"]
            headers[7:9] = ["MC s.e. (‖·‖₂)", "tr Var"]
        parts += [f"#### {problem.title}", "", md_table(headers, variance_rows(problem, mine, peer_stats)), ""]
    return "\n".join(parts)


def header_section(cfg: Config, command: str, peer: Dict[str, Any]) -> str:
    """Title, command, machine and mode."""
    m = _timing.machine()
    peer_version = peer.get("version", "not available")
    return "\n".join([
        "## Estimators",
        "",
        f"- Command: `{command}`",
        f"- Date: {m['date']}",
        f"- Machine: {m['cpu']}, {m['cpu_count']} CPUs ({m['platform']}); torch {m['torch']} "
        f"(default {DEFAULT_THREADS} threads), Python {m['python']}; storchastic {peer_version}",
        f"- Mode: {'quick (smoke-test sizes)' if cfg.quick else 'full'}; {cfg.rounds} timing rounds per "
        f"batch size at torch threads {', '.join(map(str, cfg.threads))}; {cfg.replicates} gradient "
        f"estimates per estimator (single-threaded); seed {cfg.seed}",
        "- The machine is shared and noisy: only interleaved timings (the overhead ratios) are "
        "comparable with each other; the µs/grad columns are indicative.",
        "",
    ])


def render(cfg: Config, command: str, overhead: List[Dict[str, Any]],
           variance: Dict[str, Any], peer: Dict[str, Any]) -> str:
    """The whole Estimators section, markers included."""
    body = "\n".join([header_section(cfg, command, peer), overhead_section(overhead, peer, cfg),
                      variance_section(variance, peer, cfg)])
    return f"{START_MARK}\n{body.rstrip()}\n{END_MARK}"


# ============================================================================ command line
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes (< 1 minute)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved timing rounds per batch size (default 500; quick 12)")
    parser.add_argument("--replicates", type=int, default=None,
                        help="gradient estimates per estimator (default 5000; quick 100)")
    parser.add_argument("--threads", default=None,
                        help="comma-separated torch thread counts for the overhead benchmark, e.g. 1,2 "
                             "(default 1: on a shared machine, multi-threaded steps stall on busy cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="time cap per timed configuration and per variance run (default 30; quick 3)")
    parser.add_argument("--no-peer", action="store_true", help="skip Storchastic")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results file (default {DEFAULT_OUT})")
    parser.add_argument("--storch-worker", metavar="JSON", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> Config:
    rounds = args.repeats if args.repeats is not None else (12 if args.quick else 500)
    replicates = args.replicates if args.replicates is not None else (100 if args.quick else 5000)
    if args.threads is not None:
        threads = tuple(int(t) for t in args.threads.split(","))
    else:
        threads = (1,)
    cap = args.max_seconds if args.max_seconds is not None else (3.0 if args.quick else 30.0)
    return Config(quick=args.quick, rounds=rounds, replicates=replicates, threads=threads, seed=args.seed,
                  max_seconds=cap)


def command_line() -> str:
    """This run's command as typed (script path relative to the working directory)."""
    script = os.path.relpath(sys.argv[0]) if os.path.exists(sys.argv[0]) else sys.argv[0]
    return " ".join(["python", shlex.quote(script), *map(shlex.quote, sys.argv[1:])])


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    if args.storch_worker is not None:
        print(json.dumps(storch_worker(Config.from_json(json.loads(args.storch_worker)))))
        return
    cfg = config_from(args)
    started = time.perf_counter()
    print(f"overhead: {cfg.rounds} interleaved rounds per batch size {list(cfg.batches)}, "
          f"threads {list(cfg.threads)} ...", flush=True)
    overhead = time_variants(OVERHEAD_VARIANTS, cfg)
    print(f"  {time.perf_counter() - started:.0f} s; variance: {cfg.replicates} estimates per estimator ...",
          flush=True)
    variance = scgrad_variance_runs(cfg)
    peer: Dict[str, Any] = {"error": "skipped (--no-peer)"}
    if not args.no_peer:
        print(f"  {time.perf_counter() - started:.0f} s; storchastic peer (separate process) ...", flush=True)
        peer = run_storch_subprocess(cfg)
    update_section(args.out, render(cfg, command_line(), overhead, variance, peer), START_MARK, END_MARK)
    print(f"wrote the Estimators section of {args.out} in {time.perf_counter() - started:.0f} s")

if __name__ == "__main__":
    main()
