"""The graph never returns a silently wrong gradient (issue 10, section 1).

Each test is one route by which a gradient used to come out wrong with no error: a cost whose
shape pairs samples with the wrong cost elements, graphs whose ``with`` blocks interleave,
recording from another thread, values leaving torch unseen, non-finite log-probabilities or an
empty batch, and torch's own errors or a ``torch.no_grad()`` that lose the node they came from.
"""
import io
import pickle
import re
import threading

import numpy as np
import pytest
import torch
from torch.distributions import Bernoulli, Categorical, Independent, Normal
from torch.overrides import TorchFunctionMode

import scgrad as sg
from scgrad.estimators import Enumerate, ScoreFunction
from scgrad.baselines import MovingAverage

B = 4


def raises(exc, *fragments):
    """pytest.raises(exc) whose message must contain every fragment (literally)."""
    return pytest.raises(exc, match="(?s)" + "".join(f"(?=.*{re.escape(f)})" for f in fragments))


def close(a, b, tol=1e-6):
    return torch.allclose(a, b, atol=tol, rtol=tol)


def mode_stack():
    """torch's stack of function modes in this thread (empty once every graph has exited)."""
    return torch.overrides._get_current_function_mode_stack()


# ----------------------------------------------------------------------------- 1. cost shapes
@pytest.mark.parametrize("width", [B, B + 1], ids=["square", "wide"])
@pytest.mark.parametrize("baseline", [None, "moving"], ids=["no-baseline", "baseline"])
def test_cost_with_more_dims_than_its_node_is_a_shape_error(width, baseline):
    """A [B, B] cost on a [B] node was broadcast from the right, pairing sample j with cost
    column j; it must fail like the [B, B + 1] one always did."""
    estimator = ScoreFunction(baseline=MovingAverage() if baseline else None)
    with sg.Graph() as g:
        k = g.sample("k", Categorical(logits=torch.zeros(B, 3, requires_grad=True)), estimator=estimator)
        g.cost("c", k[:, None] * torch.ones(B, width))
    with raises(sg.ShapeError, "cost 'c'", "node 'k'", f"({B}, {width})", f"({B},)"):
        g.surrogate()


def test_cost_with_more_dims_than_an_indirect_ancestor_is_a_shape_error():
    """y [B, B] is drawn from x [B] (row i from x_i): a cost of y's shape pairs x_j with column j."""
    with sg.Graph() as g:
        x = g.sample("x", Bernoulli(logits=torch.zeros(B, requires_grad=True)))
        y = g.sample("y", Bernoulli(logits=x[:, None].expand(B, B)))
        g.cost("c", y * 1.0)
    with raises(sg.ShapeError, "cost 'c'", "node 'x'", f"({B}, {B})", f"({B},)"):
        g.surrogate()


def test_costs_with_fewer_or_size_one_extra_dims_stay_allowed():
    theta = torch.zeros(B, requires_grad=True)
    mu = torch.zeros(B, 3, requires_grad=True)
    with sg.Graph() as g:
        k = g.sample("k", Bernoulli(logits=theta))
        z = g.sample("z", Independent(Normal(mu, 1.0), 1), estimator=ScoreFunction())  # node shape [B]
        g.cost("scalar", k.sum())
        g.cost("per-sample", z.sum(-1) + k)
        g.cost("leading-one", k[None, :] * 2.0)  # [1, B]: nothing to mispair
    loss = g.surrogate()
    assert close(loss, k.sum() + (z.sum(-1) + k).mean() + 2.0 * k.mean())


def test_pathwise_node_may_have_pairwise_costs():
    """A reparameterised node has no log-weight to mispair: a [B, B] pairwise cost is fine and its
    gradient is autograd's."""
    torch.manual_seed(0)
    mu = torch.randn(B, requires_grad=True)
    with sg.Graph() as g:
        x = g.sample("x", Normal(mu, 1.0))
        g.cost("pairwise", (x[:, None] - x[None, :]) ** 2)
    ours, = torch.autograd.grad(g.surrogate(), mu)
    ref, = torch.autograd.grad(((x[:, None] - x[None, :]) ** 2).mean(), mu)
    assert close(ours, ref)


