"""A two-minute tour: estimator gradients against the exact gradient on a small model.

Run ``python -m scgrad.demo``. The model has a discrete latent, a Bernoulli that depends on it
through an index, and a Normal with a closed-form expectation; every estimator's mean gradient
over independent runs is printed beside the exact gradient (computed by exact enumeration with
the library itself), with its standard error and z-score.
"""
from __future__ import annotations

import argparse
import math
import time
from typing import Callable, Dict, List, Optional

import torch
from torch.distributions import Bernoulli, Categorical, Normal

import scgrad as sg
from scgrad import baselines, estimators

TARGET = torch.tensor([0.0, 1.0, 0.0, 1.0])  # the bit each category "should" produce


def make_params() -> Dict[str, torch.Tensor]:
    """θ: category logits [4], Bernoulli logit table [4], Normal mean []."""
    return {
        "category_logits": torch.tensor([0.2, -0.1, 0.4, 0.0], requires_grad=True),
        "bit_logits": torch.tensor([0.5, -0.3, 0.1, 0.8], requires_grad=True),
        "mu": torch.tensor(0.3, requires_grad=True),
    }


def model(g: sg.Graph, params: Dict[str, torch.Tensor], batch: int,
          category: Optional[estimators.Estimator], normal: Optional[estimators.Estimator]) -> None:
    """k ~ Cat(θ_c); b ~ Bern(θ_b[k]); x ~ N(μ, 1). Costs (b − target[k])² and (x − 1)²."""
    logits = params["category_logits"].expand(batch, 4)
    k = g.sample("k", Categorical(logits=logits), estimator=category)
    b = g.sample("b", Bernoulli(logits=params["bit_logits"][k]), estimator=estimators.Enumerate()
                 if isinstance(category, estimators.Enumerate) else None)
    g.cost("bit_error", (b - TARGET[k]) ** 2)
    x = g.sample("x", Normal(params["mu"].expand(batch), 1.0), estimator=normal)
    g.cost("distance", (x - 1.0) ** 2)


def gradient(params: Dict[str, torch.Tensor], batch: int, category, normal) -> torch.Tensor:
    """One surrogate gradient, flattened over all parameters: shape [9]."""
    with sg.Graph(batch_ndim=1) as g:
        model(g, params, batch, category, normal)
    grads = torch.autograd.grad(g.surrogate(), list(params.values()), allow_unused=True)
    return torch.cat([torch.zeros_like(p).flatten() if d is None else d.flatten()
                      for p, d in zip(params.values(), grads)])


def exact_gradient(params: Dict[str, torch.Tensor]) -> torch.Tensor:
    """Enumerate k and b exactly; the Normal term uses its closed form E[(x − 1)²] = (μ − 1)² + 1."""
    with sg.Graph(batch_ndim=1) as g:
        logits = params["category_logits"].expand(1, 4)
        k = g.sample("k", Categorical(logits=logits), estimator=estimators.Enumerate())
        b = g.sample("b", Bernoulli(logits=params["bit_logits"][k]), estimator=estimators.Enumerate())
        g.cost("bit_error", (b - TARGET[k]) ** 2)
        g.cost("distance", (params["mu"] - 1.0) ** 2 + 1.0)
    grads = torch.autograd.grad(g.surrogate(), list(params.values()))
    return torch.cat([d.flatten() for d in grads])


