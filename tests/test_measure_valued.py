"""MeasureValued: unbiased for the mean and the scale of Normal nodes against closed forms (the
Monte Carlo gradient survey's three test functions), for coupled coordinates of an
Independent(Normal), with a negative control and clear errors.

Statistics: ``assert_unbiased`` at alpha = 1e-4 on N independent estimates, torch seeded.
"""
import math

import pytest
import torch
from torch.distributions import Bernoulli, Independent, Normal

import scgrad as sg
from scgrad.errors import GraphError
from scgrad.estimators import MeasureValued
from scgrad.testing import UnbiasednessError, assert_unbiased, per_sample_derivatives

N = 20_000
MU = torch.tensor([0.3, -0.5], dtype=torch.float64)
LOG_SIGMA = torch.tensor([-0.2, 0.4], dtype=torch.float64)
K = 1.0

#: f(x) and E[f(x)] for x ~ N(μ, σ²), elementwise
FUNCTIONS = {
    "square": (lambda x: (x - K) ** 2, lambda m, s: (m - K) ** 2 + s ** 2),
    "gaussian": (lambda x: torch.exp(-K * x ** 2),
                 lambda m, s: torch.exp(-K * m ** 2 / (1 + 2 * K * s ** 2)) / torch.sqrt(1 + 2 * K * s ** 2)),
    "cosine": (lambda x: torch.cos(K * x), lambda m, s: torch.cos(K * m) * torch.exp(-(K * s) ** 2 / 2)),
}


def closed_form_gradient(expectation, mu=MU, log_sigma=LOG_SIGMA):
    mu, log_sigma = mu.clone().requires_grad_(), log_sigma.clone().requires_grad_()
    return torch.cat(torch.autograd.grad(expectation(mu, log_sigma.exp()).sum(), [mu, log_sigma]))


def estimates(estimator, f, coupled=False, n=N):
    def surrogate(copies):
        mu, log_sigma = copies
        with sg.Graph() as g:
            if coupled:
                x = g.sample("x", Independent(Normal(mu, log_sigma.exp()), 1), estimator=estimator)
            else:
                x = g.sample("x", Normal(mu, log_sigma.exp()), estimator=estimator)
            g.cost("f", f(x))
        return g.surrogate() * (1 if coupled else 2)  # the surrogate averages the 2 elements
    return per_sample_derivatives(surrogate, [MU, LOG_SIGMA], n).gradients


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_unbiased_for_the_mean_and_the_scale(name):
    torch.manual_seed(0)
    f, expectation = FUNCTIONS[name]
    assert_unbiased(estimates(MeasureValued(), f), closed_form_gradient(expectation), 1e-4)


A = torch.tensor([1.0, -2.0], dtype=torch.float64)


def coupled_cost(x):
    """(a·x − ½)²: couples the two coordinates of one event."""
    return ((x * A).sum(-1) - 0.5) ** 2


def test_unbiased_when_the_cost_couples_the_coordinates_of_an_event():
    torch.manual_seed(1)
    exact = closed_form_gradient(lambda m, s: (((A * m).sum() - 0.5) ** 2 + (A ** 2 * s ** 2).sum()).expand(1))
    assert_unbiased(estimates(MeasureValued(), coupled_cost, coupled=True), exact, 1e-4)


class WithoutNormalisingConstant(MeasureValued):
    """Negative control: the mean's constant 1/(σ√(2π)) taken as 1/σ."""

    def terms(self, node, credit):
        terms = super().terms(node, credit)
        loc = node.dist.loc
        return type(terms)(control_variate=terms.control_variate
                           + (math.sqrt(2 * math.pi) - 1) * _mean_part(node, credit, loc))


def _mean_part(node, credit, loc):
    """The mean's part of MeasureValued's term, recomputed (value 0)."""
    f = credit.value.movedim(node.points.dim, 0)
    g = (f[1] - f[2]) / (node.dist.scale.detach() * math.sqrt(2 * math.pi))
    return g.detach() * (loc - loc.detach())


def test_a_wrong_normalising_constant_is_caught():
    torch.manual_seed(0)
    f, expectation = FUNCTIONS["square"]
    with pytest.raises(UnbiasednessError):
        assert_unbiased(estimates(WithoutNormalisingConstant(), f), closed_form_gradient(expectation), 1e-4)


def test_the_points_lie_along_their_own_dimension_and_only_the_sample_counts_in_the_value():
    with sg.Graph() as g:
        x = g.sample("x", Independent(Normal(torch.zeros(5, 3), 1.0), 1), estimator=MeasureValued())
        g.cost("f", x.sum(-1))
    assert x.shape == (10, 5, 3) and g["x"].points.dim == -2      # 1 + 3·3 points
    assert torch.allclose(g.surrogate(), x[0].sum(-1).mean())
    # point 1 + 3e changes coordinate e only
    changed = (x[1:] != x[0]).reshape(3, 3, 5, 3)                  # [e, kind, batch, coordinate]
    for e in range(3):
        assert changed[e, :, :, e].all() and not changed[e, :, :, [c for c in range(3) if c != e]].any()


def test_clear_errors():
    with pytest.raises(GraphError, match="node 'b': MeasureValued supports Normal"):
        with sg.Graph() as g:
            g.sample("b", Bernoulli(logits=torch.zeros(3)), estimator=MeasureValued())
    with pytest.raises(GraphError, match="node 'x'.*cannot score a given value"):
        with sg.Graph() as g:
            g.sample("x", Normal(torch.zeros(3), 1.0), estimator=MeasureValued(), value=torch.zeros(3))