def test_enumerated_dims_left_of_a_score_node_stay_allowed():
    """k is enumerated (support [2, 1] left of the batch dim), y is scored ([B]): their cost is
    [2, B], one more dim than y, and that dim is k's support. The surrogate is exact in k."""
    torch.manual_seed(1)
    tk = torch.randn(B, requires_grad=True)
    ty = torch.randn(B, requires_grad=True)
    with sg.Graph() as g:
        k = g.sample("k", Bernoulli(logits=tk), estimator=Enumerate())
        y = g.sample("y", Bernoulli(logits=ty))
        g.cost("c", (k + 2.0 * y - 1.0) ** 2)
    assert g["c"].value.shape == (2, B)
    loss = g.surrogate()
    p = torch.sigmoid(tk)
    exact = ((1 - p) * (2.0 * y - 1.0) ** 2 + p * (2.0 * y) ** 2).mean()
    assert close(loss, exact)


# ----------------------------------------------------------------------------- 2. interleaved graphs
def test_interleaved_graphs_keep_both_graphs_tracking():
    """A generator opens graph A and yields; graph B is entered; A records and exits while B is
    still open. A's exit used to pop B's mode, so B's later cost was credited to nothing."""
    ta = torch.zeros(B, requires_grad=True)
    tb = torch.zeros(B, requires_grad=True)
    ga, gb = sg.Graph(), sg.Graph()

    def model_a():
        with ga:
            x = ga.sample("x", Bernoulli(logits=ta))
            yield
            ga.cost("ca", x * 2.0)  # recorded while B, entered later, is open
        yield

    steps = model_a()
    next(steps)
    with gb:
        y = gb.sample("y", Bernoulli(logits=tb))
        next(steps)                 # A exits here, B stays open
        gb.cost("cb", y * 3.0)
    assert set(ga.nx.edges) == {("x", "ca")}
    assert set(gb.nx.edges) == {("y", "cb")}
    assert mode_stack() == []
    assert torch.count_nonzero(torch.autograd.grad(gb.surrogate(), tb)[0]) > 0


def test_nested_graphs_exit_in_order_and_leave_no_mode_behind():
    with sg.Graph() as outer:
        a = outer.sample("a", Bernoulli(logits=torch.zeros(B)))
        with sg.Graph() as inner:
            b = inner.sample("b", Bernoulli(logits=torch.zeros(B)))
            inner.cost("cb", b * a)
        outer.cost("ca", a + 1.0)
    assert set(outer.nx.edges) == {("a", "ca")} and set(inner.nx.edges) == {("b", "cb")}
    assert mode_stack() == []


# ----------------------------------------------------------------------------- 3. threads
def test_recording_from_another_thread_is_an_error():
    """torch's mode stack is per thread: a cost recorded from a worker thread used to be
    credited to nothing."""
    errors = []
    with sg.Graph() as g:
        k = g.sample("k", Bernoulli(logits=torch.zeros(B, requires_grad=True)))

        def worker():
            try:
                g.cost("c", k * 2.0)
            except sg.GraphError as error:
                errors.append(error)

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        g.cost("here", k * 2.0)     # the entering thread still records
    assert len(errors) == 1 and "'c'" in str(errors[0]) and "thread" in str(errors[0])
    assert set(g.nx.edges) == {("k", "here")}


def test_leaving_a_graph_from_another_thread_is_an_error():
    g = sg.Graph()
    g.__enter__()
    errors = []

    def worker():
        try:
            g.__exit__(None, None, None)
        except sg.GraphError as error:
            errors.append(error)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert len(errors) == 1 and "thread" in str(errors[0])
    g.__exit__(None, None, None)    # the entering thread can still leave it
    assert mode_stack() == []


# ----------------------------------------------------------------------------- 4. escapes
def _unpickled(k):
    buffer = io.BytesIO()
    torch.save(k, buffer)
    return torch.load(io.BytesIO(buffer.getvalue()))