def run(runs: int, batch: int, seed: int) -> List[str]:
    """Lines of the report: one per estimator configuration."""
    torch.manual_seed(seed)
    params = make_params()
    exact = exact_gradient(params)
    configs: Dict[str, Callable[[], tuple]] = {
        "ScoreFunction()": lambda: (estimators.ScoreFunction(), estimators.ScoreFunction()),
        # one baseline per node: each tracks its own node's downstream cost across runs
        "ScoreFunction(MovingAverage)": lambda: (estimators.ScoreFunction(baseline=baselines.MovingAverage(0.9)),
                                                 estimators.ScoreFunction(baseline=baselines.MovingAverage(0.9))),
        "ScoreFunction(LeaveOneOut)": lambda: (estimators.ScoreFunction(baseline=baselines.LeaveOneOut(0)),
                                               estimators.ScoreFunction(baseline=baselines.LeaveOneOut(0))),
        "Reparam (x) + ScoreFunction (k)": lambda: (estimators.ScoreFunction(), estimators.Reparam()),
        "Enumerate (k, b) + Reparam (x)": lambda: (estimators.Enumerate(), estimators.Reparam()),
        "StraightThrough (k) [biased]": lambda: (estimators.StraightThrough(), estimators.Reparam()),
    }
    lines = [f"exact gradient (by enumeration): {_fmt(exact)}", "",
             f"{'estimator':34s} {'unbiased':8s} {'max|z|':>7s} {'se(μ)':>7s}  {'mean gradient over ' + str(runs) + ' runs of batch ' + str(batch)}"]
    for label, make in configs.items():
        category, normal = make()
        if isinstance(category, estimators.StraightThrough):
            samples = torch.stack([_straight_through_gradient(params, batch) for _ in range(runs)])
        else:
            samples = torch.stack([gradient(params, batch, category, normal) for _ in range(runs)])
        mean, se = samples.mean(0), samples.std(0) / math.sqrt(runs)
        # Entries estimated without noise (enumerated ones) are compared exactly, not by z.
        noisy = se > 1e-6
        z = ((mean - exact)[noisy] / se[noisy]).abs().max().item() if noisy.any() else 0.0
        exact_ok = torch.allclose(mean[~noisy], exact[~noisy], atol=1e-5)
        unbiased = category.unbiased and normal.unbiased
        verdict = f"{z:7.1f}" if exact_ok else "  wrong"
        lines.append(f"{label:34s} {str(unbiased):8s} {verdict} {se[-1].item():7.3f}  {_fmt(mean)}")
    lines += ["", "max|z|: largest |mean − exact| / standard error over the noisy gradient entries",
              "(exactly computed entries must match to 1e-5); unbiased estimators stay below ~4,",
              "biased ones need not. se(μ): standard error of the μ entry (pathwise ≪ score function)."]
    return lines


def _straight_through_gradient(params: Dict[str, torch.Tensor], batch: int) -> torch.Tensor:
    """StraightThrough returns one-hot categories, so the cost indexes by a dot product."""
    with sg.Graph(batch_ndim=1) as g:
        onehot = g.sample("k", Categorical(logits=params["category_logits"].expand(batch, 4)),
                          estimator=estimators.StraightThrough())
        bit_logit = onehot @ params["bit_logits"]
        b = g.sample("b", Bernoulli(logits=bit_logit), estimator=estimators.StraightThrough())
        g.cost("bit_error", (b - onehot @ TARGET) ** 2)
        x = g.sample("x", Normal(params["mu"].expand(batch), 1.0))
        g.cost("distance", (x - 1.0) ** 2)
    grads = torch.autograd.grad(g.surrogate(), list(params.values()))
    return torch.cat([d.flatten() for d in grads])


def _fmt(v: torch.Tensor) -> str:
    return "[" + " ".join(f"{x:+.3f}" for x in v.tolist()) + "]"


def main(argv: Optional[List[str]] = None) -> None:
    """The demo's command line (``python -m scgrad.demo --help``); ``argv`` defaults to sys.argv."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400, help="independent gradient estimates")
    parser.add_argument("--batch", type=int, default=16, help="samples per estimate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on these small tensors more threads only wait "
                             "on each other when the machine is busy)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    start, before = time.perf_counter(), torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        print("scgrad demo: d/dθ E[(b − target[k])² + (x − 1)²],  k ~ Cat(θ_c), b ~ Bern(θ_b[k]), x ~ N(μ, 1)")
        print("gradient entries: 4 category logits, 4 bit logits, μ\n")
        for line in run(args.runs, args.batch, args.seed):
            print(line)
    finally:
        torch.set_num_threads(before)
    print(f"\n({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
