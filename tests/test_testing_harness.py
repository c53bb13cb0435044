"""Unit tests of scgrad.testing itself: exact derivatives, quadrature, the statistical check."""
from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Categorical, Gamma, Independent, Normal

import scgrad as sg
from scgrad.testing import (GaussHermite, UnbiasednessError, UnbiasednessReport,
                            UnsupportedDistributionError, assert_unbiased, assert_unbiased_confirmed,
                            exact_gradient, exact_hessian, exact_objective, gradient_samples,
                            per_sample_derivatives, unbiasedness_report, z_threshold)

pytestmark = pytest.mark.usefixtures("single_thread")

DOUBLE = torch.float64


def leaf(*values) -> torch.Tensor:
    return torch.tensor(values if len(values) > 1 else values[0], dtype=DOUBLE, requires_grad=True)


# ----------------------------------------------------------------------------- exact derivatives
def test_exact_derivatives_of_one_bernoulli() -> None:
    """E_{b ~ Bern(σ(θ))}[(b − 0.49)²] = 0.49² + 0.02·σ(θ): derivatives 0.02·σ' and 0.02·σ''."""
    theta = leaf(0.7)

    def model(g):
        b = g.sample("b", Bernoulli(logits=theta.reshape(1)))
        g.cost("c", (b - 0.49) ** 2)

    p = torch.sigmoid(theta).item()
    assert exact_objective(model).item() == pytest.approx(0.49**2 + 0.02 * p, abs=1e-15)
    assert exact_gradient(model, [theta]).tolist() == pytest.approx([0.02 * p * (1 - p)], abs=1e-15)
    hessian = exact_hessian(model, [theta])
    assert hessian.shape == (1, 1)
    assert hessian.item() == pytest.approx(0.02 * p * (1 - p) * (1 - 2 * p), abs=1e-15)


def chain_params():
    return {"first": leaf(0.3), "second": leaf(-0.4, 0.9), "cost": leaf(1.5)}


def chain_model(params):
    """a ~ Bern(σ(θ₁)); b ~ Bern(σ(θ₂[a])) (an index dependency); cost w·(a + 2b − 1)²."""
    def model(g):
        a = g.sample("a", Bernoulli(logits=params["first"].reshape(1)))
        b = g.sample("b", Bernoulli(logits=params["second"][a.long()]))
        g.cost("c", params["cost"] * (a + 2 * b - 1) ** 2)
    return model


def chain_objective(first, second, cost):
    """The same expectation written out by hand over the four outcomes (a, b)."""
    pa = torch.sigmoid(first)
    total = 0
    for a, weight_a in ((0, 1 - pa), (1, pa)):
        pb = torch.sigmoid(second[a])
        for b, weight_b in ((0, 1 - pb), (1, pb)):
            total = total + weight_a * weight_b * cost * (a + 2 * b - 1) ** 2
    return total


def test_exact_derivatives_of_a_two_node_chain() -> None:
    params = chain_params()
    inputs = tuple(p.detach() for p in params.values())
    gradient = torch.cat([g.reshape(-1) for g in torch.autograd.functional.jacobian(chain_objective, inputs)])
    blocks = torch.autograd.functional.hessian(chain_objective, inputs)
    hessian = torch.cat([torch.cat([blk.reshape(p.numel(), q.numel()) for blk, q in zip(row, inputs)], 1)
                         for row, p in zip(blocks, inputs)])
    assert torch.allclose(exact_objective(chain_model(params)), chain_objective(*inputs), atol=1e-14)
    assert torch.allclose(exact_gradient(chain_model(params), params), gradient, atol=1e-14)
    assert torch.allclose(exact_hessian(chain_model(params), params), hessian, atol=1e-14)


