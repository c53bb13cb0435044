"""Baselines reduce the variance of the score-function gradient; a bad one does not.

Problem: J(θ) = E_{b ~ Bernoulli(σ(θ))}[(b − 0.49)²] at θ = 0. The cost is 0.2601 or 0.2401
(mean 0.2501), so the gradient estimate without a baseline, (c − 0)·(b − ½), is ±0.125-ish and
noisy, while any baseline near 0.25 leaves only (c − β)·(b − ½) ≈ ±0.005.

Layout: one graph holds R = 400 independent rows of S = 16 samples; row r has its own
parameter θ_r (all 0), so R·∂L/∂θ_r is one independent S-sample gradient estimate per row, and
the R rows give a sample variance with R − 1 = 399 degrees of freedom.

Exact per-sample variances (two-point distributions, β the baseline, δ = β − 0.2501):
    Var[(c − β)(b − ½)] = (0.25·(0.5002 − 2β))²  →  0.0156375 at β = 0, 0.25·δ² in general,
    2.5e-9 at β = 0.25 (ratio 6.3e6), 5.636 at β = 5 (ratio 1/360);
    LeaveOneOut over S: Var(row) = 2.5e-5 · 2 / (S(S − 1)) vs 0.0156375 / S → ratio 312.75·(S − 1) = 4691.
MovingAverage / Learned: β is an average of earlier batch means (6400 samples each, sd 1.25e-4),
so sd(δ) ≈ 1.5e-4; their ratio is 0.06255/δ² ≥ 1e5 unless |δ| > 7.9e-4 (over 5 sd:
probability ≤ 1.2e-7).

Measured (seeds 100–105, this layout; no-baseline row variance 9.3e-4–1.04e-3 vs 9.77e-4 exact):
LeaveOneOut 4.0e3–6.1e3, constant 0.25 6.1e6–6.8e6, MovingAverage 8.0e6–8.6e10, Learned
1.6e6–7.3e7, baseline 5.0: 0.0027–0.0030 (it increases the variance ~360x). Asserted (conservatively): LeaveOneOut ≥ 500, the others ≥ 1e4; the negative
control ≤ 0.1.

False-failure rate: with per-row estimates close to normal (each a mean of 16 two-point
variables; their excess kurtosis −2/16 makes sample variances *more* concentrated than under
normality, so the normal theory is conservative), the measured ratio is the true ratio times
F ~ F(399, 399). A failure needs F < 500/4691 = 0.107 (LeaveOneOut), F < 1e4/6.3e6 (constant),
F < 0.1 given |δ| ≤ 7.9e-4 (MovingAverage, Learned) or F > 36 (negative control); each of these
F tails is below 1e-90, so the total false-failure rate is dominated by the |δ| event: ≤ 3e-7
per run, well under 1e-4. Seeds are fixed, so the test is deterministic; the rate is what a
different seed would risk.
"""
import pytest
import torch
from torch.distributions import Bernoulli

import scgrad as sg
from scgrad.baselines import Learned, LeaveOneOut, MovingAverage
from scgrad.estimators import ScoreFunction
from _modules import Affine

R, S = 400, 16  # independent rows (estimates), samples per row


def row_estimates(baseline):
    """R independent S-sample gradient estimates of dJ/dθ at θ = 0; also the surrogate."""
    theta = torch.zeros(R, 1, requires_grad=True)
    with sg.Graph() as g:
        x = g.sample("x", Bernoulli(logits=theta.expand(R, S)), estimator=ScoreFunction(baseline=baseline))
        g.cost("c", (x - 0.49) ** 2)
    loss = g.surrogate()
    grad, = torch.autograd.grad(loss, theta, retain_graph=True)
    return grad.squeeze(-1) * R, loss


def estimates_no_baseline():
    return row_estimates(None)[0]


def estimates_moving_average():
    average = MovingAverage(0.9)
    for _ in range(5):  # earlier batches: the baseline only ever sees those
        row_estimates(average)
    return row_estimates(average)[0]


def estimates_leave_one_out():
    return row_estimates(LeaveOneOut(dim=1))[0]


def estimates_learned():
    module = Affine()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.2)
    inputs = torch.ones(R, S)
    for _ in range(20):  # train the baseline through the surrogate's auxiliary loss
        _, loss = row_estimates(Learned(module, inputs))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert module(torch.ones(())).item() == pytest.approx(0.2501, abs=2e-3)
    return row_estimates(Learned(module, inputs))[0]


def estimates_constant():
    return row_estimates(torch.tensor(0.25))[0]


def estimates_far_baseline():
    return row_estimates(5.0)[0]


def measured(make, seed):
    torch.manual_seed(seed)
    return make().var().item()


@pytest.fixture(scope="module")
def variance_without_baseline():
    return measured(estimates_no_baseline, 100)


@pytest.mark.statistical
@pytest.mark.parametrize("make, seed, factor", [
    (estimates_moving_average, 101, 1e4),
    (estimates_leave_one_out, 102, 500.0),
    (estimates_learned, 103, 1e4),
    (estimates_constant, 104, 1e4),
], ids=["MovingAverage", "LeaveOneOut", "Learned", "constant-0.25"])
def test_baseline_reduces_variance(variance_without_baseline, make, seed, factor):
    ratio = variance_without_baseline / measured(make, seed)
    assert ratio >= factor, f"{make.__name__}: variance reduced only {ratio:.3g}x (expected ≥ {factor:g}x)"


@pytest.mark.statistical
def test_far_baseline_does_not_reduce_variance(variance_without_baseline):
    """Negative control: the same measurement catches a baseline that hurts (true ratio 1/360)."""
    ratio = variance_without_baseline / measured(estimates_far_baseline, 105)
    assert ratio <= 0.1, f"a baseline of 5.0 (mean cost 0.25) reduced the variance {ratio:.3g}x"


@pytest.mark.statistical
def test_no_baseline_variance_matches_closed_form(variance_without_baseline):
    """The reference itself: per-row variance 0.0156375 / S. The sample variance over 399
    degrees of freedom has relative sd ≈ √(2/399) = 0.071; ±40 % is over 5 sd (rate < 1e-6)."""
    assert variance_without_baseline == pytest.approx(0.0156375 / S, rel=0.4)
