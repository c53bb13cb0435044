"""Long sequences of samples: the surrogate of T nodes in sequence costs O(T) tensor operations.

References are written out in plain torch: the DiCE sum with every prefix summed afresh
(O(T²), the definition), and REINFORCE with reward-to-go. The operation count is read with a
``TorchFunctionMode`` that counts every torch call the surrogate makes: for a chain of nodes it
must not grow with T (the prefix sums are one stack and one cumsum).
"""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Categorical
from torch.overrides import TorchFunctionMode

import scgrad as sg
from scgrad.baselines import Learned
from scgrad.estimators import ScoreFunction
from scgrad.nested import key, members, nested_sums

B, K = 5, 3


class CountCalls(TorchFunctionMode):
    """Counts the torch functions and tensor methods called while active, less the reads of a
    tensor's metadata (shape, dim, requires_grad, ...), which compute nothing."""

    METADATA = {"__get__", "dim", "size", "__len__", "numel"}

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += getattr(func, "__name__", "") not in self.METADATA
        return func(*args, **(kwargs or {}))


def chain(T, table, step_costs, baseline_net=None, cost_every=1):
    """T Categorical nodes, each conditioned on the previous sample (logits = table[k]), and
    a cost after every ``cost_every``-th step: cost_t = step_costs[t, k_t]. Returns the graph,
    the log-probs [T, B] and the costs [T, B] (zero where no cost was recorded)."""
    k = torch.zeros(B, dtype=torch.long)
    log_probs, costs = [], []
    with sg.Graph() as g:
        for t in range(T):
            dist = Categorical(logits=table[k])
            estimator = ScoreFunction(baseline=Learned(baseline_net, dist.logits.detach())) if baseline_net else None
            k = g.sample(f"k{t}", dist, estimator=estimator)
            log_probs.append(g[f"k{t}"].log_prob)
            c = step_costs[t, k]
            if t % cost_every == cost_every - 1:
                g.cost(f"c{t}", c)
                costs.append(c)
            else:
                costs.append(torch.zeros(B))
    return g, torch.stack(log_probs), torch.stack(costs)


def dice_by_definition(log_probs, costs):
    """Σ_t exp(Σ_{s≤t} box(ℓ_s)) c_t, every prefix summed afresh; mean over the batch."""
    total = 0
    for t in range(len(costs)):
        tau = sum(lp - lp.detach() for lp in log_probs[:t + 1])
        total = total + (torch.exp(tau) * costs[t]).mean()
    return total


@pytest.mark.parametrize("cost_every", [1, 3])
def test_a_chain_matches_the_dice_definition_in_value_gradient_and_second_derivative(cost_every):
    torch.manual_seed(0)
    table = torch.randn(K, K, requires_grad=True)
    step_costs = torch.randn(12, K)
    g, log_probs, costs = chain(12, table, step_costs, cost_every=cost_every)
    ours, reference = g.surrogate(), dice_by_definition(log_probs, costs)
    assert torch.allclose(ours, reference)
    (g1,) = torch.autograd.grad(ours, table, create_graph=True)
    (r1,) = torch.autograd.grad(reference, table, create_graph=True)
    assert torch.allclose(g1, r1, atol=1e-6)
    v = torch.randn(K, K)
    (g2,) = torch.autograd.grad((g1 * v).sum(), table, retain_graph=True)
    (r2,) = torch.autograd.grad((r1 * v).sum(), table)
    assert torch.allclose(g2, r2, atol=1e-5)


def test_a_chain_gives_reinforce_with_reward_to_go():
    torch.manual_seed(1)
    table = torch.randn(K, K, requires_grad=True)
    g, log_probs, costs = chain(30, table, torch.randn(30, K))
    to_go = costs.flip(0).cumsum(0).flip(0)
    (ours,) = torch.autograd.grad(g.surrogate(), table, retain_graph=True)
    (hand,) = torch.autograd.grad((log_probs * to_go).sum(0).mean(), table)
    assert torch.allclose(ours, hand, atol=1e-5)


def test_learned_baselines_along_a_chain_are_credited_with_the_cost_to_go():
    torch.manual_seed(2)
    table = torch.randn(K, K, requires_grad=True)
    net = torch.nn.Linear(K, 1)
    T = 8
    g, log_probs, costs = chain(T, table, torch.randn(T, K), baseline_net=net)
    credit = costs.flip(0).cumsum(0).flip(0)  # [T, B]: what each node's baseline regresses onto
    with torch.no_grad():
        inputs = torch.stack([g[f"k{t}"].dist.logits for t in range(T)])
        b = net(inputs).squeeze(-1)
    # exp(τ_A)·b − exp(τ_A + ℓ)·b has value 0; its gradient is −∇ℓ·b: REINFORCE with (G_t − b_t)
    expected = (log_probs * (credit - b)).sum(0).mean()
    loss = g.surrogate()
    (ours,) = torch.autograd.grad(loss, table, retain_graph=True)
    (hand,) = torch.autograd.grad(expected, table)
    assert torch.allclose(ours, hand, atol=1e-5)
    # the auxiliary regression: Σ_t mean((b_t − G_t)²), its gradient on the baseline's weights
    (ours_w,) = torch.autograd.grad(loss, net.weight)
    pred = net(inputs).squeeze(-1)
    (hand_w,) = torch.autograd.grad(((pred - credit) ** 2).mean(1).sum(), net.weight)
    assert torch.allclose(ours_w, hand_w, atol=1e-5)


