"""The Graph API: defaults, observed values, the surrogate's value and derivatives, inspection.

Each behaviour has its own small test; the reference is always plain torch (autograd on a
hand-written expression, or a closed form), on fixed samples taken from the graph.
"""
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Categorical, Normal

import scgrad as sg
from scgrad.baselines import MovingAverage
from scgrad.estimators import Enumerate, Reparam, ScoreFunction

B = 6


def close(a, b, tol=1e-6):
    return torch.allclose(a, b, atol=tol, rtol=tol)


# ----------------------------------------------------------------------------- defaults
def test_default_estimator_for_normal_is_reparam():
    with sg.Graph() as g:
        g.sample("z", Normal(torch.zeros(B), 1.0))
    assert type(g["z"].estimator) is Reparam


@pytest.mark.parametrize("dist", [Categorical(logits=torch.zeros(B, 3)), Bernoulli(logits=torch.zeros(B))],
                         ids=["categorical", "bernoulli"])
def test_default_estimator_for_discrete_is_score_function(dist):
    with sg.Graph() as g:
        g.sample("k", dist)
    assert type(g["k"].estimator) is ScoreFunction
    assert g["k"].estimator.baseline is None


def test_default_estimator_for_observed_normal_is_score_function():
    with sg.Graph() as g:
        g.sample("z", Normal(torch.zeros(B), 1.0), value=torch.ones(B))
    assert type(g["z"].estimator) is ScoreFunction
    assert g["z"].observed


# ----------------------------------------------------------------------------- observed values
def test_value_is_returned_detached_and_equal():
    given = torch.linspace(-1, 1, B, requires_grad=True)
    mu = torch.zeros(B, requires_grad=True)
    with sg.Graph() as g:
        out = g.sample("z", Normal(mu, 1.0), value=given)
    assert torch.equal(out, given.detach())
    assert not out.requires_grad
    assert torch.equal(g["z"].value, given.detach())


def test_value_log_prob_gradient_equals_torch():
    torch.manual_seed(0)
    mu = torch.randn(B, requires_grad=True)
    sigma = torch.rand(B) + 0.5
    given = torch.randn(B)
    with sg.Graph() as g:
        g.sample("z", Normal(mu, sigma), value=given)
    ours, = torch.autograd.grad(g["z"].log_prob.sum(), mu)
    ref, = torch.autograd.grad(Normal(mu, sigma).log_prob(given).sum(), mu)
    assert close(ours, ref)
    assert close(ref, (given - mu.detach()) / sigma**2)  # and torch agrees with the closed form


def test_observed_value_surrogate_gradient_is_score_times_cost():
    torch.manual_seed(1)
    mu = torch.randn(B, requires_grad=True)
    given = torch.randn(B)
    with sg.Graph() as g:
        x = g.sample("z", Normal(mu, 1.0), value=given)
        g.cost("c", x**2)
    ours, = torch.autograd.grad(g.surrogate(), mu)
    ref = (given - mu.detach()) * given**2 / B  # mean_b ∇log N(x_b; mu_b, 1) · c_b
    assert close(ours, ref)


# ----------------------------------------------------------------------------- surrogate value
def _two_cost_model(g, logits, mu, baseline):
    k = g.sample("k", Categorical(logits=logits.expand(B, 3)), estimator=ScoreFunction(baseline=baseline))
    z = g.sample("z", Normal(mu.expand(B), 1.0))
    g.cost("c1", torch.tensor([1.0, -2.0, 5.0])[k] * z)
    g.cost("c2", (z - 1.0) ** 2)
    return k, z