ESCAPES = {
    "format": lambda k: float(f"{k:.0f}"),
    "str": lambda k: float(str(k)[len("tensor("):-1]),
    "repr": lambda k: float(repr(k)[len("tensor("):-1]),
    "dlpack": lambda k: float(np.from_dlpack(k)),
    "complex": lambda k: complex(k).real,
    "untyped_storage": lambda k: float(np.frombuffer(bytes(k.untyped_storage().tolist()), np.float32)[0]),
    "pickle": lambda k: float(pickle.loads(pickle.dumps(k)).sum().tolist()),
    "torch.save": lambda k: _unpickled(k) * 1.0,
}


@pytest.mark.parametrize("route", list(ESCAPES))
def test_value_leaving_torch_by_any_route_is_an_escape(route):
    """A reward computed from the sample outside torch must be credited to the sample."""
    theta = torch.zeros((), requires_grad=True)
    with sg.Graph() as g:
        k = g.sample("k", Bernoulli(logits=theta))
        reward = ESCAPES[route](k)
        g.cost("c", reward * 2.0)
    assert ("k", "c") in g.nx.edges, f"{route} is not seen as an escape: edges {sorted(g.nx.edges)}"


def test_printing_unsampled_tensors_and_bookkeeping_are_not_escapes():
    """repr/format of tensors no sample flows into, validation's bool() and the graph's own
    storage lookups after an in-place write credit nothing extra."""
    with sg.Graph() as g:
        k = g.sample("k", Bernoulli(logits=torch.zeros(B)))
        written = torch.zeros(B)
        written[0] = k[0]                                   # storage tags from here on
        f"{torch.ones(()):.1f}", repr(torch.ones(2))        # nothing sampled in them
        j = g.sample("j", Categorical(logits=torch.zeros(B, 3)))  # validation calls bool()
        g.cost("c", j * 1.0)
        g.cost("w", written)
    assert set(g.nx.edges) == {("j", "c"), ("k", "w")}


# ----------------------------------------------------------------------------- 5. finiteness, empty batches
def test_infinite_value_is_a_non_finite_error_naming_the_node():
    mu = torch.zeros(B, requires_grad=True)
    with sg.Graph() as g:
        g.sample("x", Normal(mu, 1.0), value=torch.tensor([0.0, float("inf"), 0.0, 0.0]))
        g.cost("c", torch.ones(B), depends_on=["x"])       # finite: only the log-prob is not
    with raises(sg.NonFiniteCostError, "'x'", "log-prob") as info:
        g.surrogate()
    assert "'c'" not in str(info.value)


def test_nan_parameters_are_a_non_finite_error_naming_the_node():
    mu = torch.tensor([0.0, float("nan"), 0.0, 0.0], requires_grad=True)
    with sg.Graph() as g:
        g.sample("x", Normal(mu, 1.0, validate_args=False), estimator=ScoreFunction())
        g.cost("c", torch.ones(B), depends_on=["x"])
    with raises(sg.NonFiniteCostError, "'x'"):
        g.surrogate()


def test_non_finite_log_prob_check_is_off_with_the_cost_check():
    g = sg.Graph(check_finite=False)
    g.sample("x", Normal(torch.zeros(B, requires_grad=True), 1.0), value=torch.full((B,), float("inf")))
    g.cost("c", torch.ones(B), depends_on=["x"])
    assert torch.isnan(g.surrogate())


def test_enumerated_zero_probability_outcome_is_not_an_error():
    """log p = −inf for an impossible outcome of an enumerated node is exact (weight 0)."""
    probs = torch.tensor([[0.25, 0.75, 0.0]] * B, requires_grad=True)
    with sg.Graph() as g:
        k = g.sample("k", Categorical(probs=probs), estimator=Enumerate())
        g.cost("c", k * 1.0)
    assert close(g.surrogate(), torch.tensor(0.75))


