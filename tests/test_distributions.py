"""scgrad.distributions: TanhNormal's log-density against a numerical change of variables and
torch's own transformed distribution, its pathwise gradients, the Delta point mass, and
DiagNormal against torch's Independent(Normal)."""
import math

import numpy as np
import pytest
import torch
from torch.distributions import Independent, Normal, TransformedDistribution, kl_divergence
from torch.distributions.transforms import TanhTransform

import scgrad as sg
from scgrad.distributions import Delta, DiagNormal, TanhNormal, tanh_log_abs_det_jacobian
from scgrad.estimators import Reparam


# ------------------------------------------------------------------ TanhNormal: log-density
def numerical_log_density(loc, scale, a, h=1e-6):
    """log p(a) of a = tanh(x), x ~ N(loc, scale²) per dimension, from the CDF
    P(A ≤ t) = Φ((atanh t − loc) / scale) differentiated by central differences (float64),
    summed over the last dimension (independent dimensions)."""
    cdf = lambda t: torch.special.ndtr((torch.atanh(t) - loc) / scale)  # noqa: E731
    density = (cdf(a + h) - cdf(a - h)) / (2 * h)
    return density.log().sum(-1)


def test_log_prob_matches_numerical_change_of_variables():
    torch.manual_seed(0)
    loc = torch.randn(6, 2, dtype=torch.float64)
    scale = torch.rand(6, 2, dtype=torch.float64) + 0.3
    a = torch.rand(6, 2, dtype=torch.float64) * 1.8 - 0.9  # away from ±1, where h would cross the edge
    expected = numerical_log_density(loc, scale, a)
    torch.testing.assert_close(TanhNormal(loc, scale).log_prob(a), expected, rtol=1e-7, atol=1e-7)


def test_log_prob_of_own_samples_matches_torch_transformed_distribution():
    torch.manual_seed(1)
    loc, scale = torch.randn(50, 3), torch.rand(50, 3) + 0.2
    dist = TanhNormal(loc, scale)
    a = dist.rsample((4,))
    reference = TransformedDistribution(Independent(Normal(loc, scale), 1), [TanhTransform()])
    # cached path (own sample) and atanh path (a fresh tensor with the same values)
    torch.testing.assert_close(dist.log_prob(a), reference.log_prob(a), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(dist.log_prob(a.clone()), reference.log_prob(a), rtol=1e-5, atol=1e-4)


def test_log_prob_of_own_sample_stays_exact_where_tanh_rounds_to_one():
    loc = torch.tensor([[12.0, -15.0]])  # tanh rounds to ±1 exactly in float32
    scale = torch.tensor([[0.5, 0.5]])
    torch.manual_seed(2)
    dist = TanhNormal(loc, scale)
    a = dist.rsample()
    assert a.abs().eq(1.0).all()
    torch.manual_seed(2)
    x = (loc + torch.randn(1, 2) * scale).double()
    # float64 reference: log(1 − tanh²x) = −2(|x| − log 2 + log1p(e^{−2|x|}))
    log_det = -2 * (x.abs() - math.log(2) + torch.log1p(torch.exp(-2 * x.abs())))
    expected = (Normal(loc.double(), scale.double()).log_prob(x) - log_det).sum(-1)
    got = dist.log_prob(a)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-4)
    # negative control: without the cached pre-tanh value the density at a = ±1 is lost
    reference = TransformedDistribution(Independent(Normal(loc, scale), 1), [TanhTransform()])
    assert not torch.isfinite(reference.log_prob(a)).all()


def test_log_abs_det_jacobian_is_stable_and_exact():
    x = torch.tensor([-30.0, -5.0, -0.3, 0.0, 0.7, 4.0, 30.0], dtype=torch.float64)
    naive = torch.log1p(-torch.tanh(x) ** 2)
    exact = tanh_log_abs_det_jacobian(x)
    moderate = x.abs() < 5
    torch.testing.assert_close(exact[moderate], naive[moderate])
    assert torch.isfinite(exact).all() and not torch.isfinite(naive).all()  # 1 − tanh²(30) is 0


# ------------------------------------------------------------------ TanhNormal: sampling, gradients
def test_rsample_gradient_is_the_pathwise_derivative():
    loc = torch.randn(8, 2).requires_grad_()
    scale = (torch.rand(8, 2) + 0.1).requires_grad_()
    torch.manual_seed(3)
    a = TanhNormal(loc, scale).rsample()
    a.sum().backward()
    torch.manual_seed(3)
    eps = torch.randn(8, 2)
    sech2 = 1 - torch.tanh(loc.detach() + eps * scale.detach()) ** 2
    torch.testing.assert_close(loc.grad, sech2)
    torch.testing.assert_close(scale.grad, sech2 * eps)


