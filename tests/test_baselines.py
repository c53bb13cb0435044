"""Baselines: each one's value, and the gradient it gives, against hand-written torch.

Fixed samples (``value=``) and fixed costs (``depends_on``) make every expected number exact:
the score-function gradient with baseline b is mean_i ∇log p(x_i)·(c_i − b_i).
"""
import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli

import scgrad as sg
from scgrad.baselines import BaselineValue, Constant, Learned, LeaveOneOut, MovingAverage
from scgrad.estimators import Enumerate, ScoreFunction
from scgrad.protocol import Credit
from _modules import Affine

B = 6


def close(a, b, tol=1e-6):
    return torch.allclose(a, b, atol=tol, rtol=tol)


def fixed_case(seed, shape=(B,)):
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(shape, generator=gen).requires_grad_()
    x = torch.bernoulli(torch.full(shape, 0.5), generator=gen)
    cost = torch.randn(shape, generator=gen) + 2.0
    return theta, x, cost


def surrogate_grad(theta, x, cost, baseline):
    with sg.Graph() as g:
        g.sample("x", Bernoulli(logits=theta), value=x, estimator=ScoreFunction(baseline=baseline))
        g.cost("c", cost, depends_on=["x"])
    loss = g.surrogate()
    grad, = torch.autograd.grad(loss, theta)
    return loss.detach(), grad


def reinforce(theta, x, cost, b):
    """mean_i ∇_θ log Bern(x_i; σ(θ_i)) (c_i − b_i), per parameter element."""
    return (x - torch.sigmoid(theta.detach())) * (cost - b) / cost.numel()


# ----------------------------------------------------------------------------- constant / tensor
@pytest.mark.parametrize("given, b", [
    (Constant(torch.linspace(0.5, 2.0, B)), torch.linspace(0.5, 2.0, B)),
    (torch.linspace(0.5, 2.0, B), torch.linspace(0.5, 2.0, B)),
    (1.25, torch.full((B,), 1.25)),
    (Constant(1.25), torch.full((B,), 1.25)),
    (torch.tensor(1.25), torch.full((B,), 1.25)),
], ids=["Constant(tensor)", "tensor", "number", "Constant(number)", "0-dim tensor"])
def test_constant_baseline(given, b):
    theta, x, cost = fixed_case(0)
    loss, grad = surrogate_grad(theta, x, cost, given)
    assert close(loss, cost.mean())  # the control variate has value zero
    assert close(grad, reinforce(theta, x, cost, b))


def test_constant_baseline_broadcasts():
    theta, x, cost = fixed_case(1, shape=(3, B))
    b = torch.linspace(0.0, 1.0, B)  # [B] broadcast over [3, B]
    _, grad = surrogate_grad(theta, x, cost, b)
    assert close(grad, reinforce(theta, x, cost, b.expand(3, B)))


def test_constant_baseline_is_detached():
    theta, x, cost = fixed_case(2)
    b = torch.full((B,), 0.7, requires_grad=True)
    with sg.Graph() as g:
        g.sample("x", Bernoulli(logits=theta), value=x, estimator=ScoreFunction(baseline=b))
        g.cost("c", cost, depends_on=["x"])
    g.surrogate().backward()
    assert b.grad is None


# ----------------------------------------------------------------------------- moving average
def test_moving_average_uses_previous_average_with_bias_correction():
    decay = 0.5
    ma = MovingAverage(decay)
    assert ma.value is None
    means, expected_baselines = [], []
    running, steps = 0.0, 0
    for seed in range(3):
        theta, x, cost = fixed_case(10 + seed)
        expected_b = 0.0 if steps == 0 else running / (1 - decay**steps)  # earlier calls only
        expected_baselines.append(expected_b)
        _, grad = surrogate_grad(theta, x, cost, ma)
        assert close(grad, reinforce(theta, x, cost, torch.full((B,), expected_b)))
        running = decay * running + (1 - decay) * cost.mean().item()
        steps += 1
        means.append(cost.mean().item())
        assert ma.value.item() == pytest.approx(running / (1 - decay**steps), rel=1e-6)
    assert expected_baselines[0] == 0.0
    assert expected_baselines[1] == pytest.approx(means[0], rel=1e-6)  # bias correction: not 0.5·mean
    assert expected_baselines[2] == pytest.approx((0.25 * means[0] + 0.5 * means[1]) / 0.75, rel=1e-6)