def test_exact_gradient_gives_zeros_for_unused_parameters() -> None:
    theta, unused = leaf(0.1), leaf(1.0, 2.0)

    def model(g):
        b = g.sample("b", Bernoulli(logits=theta.reshape(1)))
        g.cost("c", b)

    gradient = exact_gradient(model, [theta, unused])
    assert gradient.shape == (3,) and gradient[1:].tolist() == [0.0, 0.0]
    assert exact_hessian(model, [theta, unused])[1:].abs().max() == 0


def test_exact_derivatives_mix_enumeration_and_quadrature() -> None:
    """k ~ Cat(logits); x ~ N(loc[k], σ): E[x²] = Σ_k p_k (loc_k² + σ²)."""
    logits, loc, log_sigma = leaf(0.2, -0.3, 0.5), leaf(1.0, -0.5, 0.25), leaf(-0.2)

    def model(g):
        k = g.sample("k", Categorical(logits=logits.expand(2, 3)))
        x = g.sample("x", Normal(loc[k], log_sigma.exp()))
        g.cost("c", x**2)

    def closed_form(logits, loc, log_sigma):
        return (torch.softmax(logits, -1) * (loc**2 + torch.exp(2 * log_sigma))).sum()

    inputs = (logits.detach(), loc.detach(), log_sigma.detach())
    expected = torch.cat([g.reshape(-1) for g in torch.autograd.functional.jacobian(closed_form, inputs)])
    assert exact_objective(model, batch_ndim=1).item() == pytest.approx(closed_form(*inputs).item(), abs=1e-13)
    assert torch.allclose(exact_gradient(model, [logits, loc, log_sigma], batch_ndim=1), expected, atol=1e-13)


@pytest.mark.parametrize("dist", [
    lambda p: Gamma(p.exp().reshape(1), 1.0),
    lambda p: Independent(Normal(p.reshape(1, 1), 1.0), 1),
], ids=["Gamma", "Independent(Normal)"])
def test_exact_rejects_unsupported_distributions(dist) -> None:
    theta = leaf(0.5)

    def model(g):
        g.sample("z", dist(theta))  # refused here, before any cost

    with pytest.raises(UnsupportedDistributionError, match="node 'z'.*finite support.*Normal"):
        exact_gradient(model, [theta])


def test_exact_rejects_observed_values() -> None:
    theta = leaf(0.5)

    def model(g):
        g.cost("c", g.sample("b", Bernoulli(logits=theta.reshape(1)), value=torch.ones(1)))

    with pytest.raises(sg.GraphError, match="node 'b'.*value="):
        exact_objective(model)


def test_exact_needs_parameters_that_require_grad() -> None:
    with pytest.raises(ValueError, match="requires_grad"):
        exact_gradient(lambda g: None, [torch.zeros(2)])


# ----------------------------------------------------------------------------- Gauss–Hermite
def normal_moment_model(mu, log_sigma, power, order):
    def model(g):
        x = g.sample("x", Normal(mu.reshape(1), log_sigma.exp()), estimator=GaussHermite(order))
        g.cost("c", x**power)
    return model


def fourth_moment(mu, log_sigma):
    s2 = torch.exp(2 * log_sigma)
    return mu**4 + 6 * mu**2 * s2 + 3 * s2**2


def test_gauss_hermite_is_exact_below_degree_two_times_order() -> None:
    """E[x⁴] = μ⁴ + 6μ²σ² + 3σ⁴, exactly (with first and second derivatives) from 3 points."""
    mu, log_sigma = leaf(0.4), leaf(-0.2)
    params = [mu, log_sigma]
    inputs = (mu.detach(), log_sigma.detach())
    gradient = torch.stack(torch.autograd.functional.jacobian(fourth_moment, inputs))
    hessian = torch.stack([torch.stack(row) for row in torch.autograd.functional.hessian(fourth_moment, inputs)])
    with sg.Graph() as g:
        normal_moment_model(mu, log_sigma, 4, order=3)(g)
    assert g.surrogate().item() == pytest.approx(fourth_moment(*inputs).item(), rel=1e-13)
    # The override in exact_* replaces the estimator with the default order; results agree.
    assert torch.allclose(exact_gradient(normal_moment_model(mu, log_sigma, 4, 3), params), gradient, atol=1e-12)
    assert torch.allclose(exact_hessian(normal_moment_model(mu, log_sigma, 4, 3), params), hessian, atol=1e-12)


