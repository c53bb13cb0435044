"""Each estimator against plain torch on fixed tensors / fixed samples."""
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Categorical, Normal, OneHotCategorical

import scgrad as sg
from scgrad.estimators import (Enumerate, GumbelSoftmax, ImportanceWeighted, Reparam, ScoreFunction,
                               StraightThrough)
from scgrad.protocol import Draw, Estimator, Terms

B = 8


def close(a, b, tol=1e-6):
    return torch.allclose(a, b, atol=tol, rtol=tol)


# ----------------------------------------------------------------------------- unbiased flags
@pytest.mark.parametrize("estimator, unbiased", [
    (ScoreFunction(), True),
    (ScoreFunction(baseline=0.5), True),
    (Reparam(), True),
    (Enumerate(), True),
    (ImportanceWeighted(torch.zeros(3)), True),
    (ImportanceWeighted(torch.zeros(3), clip=0.2), False),
    (GumbelSoftmax(), False),
    (GumbelSoftmax(0.5, hard=True), False),
    (StraightThrough(), False),
], ids=repr)
def test_unbiased_flag_is_as_documented(estimator, unbiased):
    assert estimator.unbiased is unbiased


# ----------------------------------------------------------------------------- reparam, enumerate
def test_reparam_gradient_is_pathwise():
    torch.manual_seed(0)
    mu = torch.randn(B, requires_grad=True)
    log_sigma = torch.randn(B, requires_grad=True)
    with sg.Graph() as g:
        z = g.sample("z", Normal(mu, log_sigma.exp()))
        g.cost("c", z**2)
    assert g["z"].log_prob is None  # no score term
    d_mu, d_ls = torch.autograd.grad(g.surrogate(), [mu, log_sigma])
    eps = (z.detach() - mu.detach()) / log_sigma.detach().exp()
    assert close(d_mu, 2 * z.detach() / B)
    assert close(d_ls, 2 * z.detach() * eps * log_sigma.detach().exp() / B, 1e-5)


def test_enumerate_single_node_is_exact_expectation():
    theta = torch.tensor([0.2, -1.0, 0.7], requires_grad=True)
    table = torch.tensor([1.0, 5.0, -2.0, 0.5])

    def logits():  # batch [3], 4 categories
        return torch.stack([theta, -theta, 2 * theta, theta], -1)

    with sg.Graph() as g:
        k = g.sample("k", Categorical(logits=logits()), estimator=Enumerate())
        g.cost("c", table[k])
    assert k.shape == (4, 1)
    loss = g.surrogate()
    ref = (torch.softmax(logits(), -1) * table).sum(-1).mean()
    assert close(loss, ref)
    assert close(torch.autograd.grad(loss, theta)[0], torch.autograd.grad(ref, theta)[0])


# ----------------------------------------------------------------------------- importance weighting
def _policy_and_actions(seed=1):
    torch.manual_seed(seed)
    logits = torch.randn(B, 3, requires_grad=True)
    actions = torch.randint(0, 3, (B,))
    cost = torch.randn(B)
    return logits, actions, cost


@pytest.mark.parametrize("baseline", [None, 0.3])
def test_importance_weighted_at_current_policy_equals_score_function(baseline):
    logits, actions, cost = _policy_and_actions()
    grads = []
    for make in (lambda lp: ScoreFunction(baseline=baseline),
                 lambda lp: ImportanceWeighted(lp, baseline=baseline)):
        behavior = Categorical(logits=logits.detach()).log_prob(actions)
        with sg.Graph() as g:
            g.sample("a", Categorical(logits=logits), value=actions, estimator=make(behavior))
            g.cost("c", cost, depends_on=["a"])
        loss = g.surrogate()
        assert close(loss, cost.mean())  # ρ = 1
        grads.append(torch.autograd.grad(loss, logits)[0])
    assert close(grads[0], grads[1])


