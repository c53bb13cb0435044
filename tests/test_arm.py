"""ARM and DisARM: unbiased against exact gradients on bit problems, two evaluations laid out
as a point dimension, clear errors; negative controls with the classic bugs fail the same check.

Statistics: each check is ``assert_unbiased`` at alpha = 1e-4 (Bonferroni over the gradient's
components) on N independent estimates from ``per_sample_derivatives``, torch seeded, so a
check fails falsely with probability ≤ 1e-4 and reproduces exactly. The random graphs of
``tests/test_properties.py`` (FIRST_ORDER_CASES) cover ARM and DisARM composed with other nodes.
"""
import itertools

import pytest
import torch
from torch.distributions import Bernoulli, Categorical, Independent, Normal

import scgrad as sg
from scgrad.errors import GraphError
from scgrad.estimators import ARM, DisARM, Enumerate
from scgrad.testing import UnbiasednessError, assert_unbiased, per_sample_derivatives

N = 20_000
ALPHA = 1e-4
WEIGHTS = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)


def vector_cost(bits: torch.Tensor) -> torch.Tensor:
    """A nonlinear cost of 3 bits [..., 3]: (w·b − 0.3)² + b₀b₂."""
    return ((bits * WEIGHTS).sum(-1) - 0.3) ** 2 + bits[..., 0] * bits[..., 2]


def exact_vector_gradient(logits: torch.Tensor) -> torch.Tensor:
    """∂E[vector_cost(b)]/∂logits for b ~ Independent(Bernoulli(logits)) [3], by enumerating 8 cases."""
    logits = logits.detach().requires_grad_()
    total = 0
    for bits in itertools.product([0.0, 1.0], repeat=3):
        b = torch.tensor(bits, dtype=torch.float64)
        total = total + Bernoulli(logits=logits).log_prob(b).sum().exp() * vector_cost(b)
    (grad,) = torch.autograd.grad(total, logits)
    return grad


def vector_estimates(estimator, logits: torch.Tensor, n: int = N) -> torch.Tensor:
    """n independent gradient estimates [n, 3], one graph with n copies as its batch."""
    def surrogate(copies):
        with sg.Graph() as g:
            b = g.sample("b", Independent(Bernoulli(logits=copies[0]), 1), estimator=estimator)
            g.cost("f", vector_cost(b))
        return g.surrogate()
    return per_sample_derivatives(surrogate, [logits], n).gradients


@pytest.mark.parametrize("estimator", [ARM(), DisARM()], ids=repr)
def test_unbiased_on_a_vector_of_bits_with_a_nonlinear_cost(estimator):
    torch.manual_seed(0)
    logits = torch.tensor([0.4, -1.1, 2.0], dtype=torch.float64)
    assert_unbiased(vector_estimates(estimator, logits), exact_vector_gradient(logits), ALPHA)


@pytest.mark.parametrize("estimator", [ARM(), DisARM()], ids=repr)
@pytest.mark.parametrize("target", [0.45, 0.49, 0.499])
def test_unbiased_on_the_toy_with_a_batch_of_single_bits(estimator, target):
    """E[(b − t)²] per bit of a Bernoulli batch [4]: ∂/∂φ = σ'(φ)(1 − 2t)."""
    torch.manual_seed(1)
    logits = torch.tensor([0.0, 1.5, -0.5, 3.0], dtype=torch.float64)

    def surrogate(copies):
        with sg.Graph() as g:
            b = g.sample("b", Bernoulli(logits=copies[0]), estimator=estimator)
            g.cost("f", (b - target) ** 2)
        return g.surrogate() * 4  # the surrogate averages the 4 bits; the exact gradient sums them
    estimates = per_sample_derivatives(surrogate, [logits], N).gradients
    p = torch.sigmoid(logits)
    assert_unbiased(estimates, p * (1 - p) * (1 - 2 * target), ALPHA)