def test_gauss_hermite_is_not_exact_at_degree_two_times_order() -> None:
    """The bound is tight: 2 points integrate degree ≤ 3 exactly, but not x⁴."""
    mu, log_sigma = leaf(0.4), leaf(-0.2)
    with sg.Graph() as g:
        normal_moment_model(mu, log_sigma, 4, order=2)(g)
    assert abs(g.surrogate().item() - fourth_moment(mu, log_sigma).item()) > 0.1
    with sg.Graph() as g:
        normal_moment_model(mu, log_sigma, 3, order=2)(g)
    s2 = math.exp(2 * log_sigma.item())
    assert g.surrogate().item() == pytest.approx(mu.item() ** 3 + 3 * mu.item() * s2, rel=1e-13)


def test_gauss_hermite_lays_points_along_a_new_dimension() -> None:
    with sg.Graph(batch_ndim=1) as g:
        x = g.sample("x", Normal(torch.zeros(5), 1.0), estimator=GaussHermite(4))
        g.cost("c", x**2)
    assert x.shape == (4, 5)
    assert g.surrogate().item() == pytest.approx(1.0, rel=1e-13)


@pytest.mark.parametrize("dist, value, match", [
    (Bernoulli(probs=torch.tensor([0.5])), None, "Normal only"),
    (Normal(torch.zeros(1), 1.0), torch.zeros(1), "value="),
])
def test_gauss_hermite_errors(dist, value, match) -> None:
    with pytest.raises(sg.GraphError, match=match), sg.Graph() as g:
        g.sample("x", dist, estimator=GaussHermite(3), value=value)


def test_gauss_hermite_order_must_be_positive() -> None:
    with pytest.raises(ValueError, match="order"):
        GaussHermite(0)


# ----------------------------------------------------------------------------- assert_unbiased
def synthetic(exact: torch.Tensor, n: int = 4000, shift: float = 0.0) -> torch.Tensor:
    """n draws of exact + shift + N(0, diag(1, 4, ...)) noise: [n, d]."""
    generator = torch.Generator().manual_seed(3)
    scale = torch.arange(1, len(exact) + 1, dtype=DOUBLE)
    return exact + shift + scale * torch.randn(n, len(exact), generator=generator, dtype=DOUBLE)


def test_assert_unbiased_passes_on_unbiased_samples() -> None:
    exact = torch.tensor([0.5, -1.0, 2.0], dtype=DOUBLE)
    report = assert_unbiased(synthetic(exact), exact, alpha=1e-4, name="synthetic")
    assert isinstance(report, UnbiasednessReport) and report.passed


def test_assert_unbiased_fails_on_shifted_samples() -> None:
    """A shift of 0.5 with standard errors ≤ 3/√4000 = 0.047 gives |z| ≥ 10 ≫ 4.6."""
    exact = torch.tensor([0.5, -1.0, 2.0], dtype=DOUBLE)
    with pytest.raises(UnbiasednessError) as failure:
        assert_unbiased(synthetic(exact, shift=0.5), exact, alpha=1e-4, name="shifted")
    report = failure.value.report
    assert report.failed.all()
    message = str(failure.value)
    assert "shifted" in message and "FAIL" in message
    for column in ("component", "estimate", "exact", "std error", "z", "threshold"):
        assert column in message