def test_importance_weighted_ratio_weighting():
    logits, actions, cost = _policy_and_actions(2)
    behavior = torch.randn(B) - 1.5  # log μ(a), arbitrary fixed values
    with sg.Graph() as g:
        g.sample("a", Categorical(logits=logits), value=actions, estimator=ImportanceWeighted(behavior))
        g.cost("c", cost, depends_on=["a"])
    loss = g.surrogate()
    lp = Categorical(logits=logits).log_prob(actions)
    ref = (torch.exp(lp - behavior) * cost).mean()    # E_μ[ρ c]
    assert close(loss, ref)
    ours, = torch.autograd.grad(loss, logits)
    theirs, = torch.autograd.grad(ref, logits)
    assert close(ours, theirs)


def test_importance_weighted_baseline_enters_as_one_minus_ratio():
    logits, actions, cost = _policy_and_actions(3)
    behavior = torch.randn(B) - 1.5
    b = torch.linspace(-1.0, 1.0, B)
    with sg.Graph() as g:
        g.sample("a", Categorical(logits=logits), value=actions, estimator=ImportanceWeighted(behavior, baseline=b))
        g.cost("c", cost, depends_on=["a"])
    loss = g.surrogate()
    rho = torch.exp(Categorical(logits=logits).log_prob(actions) - behavior)
    ref = (rho * cost + (1 - rho) * b).mean()
    assert close(loss, ref)
    assert close(torch.autograd.grad(loss, logits)[0], torch.autograd.grad(ref, logits)[0])


@pytest.mark.parametrize("zero_mean_baseline", [True, False])
def test_ppo_clip_equals_textbook_formula(zero_mean_baseline):
    """Cost c and baseline b chosen so that credit − b = c − b = −A; then the surrogate's gradient
    is that of −mean(min(ρA, clip(ρ, 1−ε, 1+ε)A)), and so is its value (plus mean(b), the value
    of the control variate (1 − ρ)b's constant part; zero for a zero-mean b)."""
    eps = 0.2
    torch.manual_seed(4)
    logits = torch.randn(B, 3, requires_grad=True)
    actions = torch.randint(0, 3, (B,))
    # log ρ in and out of [log(1−ε), log(1+ε)], for both signs of A
    log_rho = torch.tensor([-0.5, -0.05, 0.05, 0.5, -0.5, -0.05, 0.05, 0.5])
    A = torch.tensor([1.0, 2.0, 0.5, 1.5, -1.0, -2.0, -0.5, -1.5])
    behavior = Categorical(logits=logits.detach()).log_prob(actions) - log_rho
    b = torch.linspace(-1.0, 1.0, B) + (0.0 if zero_mean_baseline else 0.8)
    cost = b - A
    with sg.Graph() as g:
        g.sample("a", Categorical(logits=logits), value=actions,
                 estimator=ImportanceWeighted(behavior, clip=eps, baseline=b))
        g.cost("c", cost, depends_on=["a"])
    loss = g.surrogate()

    rho = torch.exp(Categorical(logits=logits).log_prob(actions) - behavior)
    textbook = -torch.min(rho * A, rho.clamp(1 - eps, 1 + eps) * A).mean()
    assert close(loss, textbook + b.mean())
    ours, = torch.autograd.grad(loss, logits)
    theirs, = torch.autograd.grad(textbook, logits)
    assert close(ours, theirs)
    # sanity of the fixture: some elements are clipped (zero gradient), some are not
    clipped = (ours.abs().sum(-1) == 0)
    assert 0 < int(clipped.sum()) < B


def test_ppo_clip_inside_trust_region_equals_importance_weighting():
    logits, actions, cost = _policy_and_actions(5)
    behavior = Categorical(logits=logits.detach()).log_prob(actions) - torch.linspace(-0.1, 0.1, B)
    grads = []
    for clip in (None, 0.2):
        with sg.Graph() as g:
            g.sample("a", Categorical(logits=logits), value=actions,
                     estimator=ImportanceWeighted(behavior, clip=clip, baseline=0.1))
            g.cost("c", cost, depends_on=["a"])
        grads.append(torch.autograd.grad(g.surrogate(), logits)[0])
    assert close(grads[0], grads[1])