class NotAntitheticARM(ARM):
    """The classic bug: the second point drawn from a fresh uniform instead of 1 − u."""

    def draw(self, dist, ctx):
        drawn = super().draw(dist, ctx)
        fresh = (torch.rand_like(drawn.noise) < torch.sigmoid(dist.base_dist.logits.detach())).to(drawn.value.dtype)
        value = drawn.value.clone()
        value[1] = fresh
        return type(drawn)(value, dist.log_prob(value), points=drawn.points, noise=drawn.noise)


class DisARMWithoutSign(DisARM):
    """The classic bug: the (−1)^b̃ factor dropped."""

    def coefficient(self, f_b, f_pair, b, b_pair, logits, u):
        return super().coefficient(f_b, f_pair, b, b_pair, logits, u) * (1 - 2 * b_pair)


@pytest.mark.parametrize("estimator", [NotAntitheticARM(), DisARMWithoutSign()], ids=lambda e: type(e).__name__)
def test_negative_controls_with_the_classic_bugs_fail_the_same_check(estimator):
    torch.manual_seed(0)
    logits = torch.tensor([0.4, -1.1, 2.0], dtype=torch.float64)
    with pytest.raises(UnbiasednessError):
        assert_unbiased(vector_estimates(estimator, logits), exact_vector_gradient(logits), ALPHA)


def test_disarm_has_lower_variance_than_arm_on_the_same_problem():
    """DisARM integrates ARM's uniform out given the pair: its variance cannot be higher.
    Here it is clearly lower (the margin, 0.8×, is far from the measured ratio)."""
    torch.manual_seed(2)
    logits = torch.tensor([0.4, -1.1, 2.0], dtype=torch.float64)
    arm, disarm = (vector_estimates(e, logits, 5000).var(0).sum() for e in (ARM(), DisARM()))
    assert disarm < 0.8 * arm


def test_the_pair_lies_along_a_point_dimension_and_averages_the_costs():
    logits = torch.zeros(5, 3)
    with sg.Graph() as g:
        b = g.sample("b", Independent(Bernoulli(logits=logits), 1), estimator=ARM())
        g.cost("f", b.sum(-1))
    assert b.shape == (2, 5, 3) and g["b"].shape == (2, 5) and g["b"].points.dim == -2
    assert torch.allclose(g.surrogate(), b.sum(-1).mean())  # ½ f(b) + ½ f(b̃), averaged over the batch
    # each bit of the pair is antithetic: b = 1[u < ½], b̃ = 1[1 − u < ½], so b̃ = 1 − b here
    assert torch.equal(b[1], 1 - b[0])


def test_after_an_enumerated_node_the_points_multiply():
    """ARM conditioned on an enumerated Categorical: 3 × 2 points, exact weighting of the first."""
    table = torch.tensor([-1.0, 0.0, 2.0])
    with sg.Graph(batch_ndim=1) as g:
        k = g.sample("k", Categorical(logits=torch.zeros(4, 3)), estimator=Enumerate())
        b = g.sample("b", Bernoulli(logits=table[k]), estimator=ARM())
        g.cost("f", b * (k + 1))
    assert k.shape == (3, 1) and b.shape == (2, 3, 1)  # pair × support × (the batch, broadcast)
    expected = (b * (k + 1)).mean()  # p(k) = ⅓ for each category, ½ for each point of the pair
    assert torch.allclose(g.surrogate(), expected)


@pytest.mark.parametrize("estimator", [ARM(), DisARM()], ids=repr)
def test_clear_errors_for_other_distributions_and_given_values(estimator):
    with pytest.raises(GraphError, match="node 'x'.*supports Bernoulli and Independent\\(Bernoulli\\), not Normal"):
        with sg.Graph() as g:
            g.sample("x", Normal(torch.zeros(3), 1.0), estimator=estimator)
    with pytest.raises(GraphError, match="node 'b'.*cannot score a given value"):
        with sg.Graph() as g:
            g.sample("b", Bernoulli(logits=torch.zeros(3)), estimator=estimator, value=torch.ones(3))