def test_report_fields() -> None:
    exact = torch.tensor([0.0, 1.0], dtype=DOUBLE)
    samples = torch.tensor([[1.0, 1.0], [-1.0, 3.0], [0.0, 2.0]], dtype=DOUBLE)
    report = unbiasedness_report(samples, exact, alpha=0.01, name="fields", labels=["a", "b"])
    assert report.n == 3 and report.alpha == 0.01 and report.labels == ["a", "b"]
    assert report.threshold == pytest.approx(z_threshold(0.01, 2)) == pytest.approx(2.807, abs=1e-3)
    assert report.estimate.tolist() == [0.0, 2.0]
    assert report.standard_error.tolist() == pytest.approx([1 / math.sqrt(3)] * 2)
    assert report.z.tolist() == pytest.approx([0.0, math.sqrt(3)])
    assert report.passed and not report.failed.any()
    assert report.max_abs_z == pytest.approx(math.sqrt(3))
    assert "fields: PASSED" in str(report)


def test_zero_variance_components_must_match_to_float_tolerance() -> None:
    exact = torch.tensor([0.25, 1.0], dtype=DOUBLE)
    noise = synthetic(exact[:1])
    exact_column = torch.full((len(noise), 1), 1.0 + 1e-12, dtype=DOUBLE)  # round-off: passes
    report = assert_unbiased(torch.cat([noise, exact_column], 1), exact)
    assert report.standard_error[1] == 0 and not report.failed[1]
    off_column = torch.full((len(noise), 1), 1.001, dtype=DOUBLE)  # deterministic and wrong: fails
    with pytest.raises(UnbiasednessError) as failure:
        assert_unbiased(torch.cat([noise, off_column], 1), exact)
    assert failure.value.report.failed.tolist() == [False, True]
    assert math.isinf(failure.value.report.z[1])


def test_float32_tolerance_is_looser() -> None:
    exact = torch.tensor([1.0])
    samples = torch.full((10, 1), 1.0001)  # within √eps(float32) ≈ 3.5e-4
    assert assert_unbiased(samples, exact).passed
    with pytest.raises(UnbiasednessError):
        assert_unbiased(samples.double(), exact.double())


def test_non_finite_estimates_fail() -> None:
    samples = torch.tensor([[0.0], [math.nan]], dtype=DOUBLE)
    with pytest.raises(UnbiasednessError):
        assert_unbiased(samples, torch.zeros(1, dtype=DOUBLE))


@pytest.mark.parametrize("samples, exact, match", [
    (torch.zeros(5), torch.zeros(5), r"\[n, d\]"),
    (torch.zeros(5, 2), torch.zeros(3), r"exact must have shape"),
    (torch.zeros(1, 2), torch.zeros(2), "n >= 2"),
])
def test_assert_unbiased_checks_shapes(samples, exact, match) -> None:
    with pytest.raises(ValueError, match=match):
        assert_unbiased(samples, exact)


def test_round_off_is_marked_not_failed() -> None:
    exact = torch.tensor([1.0, 0.5], dtype=DOUBLE)
    samples = torch.stack([torch.full((50,), 1.0 + 1e-13, dtype=DOUBLE),
                           0.5 + 1e-13 * torch.randn(50, generator=torch.Generator().manual_seed(0), dtype=DOUBLE)], 1)
    report = assert_unbiased(samples, exact)
    assert report.max_abs_z == 0.0 and "equal within float tolerance" in report.table()


def counting(draws):
    """A draw function returning the given sample sets in turn; ``.calls`` counts the calls."""
    def draw():
        draw.calls += 1
        return draws[draw.calls - 1]
    draw.calls = 0
    return draw


def test_confirmed_check_draws_once_when_the_first_set_passes() -> None:
    exact = torch.tensor([0.5, -1.0], dtype=DOUBLE)
    draw = counting([synthetic(exact)])
    assert assert_unbiased_confirmed(draw, exact, alpha=1e-4).passed and draw.calls == 1