# ----------------------------------------------------------------------------- relaxations
def test_gumbel_softmax_categorical_values_on_simplex_with_gradient():
    torch.manual_seed(6)
    logits = torch.randn(B, 4, requires_grad=True)
    with sg.Graph() as g:
        y = g.sample("k", Categorical(logits=logits), estimator=GumbelSoftmax(0.7))
        g.cost("c", (y * torch.arange(4.0)).sum(-1))
    assert y.shape == (B, 4)
    assert (y > 0).all() and (y < 1).all()
    assert close(y.sum(-1), torch.ones(B), 1e-5)
    grad, = torch.autograd.grad(g.surrogate(), logits)
    assert torch.isfinite(grad).all() and (grad.abs().sum(-1) > 0).all()


def test_gumbel_softmax_bernoulli_values_in_unit_interval_with_gradient():
    torch.manual_seed(7)
    logits = torch.randn(B, requires_grad=True)
    with sg.Graph() as g:
        y = g.sample("b", Bernoulli(logits=logits), estimator=GumbelSoftmax(0.5))
        g.cost("c", (y - 0.3) ** 2)
    assert y.shape == (B,) and (y > 0).all() and (y < 1).all()
    grad, = torch.autograd.grad(g.surrogate(), logits)
    assert (grad != 0).all()


@pytest.mark.parametrize("dist_cls", [Categorical, OneHotCategorical])
def test_gumbel_softmax_hard_is_one_hot_with_the_relaxed_gradient(dist_cls):
    logits = torch.randn(200, 4, generator=torch.Generator().manual_seed(8)).requires_grad_()
    weights = torch.arange(4.0)
    grads, values = [], []
    for hard in (False, True):
        torch.manual_seed(9)  # same Gumbel noise
        with sg.Graph() as g:
            y = g.sample("k", dist_cls(logits=logits), estimator=GumbelSoftmax(0.7, hard=hard))
            g.cost("c", (y * weights).sum(-1))  # linear: ∂c/∂y is the same at the hard and soft value
        values.append(y.detach())
        grads.append(torch.autograd.grad(g.surrogate(), logits)[0])
    soft, hard = values
    assert torch.equal(hard.argmax(-1), soft.argmax(-1))
    assert close(hard.sum(-1), torch.ones(200))
    assert close(grads[0], grads[1])
    exact = bool(((hard == 0) | (hard == 1)).all())
    assert exact, (
        "GumbelSoftmax(hard=True) is not exactly one-hot: `hard + soft - soft.detach()` rounds "
        f"(max |y - round(y)| = {(hard - hard.round()).abs().max().item():.3g}); "
        "`hard + (soft - soft.detach())` would be exact")


def test_gumbel_bernoulli_hard_is_zero_one():
    logits = torch.randn(500, generator=torch.Generator().manual_seed(10)).requires_grad_()
    torch.manual_seed(11)
    with sg.Graph() as g:
        y = g.sample("b", Bernoulli(logits=logits), estimator=GumbelSoftmax(0.5, hard=True))
        g.cost("c", y * 2.0)
    grad, = torch.autograd.grad(g.surrogate(), logits)
    assert (grad != 0).all()
    exact = bool(((y == 0) | (y == 1)).all())
    assert exact, (
        "GumbelSoftmax(hard=True) on Bernoulli is not exactly 0/1: "
        f"max |y - round(y)| = {(y - y.round()).abs().max().item():.3g}")


def test_straight_through_gradient_is_cost_derivative_at_the_sample():
    torch.manual_seed(12)
    p = torch.rand(B, requires_grad=True)
    with sg.Graph() as g:
        x = g.sample("b", Bernoulli(probs=p), estimator=StraightThrough())
        g.cost("c", (x - 0.3) ** 2 * torch.arange(1.0, B + 1))
    grad, = torch.autograd.grad(g.surrogate(), p)
    at = x.detach().round().requires_grad_()
    ref, = torch.autograd.grad(((at - 0.3) ** 2 * torch.arange(1.0, B + 1)).mean(), at)
    assert close(grad, ref)