def test_moving_average_does_not_see_the_current_batch():
    ma = MovingAverage(0.0)  # decay 0: the baseline is exactly the previous batch's mean
    theta, x, cost = fixed_case(20)
    surrogate_grad(theta, x, cost, ma)
    theta2, x2, cost2 = fixed_case(21)
    _, grad = surrogate_grad(theta2, x2, cost2, ma)
    assert close(grad, reinforce(theta2, x2, cost2, torch.full((B,), cost.mean().item())))


# ----------------------------------------------------------------------------- leave one out
def test_leave_one_out_formula():
    K = 4
    theta, x, cost = fixed_case(30, shape=(K, B))
    loo = (cost.sum(0, keepdim=True) - cost) / (K - 1)
    for i in range(K):  # b_i is the mean of the others, written out
        others = torch.cat([cost[:i], cost[i + 1:]]).mean(0)
        assert close(loo[i], others)
    _, grad = surrogate_grad(theta, x, cost, LeaveOneOut(dim=0))
    assert close(grad, reinforce(theta, x, cost, loo))


def test_leave_one_out_other_dim():
    K = 3
    theta, x, cost = fixed_case(31, shape=(B, K))
    loo = (cost.sum(1, keepdim=True) - cost) / (K - 1)
    _, grad = surrogate_grad(theta, x, cost, LeaveOneOut(dim=-1))
    assert close(grad, reinforce(theta, x, cost, loo))


def test_leave_one_out_called_directly():
    with sg.Graph() as g:
        g.sample("x", Bernoulli(logits=torch.zeros(3, 2)))
    credit = torch.tensor([[1.0, 2.0], [3.0, 5.0], [8.0, 4.0]])
    out = LeaveOneOut(0)(g["x"], Credit(credit))
    assert isinstance(out, BaselineValue) and out.loss is None
    assert close(out.value, torch.tensor([[5.5, 4.5], [4.5, 3.0], [2.0, 3.5]]))


def test_leave_one_out_refuses_a_cost_shared_by_the_samples():
    """CORE BUG: with K samples per input and a cost of shape [B] that depends on all K of them,
    every sample's credit is the same number, so the 'others' mean IS the sample's own cost:
    b_i = credit_i and the gradient is silently exactly zero (biased). It should raise."""
    K = 4
    theta = torch.randn(B, generator=torch.Generator().manual_seed(32)).requires_grad_()
    torch.manual_seed(33)
    with sg.Graph() as g:
        x = g.sample("x", Bernoulli(logits=theta).expand((K, B)),
                     estimator=ScoreFunction(baseline=LeaveOneOut(dim=0)))
        g.cost("c", (x - 0.3).pow(2).sum(0))  # shape [B]: one cost for the K samples together
    try:
        grad, = torch.autograd.grad(g.surrogate(), theta)
    except sg.GraphError as error:  # the fix: a clear error naming the node
        assert "'x'" in str(error)
        return
    raise AssertionError(
        "LeaveOneOut on node 'x' [K=4, B] whose only cost 'c' has shape [B] (shared by the K samples) "
        f"gave the gradient {grad.tolist()} (exactly zero whatever the samples) instead of an error")


# ----------------------------------------------------------------------------- learned
def test_learned_baseline_trains_the_module_and_keeps_the_surrogate_value():
    theta, x, cost = fixed_case(40)
    torch.manual_seed(41)
    module = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
    inputs = torch.randn(B, 2)
    with sg.Graph() as g:
        g.sample("x", Bernoulli(logits=theta), value=x, estimator=ScoreFunction(baseline=Learned(module, inputs)))
        g.cost("c", cost, depends_on=["x"])
    loss = g.surrogate()
    assert close(loss, cost.mean())  # the auxiliary loss enters with value zero
    loss.backward()

    prediction = module(inputs).squeeze(-1)
    mse = (prediction - cost).pow(2).mean()
    expected = torch.autograd.grad(mse, list(module.parameters()))
    for param, ref in zip(module.parameters(), expected):
        assert close(param.grad, ref)
    assert close(theta.grad, reinforce(theta, x, cost, prediction.detach()))