def test_cached_and_atanh_log_prob_have_the_same_gradients():
    loc = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    scale = (torch.rand(5, 3, dtype=torch.float64) + 0.3).requires_grad_()
    dist = TanhNormal(loc, scale)
    a = dist.rsample()
    cached = torch.autograd.grad(dist.log_prob(a).sum(), (loc, scale), retain_graph=True)
    fresh = TanhNormal(loc, scale)  # no cache: log_prob goes through atanh(a), a still attached
    through_atanh = torch.autograd.grad(fresh.log_prob(a).sum(), (loc, scale))
    for g1, g2 in zip(cached, through_atanh):
        torch.testing.assert_close(g1, g2)


def test_graph_gradient_of_expected_action_matches_quadrature():
    """d/dμ E[tanh(μ + σz)] = E[sech²(μ + σz)], by Gauss–Hermite quadrature; the pathwise
    Monte Carlo estimate from a Reparam node is within 4 standard errors (seeded)."""
    mu, sigma, n = 0.4, 0.8, 200_000
    z, w = np.polynomial.hermite_e.hermegauss(80)
    exact = float(np.sum(w * (1 - np.tanh(mu + sigma * z) ** 2)) / np.sqrt(2 * np.pi))
    loc = torch.tensor(mu, requires_grad=True)
    torch.manual_seed(4)
    graph = sg.Graph()
    a = graph.sample("a", TanhNormal(loc.expand(n, 1), torch.full((n, 1), sigma)), estimator=Reparam())
    graph.cost("c", a.squeeze(-1))
    graph.surrogate().backward()
    se = float((1 - a.detach() ** 2).std()) / math.sqrt(n)
    assert abs(loc.grad.item() - exact) < 4 * se


def test_shapes_mode_expand_and_validation():
    loc, scale = torch.zeros(5, 3), torch.ones(5, 3)
    dist = TanhNormal(loc, scale)
    assert dist.batch_shape == (5,) and dist.event_shape == (3,) and dist.has_rsample
    sample = dist.sample((4,))
    assert sample.shape == (4, 5, 3) and not sample.requires_grad
    assert dist.log_prob(sample).shape == (4, 5)
    torch.testing.assert_close(TanhNormal(torch.full((2,), 0.5), torch.ones(2)).mode, torch.tanh(torch.full((2,), 0.5)))
    wide = dist.expand((2, 5))
    assert wide.batch_shape == (2, 5) and wide.rsample().shape == (2, 5, 3)
    assert TanhNormal(torch.zeros(2), torch.tensor(1.0)).scale.shape == (2,)  # scale broadcasts
    with pytest.raises(ValueError):
        TanhNormal(loc, -scale, validate_args=True)
    with pytest.raises(ValueError):
        TanhNormal(loc, scale, validate_args=True).log_prob(torch.full((5, 3), 2.0))
    with pytest.raises(ValueError, match="action dimension"):
        TanhNormal(torch.tensor(0.0), torch.tensor(1.0))


# ------------------------------------------------------------------ Delta
def test_delta_passes_pathwise_gradients_through_a_graph():
    theta = torch.tensor([0.5, -1.0], requires_grad=True)
    mu = torch.tanh(theta * torch.arange(1.0, 4.0)[:, None])  # [3, 2]: three states, 2-D actions
    graph = sg.Graph()
    a = graph.sample("action", Delta(mu, event_dim=1), estimator=Reparam())
    graph.cost("neg_q", -(a ** 2).sum(-1))
    graph_grad, = torch.autograd.grad(graph.surrogate(), theta, retain_graph=True)
    direct, = torch.autograd.grad(-(mu ** 2).sum(-1).mean(), theta)
    torch.testing.assert_close(graph_grad, direct)
    torch.testing.assert_close(a, mu)


def test_delta_log_prob_shapes_and_moments():
    loc = torch.randn(5, 3)
    dist = Delta(loc, event_dim=1)
    assert dist.batch_shape == (5,) and dist.event_shape == (3,) and dist.has_rsample
    assert dist.rsample((2,)).shape == (2, 5, 3) and dist.sample().shape == (5, 3)
    assert dist.log_prob(loc).eq(0).all() and dist.log_prob(loc).shape == (5,)
    other = loc.clone()
    other[1, 2] += 1.0
    assert dist.log_prob(other).tolist()[1] == -math.inf and dist.log_prob(other)[[0, 2, 3, 4]].eq(0).all()
    assert torch.equal(dist.mean, loc) and torch.equal(dist.mode, loc)
    assert dist.variance.eq(0).all() and dist.entropy().shape == (5,)
    assert Delta(loc).batch_shape == (5, 3) and Delta(loc).log_prob(loc).shape == (5, 3)
    assert dist.expand((4, 5)).rsample().shape == (4, 5, 3)
    with pytest.raises(ValueError, match="event_dim"):
        Delta(loc, event_dim=3)