def test_straight_through_categorical_gradient_flows_to_probs():
    torch.manual_seed(13)
    logits = torch.randn(B, 3, requires_grad=True)
    w = torch.tensor([1.0, -2.0, 3.0])
    with sg.Graph() as g:
        y = g.sample("k", Categorical(logits=logits), estimator=StraightThrough())
        g.cost("c", (y * w).sum(-1))
    assert y.shape == (B, 3)
    assert close(y.sum(-1), torch.ones(B))
    grad, = torch.autograd.grad(g.surrogate(), logits)
    probs = torch.softmax(logits, -1)
    ref, = torch.autograd.grad((probs * w).sum(-1).mean(), logits)  # ∂y/∂probs = identity
    assert close(grad, ref)


@pytest.mark.parametrize("make", [lambda p: Bernoulli(probs=p),
                                  lambda p: Categorical(probs=torch.stack([p, 1 - p], -1))],
                         ids=["bernoulli", "categorical"])
def test_straight_through_forward_value_is_exactly_zero_one(make):
    p = torch.rand(1000, generator=torch.Generator().manual_seed(14)).requires_grad_()
    torch.manual_seed(15)
    with sg.Graph() as g:
        x = g.sample("b", make(p), estimator=StraightThrough())
        g.cost("c", x.sum(-1) if x.dim() > 1 else x)
    exact = bool(((x == 0) | (x == 1)).all())
    assert exact, (
        "StraightThrough's value is documented as 'the exact 0/1 sample' but "
        "`hard + probs - probs.detach()` rounds: max |x - round(x)| = "
        f"{(x - x.round()).abs().max().item():.3g} (e.g. x.long() turns 0.99999994 into 0); "
        "`hard + (probs - probs.detach())` is exact")


# ----------------------------------------------------------------------------- a custom estimator
class FixedBaselineScore(Estimator):
    """Score function with a fixed constant baseline, written against the protocol."""

    def __init__(self, c):
        self.c = c

    def draw(self, dist, ctx):
        value = dist.sample() if ctx.value is None else ctx.value
        return Draw(value, dist.log_prob(value))

    def terms(self, node, credit):
        box = node.log_prob - node.log_prob.detach()
        return Terms(log_weight=box, control_variate=(1 - box.exp()) * self.c)


def test_custom_estimator_is_short_and_matches_score_function_with_constant_baseline():
    import inspect
    assert len(inspect.getsource(FixedBaselineScore).strip().splitlines()) < 20
    theta = torch.randn(B, 3, generator=torch.Generator().manual_seed(16)).requires_grad_()
    table = torch.tensor([1.0, 4.0, -2.0])
    results = []
    for estimator in (FixedBaselineScore(1.5), ScoreFunction(baseline=1.5)):
        torch.manual_seed(17)  # same samples
        with sg.Graph() as g:
            k = g.sample("k", Categorical(logits=theta), estimator=estimator)
            g.cost("c", table[k])
        loss = g.surrogate()
        d1, = torch.autograd.grad(loss, theta, create_graph=True)
        d2, = torch.autograd.grad(d1.sum(), theta)
        results.append((k, loss.detach(), d1.detach(), d2))
    (k1, l1, g1, h1), (k2, l2, g2, h2) = results
    assert torch.equal(k1, k2)
    assert close(l1, l2) and close(g1, g2) and close(h1, h2)
    p = torch.softmax(theta.detach(), -1)
    assert close(g1, (F.one_hot(k1, 3) - p) * (table[k1] - 1.5)[:, None] / B)


@pytest.mark.parametrize("estimator", [GumbelSoftmax(0.5), GumbelSoftmax(0.5, hard=True), StraightThrough()], ids=repr)
def test_relaxed_estimators_take_a_vector_of_bits_inside_independent(estimator):
    logits = torch.zeros(4, 6, requires_grad=True)
    with sg.Graph() as g:
        b = g.sample("b", torch.distributions.Independent(Bernoulli(logits=logits), 1), estimator=estimator)
        g.cost("c", (b * torch.arange(6.0)).sum(-1))
    assert b.shape == (4, 6) and g["b"].shape == (4,)
    (grad,) = torch.autograd.grad(g.surrogate(), logits)
    assert grad.abs().sum() > 0