def test_confirmed_check_passes_when_the_second_set_passes() -> None:
    exact = torch.tensor([0.5, -1.0], dtype=DOUBLE)
    draw = counting([synthetic(exact, shift=0.5), synthetic(exact)])
    report = assert_unbiased_confirmed(draw, exact, alpha=1e-4)
    assert report.passed and draw.calls == 2
    assert report.alpha == pytest.approx(1e-2)  # each stage runs at √alpha


def test_confirmed_check_fails_when_both_sets_fail() -> None:
    exact = torch.tensor([0.5, -1.0], dtype=DOUBLE)
    draw = counting([synthetic(exact, shift=0.5), synthetic(exact, shift=0.5)])
    with pytest.raises(UnbiasednessError, match="failed twice") as failure:
        assert_unbiased_confirmed(draw, exact, alpha=1e-4, name="shifted twice")
    assert failure.value.first is not None and not failure.value.first.passed
    assert not failure.value.report.passed


def test_bonferroni_threshold() -> None:
    assert z_threshold(0.05, 1) == pytest.approx(1.95996, abs=1e-5)
    assert z_threshold(1e-4, 100) > z_threshold(1e-4, 1) > 3.8
    assert math.isfinite(z_threshold(1e-12, 10**6))  # far tails stay finite


# ----------------------------------------------------------------------------- samplers
def test_gradient_samples_stacks_flat_estimates() -> None:
    calls = iter(range(5))
    samples = gradient_samples(lambda: torch.full((2, 2), float(next(calls))), 5)
    assert samples.shape == (5, 4) and samples[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_per_sample_derivatives_match_each_copy() -> None:
    """For a deterministic f, every copy's gradient and Hessian is f's: here f = Σ a³·b."""
    def surrogate(copies):
        a, b = copies["a"], copies["b"]  # [n, 2], [n]
        return ((a**3).sum(-1) * b).mean()

    a, b = torch.tensor([0.5, -1.0], dtype=DOUBLE), torch.tensor(2.0, dtype=DOUBLE)
    out = per_sample_derivatives(surrogate, {"a": a, "b": b}, n=3, hessian=True)
    gradient = torch.cat([3 * a**2 * b, (a**3).sum().reshape(1)])
    hessian = torch.tensor([[6 * a[0] * b, 0, 3 * a[0] ** 2], [0, 6 * a[1] * b, 3 * a[1] ** 2],
                            [3 * a[0] ** 2, 3 * a[1] ** 2, 0]], dtype=DOUBLE)
    assert out.gradients.shape == (3, 3) and out.hessians.shape == (3, 3, 3)
    assert torch.allclose(out.gradients, gradient.expand(3, 3))
    assert torch.allclose(out.hessians, hessian.expand(3, 3, 3))
    assert per_sample_derivatives(surrogate, {"a": a, "b": b}, n=3).hessians is None


def test_per_sample_and_repeated_estimates_agree(seeded) -> None:
    """The per-copy trick gives the same estimator as n separate graphs: both pass the check
    (two checks at alpha 1e-4: false-failure rate ≤ 2e-4; fixed seed)."""
    theta = leaf(0.4)

    def one_estimate(logit):
        with sg.Graph() as g:
            b = g.sample("b", Bernoulli(logits=logit))
            g.cost("c", (b - 0.2) ** 2)
        return g.surrogate()

    exact = exact_gradient(chain_free_model(theta), [theta])
    repeated = gradient_samples(lambda: torch.autograd.grad(one_estimate(theta.reshape(1)), theta)[0], 2000)
    batched = per_sample_derivatives(lambda copies: one_estimate(copies[0]), [theta], 2000).gradients
    assert_unbiased(repeated, exact, name="repeated graphs")
    assert_unbiased(batched, exact, name="per-sample copies")


def chain_free_model(theta):
    def model(g):
        b = g.sample("b", Bernoulli(logits=theta.reshape(1)))
        g.cost("c", (b - 0.2) ** 2)
    return model