class _HostSyncs(TorchFunctionMode):
    """Counts the calls that read tensor values back to the host."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += getattr(func, "__name__", "") in {"item", "tolist", "numpy", "__bool__", "__float__"}
        return func(*args, **(kwargs or {}))


def test_finiteness_of_costs_and_log_probs_is_one_host_sync():
    with sg.Graph() as g:
        a = g.sample("a", Bernoulli(logits=torch.zeros(B, requires_grad=True)))
        b = g.sample("b", Categorical(logits=torch.zeros(B, 3, requires_grad=True)))
        g.cost("c1", a * 1.0)
        g.cost("c2", b * 1.0)
    with _HostSyncs() as syncs:
        g.surrogate()
    assert syncs.count == 1


def test_empty_batch_node_is_a_shape_error():
    with sg.Graph() as g:
        with raises(sg.ShapeError, "'x'", "(0,)", "empty"):
            g.sample("x", Bernoulli(logits=torch.zeros(0, requires_grad=True)))


def test_empty_cost_is_a_shape_error():
    g = sg.Graph()
    with raises(sg.ShapeError, "'c'", "(0,)", "empty"):
        g.cost("c", torch.zeros(0))


# ----------------------------------------------------------------------------- 6. torch's errors, no_grad
@pytest.mark.parametrize("bad", ["3.0", None], ids=["str", "None"])
def test_cost_that_is_not_a_number_names_the_cost(bad):
    with sg.Graph() as g:
        with raises(TypeError, "cost 'c'", type(bad).__name__):
            g.cost("c", bad)


def test_out_of_support_value_names_the_node_and_shapes():
    with sg.Graph() as g:
        with raises(ValueError, "node 'k'", "Categorical", f"batch_shape ({B},)", f"value shape ({B},)",
                    "support") as info:
            g.sample("k", Categorical(logits=torch.zeros(B, 3)), value=torch.tensor([0, 1, 5, 2]))
    assert isinstance(info.value.__cause__, ValueError)  # torch's own error, chained


def test_empty_categorical_names_the_node():
    with sg.Graph() as g:
        with raises(RuntimeError, "node 'k'", "Categorical", f"batch_shape ({B},)"):
            g.sample("k", Categorical(logits=torch.zeros(B, 0)))


def _no_grad_model(wrap_dist):
    logits = torch.zeros(B, 3, requires_grad=True)
    mu = torch.zeros((), requires_grad=True)
    g = sg.Graph()
    with g:
        dist = Categorical(logits=logits)
        with torch.no_grad():
            k = g.sample("k", Categorical(logits=logits) if wrap_dist else dist)
        g.cost("c", k * 1.0 + (mu - 1.0) ** 2)   # mu's pathwise gradient would hide the loss
    return g


@pytest.mark.parametrize("wrap_dist", [True, False], ids=["dist-inside", "dist-outside"])
def test_score_node_sampled_under_no_grad_then_differentiated_is_an_error(wrap_dist):
    g = _no_grad_model(wrap_dist)
    with raises(sg.GraphError, "'k'", "no_grad"):
        g.surrogate()


class _DetachedCategorical(Categorical):
    """A distribution whose log_prob drops the gradient of its (trainable) parameters."""

    def log_prob(self, value):
        return super().log_prob(value).detach()


def test_log_prob_without_gradient_of_trainable_parameters_is_an_error():
    with sg.Graph() as g:
        k = g.sample("k", _DetachedCategorical(logits=torch.zeros(B, 3, requires_grad=True)))
        g.cost("c", k * 1.0)
    with raises(sg.GraphError, "'k'", "require grad"):
        g.surrogate()


def test_graph_evaluated_entirely_under_no_grad_is_fine():
    """A loss value for logging (as scgrad.rl does before an update): no gradient is wanted."""
    logits = torch.zeros(B, 3, requires_grad=True)
    with torch.no_grad():
        g = sg.Graph()
        k = g.sample("k", Categorical(logits=logits), value=torch.zeros(B, dtype=torch.long))
        g.cost("c", k * 1.0 + 1.0)
        assert close(g.surrogate(), torch.tensor(1.0))


def test_observed_node_of_a_constant_distribution_is_fine():
    mu = torch.zeros(B, requires_grad=True)
    with sg.Graph() as g:
        k = g.sample("k", Categorical(logits=torch.zeros(B, 3)), value=torch.ones(B, dtype=torch.long))
        g.cost("c", k * (mu - 1.0) ** 2)
    grad, = torch.autograd.grad(g.surrogate(), mu)
    assert close(grad, 2.0 * (mu.detach() - 1.0) / B)