def count_surrogate_calls(T, baseline_net=None):
    torch.manual_seed(0)
    table = torch.randn(K, K, requires_grad=True)
    g, _, _ = chain(T, table, torch.randn(T, K), baseline_net=baseline_net)
    with CountCalls() as counter:
        g.surrogate()
    return counter.calls


def test_the_surrogate_of_a_chain_makes_the_same_number_of_torch_calls_whatever_its_length():
    assert count_surrogate_calls(200) == count_surrogate_calls(20)


def test_with_baselines_the_torch_calls_grow_linearly_not_quadratically():
    net = torch.nn.Linear(K, 1)
    n50, n100, n200 = (count_surrogate_calls(T, net) for T in (50, 100, 200))
    # per node: the baseline's forward, its loss and its two terms — a constant number
    assert n200 - n100 == 2 * (n100 - n50)


# ----------------------------------------------------------------------------- nested_sums
@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 2**9 - 1), min_size=1, max_size=12), st.sampled_from(["high", "low"]))
def test_nested_sums_equal_the_direct_sums_for_any_sets(sets, drop):
    items = torch.randn(9, 4, dtype=torch.float64)
    sums = nested_sums(sets, lambda i: items[i], drop=drop)
    assert len(sums) == len(sets)
    for s, total in zip(sets, sums):
        assert torch.allclose(total.tensor(), items[list(members(s))].sum(0))


def test_nested_sums_of_the_empty_set_is_none_and_equal_sets_share_one_sum():
    items = torch.randn(3, 2)
    empty, a, b = nested_sums([0, 0b101, 0b101], lambda i: items[i])
    assert empty is None and a is b


def test_nested_prefixes_and_suffixes_share_one_stack():
    items = torch.randn(50, 3)
    prefixes = [(1 << t) - 1 for t in range(1, 51)]
    suffixes = [((1 << 50) - 1) ^ ((1 << t) - 1) for t in range(50)]
    for sets, drop in ((prefixes, "high"), (suffixes, "low")):
        sums = nested_sums(sets, lambda i: items[i], drop=drop)
        assert len({id(total.stack) for total in sums}) == 1
        assert all(torch.allclose(total.tensor(), items[list(members(s))].sum(0), atol=1e-5)
                   for s, total in zip(sets, sums))


def test_bitset_keys_spread_the_hashes_of_nested_sets():
    # Python hashes ints modulo 2^61 - 1: the prefixes of a 1000-node sequence share 61 hashes.
    prefixes = [(1 << t) - 1 for t in range(1, 1001)]
    assert len({hash(s) for s in prefixes}) == 61  # the negative control: why key() exists
    assert len({hash(key(s)) for s in prefixes}) == 1000
    assert len({key(s) for s in prefixes}) == 1000 and key(0) == b""


# ----------------------------------------------------------------------------- nested costs in one stack
def _steps_graph(T, table, step_costs, net, pattern):
    """Up to three nodes per step (``pattern``: nodes per step, cycled), a learned baseline on
    each, and one or two costs per step (two share an upstream set)."""
    k = torch.zeros(B, dtype=torch.long)
    with sg.Graph() as g:
        for t in range(T):
            for j in range(pattern[t % len(pattern)]):
                dist = Categorical(logits=table[k])
                k = g.sample(f"k{t}_{j}", dist, estimator=ScoreFunction(baseline=Learned(net, dist.logits.detach())))
            g.cost(f"c{t}", step_costs[t, k])
            if t % 3 == 0:
                g.cost(f"d{t}", step_costs[t, k] ** 2)
    return g


@pytest.mark.parametrize("pattern", [(1,), (3,), (2, 0, 1)])
def test_costs_on_nested_sets_in_one_stack_equal_the_general_grouping(pattern, monkeypatch):
    import scgrad.surrogate as surrogate

    torch.manual_seed(0)
    table, step_costs, net = torch.randn(K, K, requires_grad=True), torch.randn(12, K), torch.nn.Linear(K, 1)
    results = []
    for general in (False, True):
        if general:  # negative control: the fast path is really taken without the patch
            monkeypatch.setattr(surrogate, "_costs_along_nested_sets", lambda *args: None)
        torch.manual_seed(1)
        g = _steps_graph(12, table, step_costs, net, pattern)
        calls = []
        original = surrogate._costs_along_nested_sets
        monkeypatch.setattr(surrogate, "_costs_along_nested_sets", lambda *a: calls.append(original(*a)) or calls[-1])
        loss = g.surrogate()
        assert (calls[0] is None) == general
        grads = torch.autograd.grad(loss, [table, *net.parameters()], create_graph=True)
        second = torch.autograd.grad(grads[0].sum(), table)[0]  # the second order too
        results.append((loss, *grads, second))
        monkeypatch.undo()
    for fast, general in zip(*results):
        assert torch.allclose(fast, general, atol=1e-6), (fast, general)


def test_costs_on_sets_that_do_not_nest_take_the_general_path():
    import scgrad.surrogate as surrogate

    with sg.Graph() as g:  # c_b depends on b only, not on a: the sets {a}, {b} do not nest
        a = g.sample("a", Categorical(logits=torch.zeros(B, K, requires_grad=True)))
        b = g.sample("b", Categorical(logits=torch.zeros(B, K, requires_grad=True)))
        g.cost("c_a", a.float())
        g.cost("c_b", b.float())
    terms = g._node_terms(g._ancestry)
    weights = surrogate._Weights(g._stochastic, terms, g._ancestry)
    assert surrogate._costs_along_nested_sets(g._costs, weights, g._ancestry.upstream, g._layout) is None