def test_learned_baseline_module_output_without_trailing_one():
    theta, x, cost = fixed_case(42)
    bias = nn.Parameter(torch.tensor(0.5))

    class Scalar(nn.Module):
        def forward(self, inputs):
            return inputs * 0 + bias  # shape [B]

    _, grad = surrogate_grad(theta, x, cost, Learned(Scalar(), torch.zeros(B)))
    assert close(grad, reinforce(theta, x, cost, torch.full((B,), 0.5)))


def test_learned_baseline_converges_to_the_mean_cost():
    torch.manual_seed(43)
    theta = torch.zeros(256, requires_grad=True)
    module = Affine()
    opt = torch.optim.SGD(module.parameters(), lr=0.2)
    for _ in range(40):
        with sg.Graph() as g:
            x = g.sample("x", Bernoulli(logits=theta),
                         estimator=ScoreFunction(baseline=Learned(module, torch.ones(256, 1))))
            g.cost("c", 3.0 * x + 1.0)  # mean 2.5
        opt.zero_grad()
        g.surrogate().backward()
        opt.step()
    assert module(torch.ones(1, 1)).item() == pytest.approx(2.5, abs=0.3)


# ----------------------------------------------------------------------------- credit
class Spy(sg.baselines.Baseline):
    """Records the credit it is given; baseline zero."""

    def __call__(self, node, credit):
        self.credit = credit.value.clone()
        return BaselineValue(torch.zeros(()))


def test_credit_scaling_with_several_samples_per_input():
    """Node [K, B], cost [B]: credit = K·c, so that mean over [K, B] of ∇ℓ·(credit − b) is the
    surrogate's mean over [B] of c·Σ_k ∇ℓ_k."""
    K = 3
    spy = Spy()
    with sg.Graph() as g:
        x = g.sample("x", Bernoulli(logits=torch.zeros(B)), value=torch.ones(K, B),
                     estimator=ScoreFunction(baseline=spy))
        g.cost("c", torch.arange(float(B)), depends_on=["x"])
    g.surrogate()
    assert close(spy.credit, K * torch.arange(float(B)).expand(K, B))


def test_credit_sums_all_downstream_costs_only():
    spy = Spy()
    with sg.Graph() as g:
        a = g.sample("a", Bernoulli(logits=torch.zeros(B)), estimator=ScoreFunction(baseline=spy))
        b = g.sample("b", Bernoulli(logits=torch.zeros(B)))
        g.cost("c1", a * 2.0 + 1.0)
        g.cost("c2", a + 5.0)
        g.cost("c3", b * 100.0)  # not downstream of a
    g.surrogate()
    assert close(spy.credit, 3.0 * a + 6.0)


def test_credit_with_a_downstream_enumerated_node_is_its_expectation():
    """CORE BUG: a cost that depends on a downstream enumerated node k has k's support along an
    extra dim; the credit given to an upstream node's baseline is the UNWEIGHTED mean over the
    support instead of the expectation Σ_k p(k) c. Not a gradient bias for valid baselines, but
    Learned baselines regress onto the wrong target, MovingAverage tracks the wrong mean, and
    PPO's advantage (credit − b) is wrong."""
    spy = Spy()
    p_one = torch.sigmoid(torch.tensor(3.0))
    with sg.Graph() as g:
        z = g.sample("z", Bernoulli(logits=torch.zeros(2)), value=torch.tensor([1.0, 0.0]),
                     estimator=ScoreFunction(baseline=spy))
        k = g.sample("k", Bernoulli(logits=torch.full((2,), 3.0)), estimator=Enumerate())
        g.cost("c", 10.0 * k + z)
    loss = g.surrogate()
    expected = 10.0 * p_one + torch.tensor([1.0, 0.0])
    assert close(loss, expected.mean())  # the surrogate itself is right
    assert close(spy.credit, expected, 1e-5), (
        f"credit {spy.credit.tolist()} is the unweighted mean over k's support, not the expected "
        f"downstream cost {expected.tolist()}")