@pytest.mark.parametrize("tracked", [True, False], ids=["tracked", "untracked"])
@pytest.mark.parametrize("baseline", [None, 0.7, "moving", "tensor"])
def test_surrogate_value_is_mean_of_summed_costs(tracked, baseline):
    torch.manual_seed(2)
    if baseline == "moving":
        baseline = MovingAverage(0.5)
        with sg.Graph() as warm_up:  # give the average a non-zero value first
            warm_up.sample("k", Bernoulli(logits=torch.zeros(B)), estimator=ScoreFunction(baseline))
            warm_up.cost("c", torch.full((B,), 1.5), depends_on=["k"])
        warm_up.surrogate()
        assert baseline.value.item() == pytest.approx(1.5)
    elif baseline == "tensor":
        baseline = torch.linspace(-3, 3, B)
    logits = torch.randn(3, requires_grad=True)
    mu = torch.randn((), requires_grad=True)
    g = sg.Graph()
    if tracked:
        with g:
            _two_cost_model(g, logits, mu, baseline)
    else:
        _two_cost_model(g, logits, mu, baseline)
    expected = (g["c1"].value + g["c2"].value).mean()
    assert close(g.surrogate(), expected)


# ----------------------------------------------------------------------------- first order
@pytest.mark.parametrize("tracked", [True, False], ids=["tracked", "untracked"])
@pytest.mark.parametrize("with_baseline", [False, True], ids=["no-baseline", "baseline"])
def test_first_order_gradient_is_reinforce_expression(tracked, with_baseline):
    """∇L = mean_b[ ∇log p(k_b)·(c_b − b_b) + ∇c_b ], written by hand (∇_logits log p = e_k − p)."""
    torch.manual_seed(3)
    logits = torch.randn(3, requires_grad=True)
    w = torch.randn(3, requires_grad=True)
    b = torch.linspace(-1, 2, B) if with_baseline else torch.zeros(B)
    g = sg.Graph()

    def model():
        k = g.sample("k", Categorical(logits=logits.expand(B, 3)),
                     estimator=ScoreFunction(baseline=b if with_baseline else None))
        g.cost("c", w[k] ** 2 + 1.0)

    if tracked:
        with g:
            model()
    else:
        model()
    d_logits, d_w = torch.autograd.grad(g.surrogate(), [logits, w])

    k = g["k"].value
    c = (w.detach()[k] ** 2 + 1.0)
    p = torch.softmax(logits.detach(), -1)
    onehot = F.one_hot(k, 3).float()
    hand_logits = ((onehot - p) * (c - b)[:, None]).mean(0)
    hand_w = (2 * w.detach() * onehot).mean(0)  # ∇_w w[k]^2 = 2 w_k e_k
    assert close(d_logits, hand_logits)
    assert close(d_w, hand_w)


# ----------------------------------------------------------------------------- second order
@pytest.mark.parametrize("b", [0.0, 1.3])
def test_second_order_dice_hessian_matches_hand_derivation(b):
    """One Bernoulli node k ~ Bern(σ(θ)), cost c = (k + θ)², baseline b.

    With ℓ' = k − σ, ℓ'' = −σ(1 − σ), c' = 2(k + θ), c'' = 2, the (Loaded) DiCE surrogate's
    second derivative on fixed samples is mean[(c − b)(ℓ'² + ℓ'') + 2ℓ'c' + c''].
    """
    torch.manual_seed(4)
    theta = torch.tensor(0.3, requires_grad=True)
    n = 8
    with sg.Graph() as g:
        k = g.sample("k", Bernoulli(logits=theta.expand(n)), estimator=ScoreFunction(baseline=b or None))
        g.cost("c", (k + theta) ** 2)
    loss = g.surrogate()
    d1, = torch.autograd.grad(loss, theta, create_graph=True)
    d2, = torch.autograd.grad(d1, theta)

    k = k.detach()
    t = theta.detach()
    s = torch.sigmoid(t)
    lp1, lp2 = k - s, -s * (1 - s)
    c, c1, c2 = (k + t) ** 2, 2 * (k + t), 2.0
    hand_d1 = ((c - b) * lp1 + c1).mean()
    hand_d2 = ((c - b) * (lp1**2 + lp2) + 2 * lp1 * c1 + c2).mean()
    assert close(d1.detach(), hand_d1, 1e-5)
    assert close(d2, hand_d2, 1e-5)