# ------------------------------------------------------------------ DiagNormal
def _diag_pair(seed=0, batch=5, dim=3):
    torch.manual_seed(seed)
    loc = torch.randn(batch, dim, dtype=torch.float64, requires_grad=True)
    log_scale = (0.5 * torch.randn(dim, dtype=torch.float64)).requires_grad_()
    return loc, log_scale


def test_diag_normal_equals_independent_normal_in_values_and_gradients():
    loc, log_scale = _diag_pair()
    ours = DiagNormal(loc, log_scale)
    theirs = Independent(Normal(loc, log_scale.exp()), 1)
    x = torch.randn(5, 3, dtype=torch.float64)
    for name in ("log_prob", "entropy"):
        a = getattr(ours, name)(x) if name == "log_prob" else ours.entropy()
        b = getattr(theirs, name)(x) if name == "log_prob" else theirs.entropy()
        assert a.shape == b.shape == (5,)
        torch.testing.assert_close(a, b)
        ga = torch.autograd.grad(a.sum(), (loc, log_scale), allow_unused=True, materialize_grads=True,
                                 retain_graph=True)
        gb = torch.autograd.grad(b.sum(), (loc, log_scale), allow_unused=True, materialize_grads=True,
                                 retain_graph=True)
        for u, v in zip(ga, gb):
            torch.testing.assert_close(u, v)
        assert ga[1].abs().sum() > 0  # log σ moves both
    for name in ("mean", "mode", "stddev", "variance"):
        torch.testing.assert_close(getattr(ours, name), getattr(theirs, name))
    assert ours.batch_shape == (5,) and ours.event_shape == (3,)


def test_diag_normal_kl_equals_torch_and_vanishes_at_equality():
    loc, log_scale = _diag_pair()
    loc2, log_scale2 = _diag_pair(seed=1)
    ours = kl_divergence(DiagNormal(loc, log_scale), DiagNormal(loc2, log_scale2))
    theirs = kl_divergence(Independent(Normal(loc, log_scale.exp()), 1), Independent(Normal(loc2, log_scale2.exp()), 1))
    torch.testing.assert_close(ours, theirs)
    assert (ours > 0).all()
    same = kl_divergence(DiagNormal(loc, log_scale), DiagNormal(loc, log_scale))
    torch.testing.assert_close(same, torch.zeros(5, dtype=torch.float64))
    # second derivatives too: TRPO's Fisher-vector product differentiates the KL's gradient
    p = DiagNormal(loc.detach(), log_scale.detach())
    kl_ours = kl_divergence(p, DiagNormal(loc, log_scale)).sum()
    kl_theirs = kl_divergence(Independent(Normal(loc.detach(), log_scale.detach().exp()), 1),
                              Independent(Normal(loc, log_scale.exp()), 1)).sum()
    g_ours = torch.autograd.grad(kl_ours, log_scale, create_graph=True)[0]
    g_theirs = torch.autograd.grad(kl_theirs, log_scale, create_graph=True)[0]
    h_ours = torch.autograd.grad(g_ours.sum(), log_scale)[0]
    h_theirs = torch.autograd.grad(g_theirs.sum(), log_scale)[0]
    torch.testing.assert_close(h_ours, h_theirs)


def test_diag_normal_rsample_moments_shapes_and_bad_input():
    torch.manual_seed(2)
    loc = torch.tensor([[1.0, -2.0]])
    log_scale = torch.tensor([0.0, math.log(3.0)])
    dist = DiagNormal(loc, log_scale)
    x = dist.rsample((20000,))
    assert x.shape == (20000, 1, 2)
    # 20000 draws: standard errors σ/√n = 0.007 and 0.021; 5 standard errors → false-failure rate < 1e-6
    torch.testing.assert_close(x.mean(0), loc, rtol=0, atol=5 * 3.0 / math.sqrt(20000))
    torch.testing.assert_close(x.std(0), torch.tensor([[1.0, 3.0]]), rtol=0.05, atol=0)
    assert dist.expand((4,)).log_prob(torch.zeros(4, 2)).shape == (4,)
    with pytest.raises(ValueError, match="at least one dimension"):
        DiagNormal(torch.tensor(0.0), torch.tensor(0.0))
    with pytest.raises(ValueError, match="must broadcast"):
        DiagNormal(torch.zeros(2, 3), torch.zeros(4))