def test_hessian_of_categorical_node_matches_hand_derivation():
    """k ~ Cat(softmax(θ)), constant costs: H = mean_b c_b[(e_k − p)(e_k − p)ᵀ − diag(p) + ppᵀ]."""
    torch.manual_seed(5)
    theta = torch.randn(3, requires_grad=True)
    table = torch.tensor([1.0, -2.0, 4.0])
    with sg.Graph() as g:
        k = g.sample("k", Categorical(logits=theta.expand(B, 3)))
        g.cost("c", table[k])
    grad, = torch.autograd.grad(g.surrogate(), theta, create_graph=True)
    hessian = torch.stack([torch.autograd.grad(grad[i], theta, retain_graph=True)[0] for i in range(3)])
    p = torch.softmax(theta.detach(), -1)
    d = F.one_hot(k, 3).float() - p
    hand = (table[k][:, None, None] * (d[:, :, None] * d[:, None, :] - torch.diag(p) + torch.outer(p, p))).mean(0)
    assert close(hessian, hand, 1e-5)


# ----------------------------------------------------------------------------- inspection
def _inspected_graph():
    mu = torch.zeros(B, requires_grad=True)
    with sg.Graph() as g:
        z = g.sample("z", Normal(mu, 1.0))
        k = g.sample("k", Bernoulli(logits=z))
        o = g.sample("o", Normal(torch.zeros(B), 1.0), value=torch.ones(B))
        g.cost("ck", k * 2.0)
        g.cost("co", o + z)
    return g


def test_nx_nodes_edges_and_attributes():
    nxg = _inspected_graph().nx
    assert list(nxg.nodes) == ["z", "k", "o", "ck", "co"]
    assert set(nxg.edges) == {("z", "k"), ("k", "ck"), ("o", "co"), ("z", "co")}
    assert nxg.nodes["z"] == {"kind": "stochastic", "estimator": "Reparam()", "distribution": "Normal",
                              "observed": False}
    assert nxg.nodes["k"]["estimator"] == "ScoreFunction(baseline=None)"
    assert nxg.nodes["k"]["distribution"] == "Bernoulli"
    assert nxg.nodes["o"]["observed"] is True
    assert nxg.nodes["ck"] == {"kind": "cost"}


def test_nodes_costs_and_getitem():
    g = _inspected_graph()
    assert list(g.nodes) == ["z", "k", "o"]
    assert list(g.costs) == ["ck", "co"]
    assert g["k"] is g.nodes["k"]
    assert g["ck"] is g.costs["ck"]
    assert g["k"].shape == (B,)
    assert g.ancestors("ck") == {"z", "k"}
    g.nodes.clear()  # a copy: the graph is untouched
    assert "z" in g.nodes
    with pytest.raises(KeyError, match="'nope'"):
        g["nope"]


# ----------------------------------------------------------------------------- two graphs
def test_two_graphs_alive_and_nested_track_independently():
    torch.manual_seed(6)
    ta = torch.zeros(B, requires_grad=True)
    tb = torch.zeros(B, requires_grad=True)
    with sg.Graph() as outer:
        a = outer.sample("a", Bernoulli(logits=ta))
        with sg.Graph() as inner:
            b = inner.sample("b", Bernoulli(logits=tb))
            inner.cost("cb", b * a)       # a is not a node of `inner`
            outer.cost("ca", a * 3.0)     # recorded in `outer` while `inner` is entered
        outer.cost("ca2", a + 1.0)
    assert set(outer.nx.edges) == {("a", "ca"), ("a", "ca2")}
    assert set(inner.nx.edges) == {("b", "cb")}
    assert list(outer.nodes) == ["a"] and list(inner.nodes) == ["b"]
    gb, = torch.autograd.grad(inner.surrogate(), tb)
    ga, = torch.autograd.grad(outer.surrogate(), ta)
    s = 0.5
    assert close(gb, (b - s) * (b * a) / B)
    assert close(ga, (a - s) * (a * 3.0 + a + 1.0) / B)


# ----------------------------------------------------------------------------- enumerate
def test_enumerate_two_chained_nodes_equals_exact_sum():
    """k1 ~ Bern(σ(θ1)), k2 ~ Bern(σ(θ2 + 2 k1)); cost w·(k1 + 2 k2 − 1.5)², all enumerated."""
    torch.manual_seed(7)
    n = 3
    t1 = torch.randn(n, requires_grad=True)
    t2 = torch.randn(n, requires_grad=True)
    w = torch.tensor(1.7, requires_grad=True)
    with sg.Graph() as g:
        k1 = g.sample("k1", Bernoulli(logits=t1), estimator=Enumerate())
        k2 = g.sample("k2", Bernoulli(logits=t2 + 2 * k1), estimator=Enumerate())
        g.cost("c", w * (k1 + 2 * k2 - 1.5) ** 2)
    assert k1.shape == (2, 1)          # support along a new dim left of the batch dim
    assert k2.shape == (2, 1, 1)       # the next enumerated node goes further left
    assert g["c"].value.shape == (2, 2, 1)  # vectorised over joint outcomes (broadcasts over n)
    assert g["k1"].log_prob.shape == (2, n) and g["k2"].log_prob.shape == (2, 2, n)
    loss = g.surrogate()

    def exact(t1, t2, w):
        total = 0.0
        for a in (0.0, 1.0):
            pa = torch.sigmoid(t1) if a else 1 - torch.sigmoid(t1)
            for b in (0.0, 1.0):
                q = torch.sigmoid(t2 + 2 * a)
                pb = q if b else 1 - q
                total = total + pa * pb * w * (a + 2 * b - 1.5) ** 2
        return total.mean()

    ref = exact(t1, t2, w)
    assert close(loss, ref)
    ours = torch.autograd.grad(loss, [t1, t2, w])
    theirs = torch.autograd.grad(ref, [t1, t2, w])
    for o, t in zip(ours, theirs):
        assert close(o, t)


# ----------------------------------------------------------------------------- several samples per input
def test_value_with_sample_dim_and_cost_per_input_sums_log_probs():
    """value [K, B] under a batch-[B] distribution, cost [B]: ∇ = mean_b c_b Σ_k ∇log p(x_kb)."""
    torch.manual_seed(8)
    K = 4
    theta = torch.randn(B, requires_grad=True)
    x_given = torch.bernoulli(torch.full((K, B), 0.5))
    with sg.Graph() as g:
        x = g.sample("x", Bernoulli(logits=theta), value=x_given)
        assert x.shape == (K, B) and g["x"].shape == (K, B)
        g.cost("c", (x - 0.3).pow(2).sum(0))  # shape [B]
    loss = g.surrogate()
    assert close(loss, g["c"].value.mean())
    ours, = torch.autograd.grad(loss, theta)
    c = (x_given - 0.3).pow(2).sum(0)
    score_sum = (x_given - torch.sigmoid(theta.detach())).sum(0)  # Σ_k ∇_θ log Bern(x_kb)
    assert close(ours, c * score_sum / B)


def test_drawn_sample_dim_via_expand_sums_log_probs():
    torch.manual_seed(9)
    K = 3
    theta = torch.randn(B, requires_grad=True)
    with sg.Graph() as g:
        x = g.sample("x", Bernoulli(logits=theta).expand((K, B)))
        g.cost("c", (x * torch.arange(1.0, K + 1)[:, None]).sum(0))
    ours, = torch.autograd.grad(g.surrogate(), theta)
    c = g["c"].value
    ref = c * (x - torch.sigmoid(theta.detach())).sum(0) / B
    assert close(ours, ref)

