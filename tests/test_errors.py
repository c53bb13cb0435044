"""Bad input gets a clear error: each test checks the exception type AND that the message names
the node(s) / shapes involved (DESIGN.md §3.6)."""
import re

import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Categorical, Normal

import scgrad as sg
from scgrad.baselines import Constant, Learned, LeaveOneOut, MovingAverage
from scgrad.estimators import (Enumerate, GumbelSoftmax, ImportanceWeighted, Reparam, ScoreFunction,
                               StraightThrough)

B = 5


def raises(exc, *fragments):
    """pytest.raises(exc) whose message must contain every fragment (literally)."""
    return pytest.raises(exc, match="(?s)" + "".join(f"(?=.*{re.escape(f)})" for f in fragments))


def test_error_hierarchy():
    assert issubclass(sg.ShapeError, sg.GraphError)
    assert issubclass(sg.NonFiniteCostError, sg.GraphError)
    assert issubclass(sg.GraphError, ValueError)


# ----------------------------------------------------------------------------- estimators vs distributions
def test_reparam_without_rsample():
    with sg.Graph() as g:
        with raises(sg.GraphError, "'k'", "Categorical", "rsample"):
            g.sample("k", Categorical(logits=torch.zeros(B, 3)), estimator=Reparam())
    assert "k" not in g.nodes  # nothing half-recorded


def test_reparam_with_value():
    with sg.Graph() as g:
        with raises(sg.GraphError, "'z'", "value="):
            g.sample("z", Normal(torch.zeros(B), 1.0), estimator=Reparam(), value=torch.zeros(B))


@pytest.mark.parametrize("estimator", [GumbelSoftmax(), StraightThrough()], ids=repr)
def test_relaxed_estimators_on_normal(estimator):
    with sg.Graph() as g:
        with raises(sg.GraphError, "'z'", type(estimator).__name__, "Normal"):
            g.sample("z", Normal(torch.zeros(B), 1.0), estimator=estimator)


def test_enumerate_on_normal():
    with sg.Graph() as g:
        with raises(sg.GraphError, "'z'", "Enumerate", "Normal"):
            g.sample("z", Normal(torch.zeros(B), 1.0), estimator=Enumerate())


def test_enumerate_with_value():
    with sg.Graph() as g:
        with raises(sg.GraphError, "'k'", "value="):
            g.sample("k", Bernoulli(logits=torch.zeros(B)), estimator=Enumerate(), value=torch.zeros(B))


def test_non_distribution():
    with sg.Graph() as g:
        with raises(TypeError, "'z'", "Distribution", "Tensor"):
            g.sample("z", torch.zeros(B))


def test_non_estimator():
    with sg.Graph() as g:
        with raises(TypeError, "'z'", "Estimator", "str"):
            g.sample("z", Normal(torch.zeros(B), 1.0), estimator="reparam")


def test_non_estimator_from_override():
    with sg.Graph(override_estimator=lambda name, dist, requested: None) as g:
        with raises(TypeError, "'z'", "Estimator", "NoneType"):
            g.sample("z", Normal(torch.zeros(B), 1.0))


# ----------------------------------------------------------------------------- costs
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_cost_names_the_cost(bad):
    with sg.Graph() as g:
        k = g.sample("k", Bernoulli(logits=torch.zeros(B)))
        g.cost("fine", k * 1.0)
        cost = k * 1.0
        cost[2] = bad
        g.cost("broken", cost)
    with raises(sg.NonFiniteCostError, "'broken'") as info:
        g.surrogate()
    assert "'fine'" not in str(info.value)
    assert isinstance(info.value, FloatingPointError)


def test_finiteness_check_can_be_turned_off_for_loops_that_guard_themselves():
    g = sg.Graph(check_finite=False)
    k = g.sample("k", Bernoulli(logits=torch.zeros(B)))
    cost = k * 1.0
    cost[2] = float("nan")
    g.cost("broken", cost)
    assert torch.isnan(g.surrogate())  # no error: the NaN reaches the loss, for the caller to see


def test_surrogate_without_cost():
    with sg.Graph() as g:
        g.sample("k", Bernoulli(logits=torch.zeros(B)))
    with raises(sg.GraphError, "cost"):
        g.surrogate()


def test_cost_shape_not_aligned_with_node_names_both():
    with sg.Graph() as g:
        g.sample("k", Bernoulli(logits=torch.zeros(3)))
        g.cost("loss", torch.zeros(4), depends_on=["k"])
    with raises(sg.ShapeError, "'k'", "'loss'", "(3,)", "(4,)"):
        g.surrogate()


def test_cost_shape_not_aligned_with_node_with_baseline_names_both():
    # the credit computation (needs_credit) is where it fails first
    with sg.Graph() as g:
        g.sample("k", Bernoulli(logits=torch.zeros(3)), estimator=ScoreFunction(baseline=MovingAverage()))
        g.cost("loss", torch.zeros(2, 4), depends_on=["k"])
    with raises(sg.ShapeError, "'k'", "'loss'", "(3,)", "(2, 4)"):
        g.surrogate()


# ----------------------------------------------------------------------------- names and order
def test_duplicate_stochastic_name():
    with sg.Graph() as g:
        g.sample("x", Bernoulli(logits=torch.zeros(B)))
        with raises(sg.GraphError, "duplicate", "'x'"):
            g.sample("x", Bernoulli(logits=torch.zeros(B)))


def test_duplicate_stochastic_and_cost_name():
    with sg.Graph() as g:
        x = g.sample("x", Bernoulli(logits=torch.zeros(B)))
        with raises(sg.GraphError, "duplicate", "'x'"):
            g.cost("x", x)
        g.cost("c", x)
        with raises(sg.GraphError, "duplicate", "'c'"):
            g.sample("c", Bernoulli(logits=torch.zeros(B)))


def test_unknown_name_in_depends_on():
    with sg.Graph() as g:
        g.sample("a", Bernoulli(logits=torch.zeros(B)))
        with raises(sg.GraphError, "'c'", "['ghost']", "a"):
            g.cost("c", torch.zeros(B), depends_on=["a", "ghost"])
        with raises(sg.GraphError, "'b'", "['ghost']"):
            g.sample("b", Bernoulli(logits=torch.zeros(B)), depends_on="ghost")


def test_depends_on_a_cost_is_unknown():
    with sg.Graph() as g:
        a = g.sample("a", Bernoulli(logits=torch.zeros(B)))
        g.cost("c", a)
        with raises(sg.GraphError, "'d'", "['c']"):
            g.cost("d", a, depends_on=["c"])


def test_surrogate_twice():
    with sg.Graph() as g:
        g.cost("c", torch.ones(B, requires_grad=True))
    g.surrogate().backward()
    with raises(sg.GraphError, "already"):
        g.surrogate()


def test_recording_after_surrogate():
    g = sg.Graph()
    x = g.sample("x", Bernoulli(logits=torch.zeros(B)))
    g.cost("c", x)
    g.surrogate()
    with raises(sg.GraphError, "'late'", "surrogate"):
        g.cost("late", x)
    with raises(sg.GraphError, "'later'", "surrogate"):
        g.sample("later", Bernoulli(logits=torch.zeros(B)))


def test_recording_after_leaving_with():
    with sg.Graph() as g:
        x = g.sample("x", Bernoulli(logits=torch.zeros(B)))
    with raises(sg.GraphError, "'c'", "with"):
        g.cost("c", x)
    with raises(sg.GraphError, "'y'", "with"):
        g.sample("y", Bernoulli(logits=torch.zeros(B)))


def test_entering_twice():
    g = sg.Graph()
    with g:
        pass
    with raises(sg.GraphError, "entered once"):
        with g:
            pass


def test_entering_after_recording():
    g = sg.Graph()
    g.sample("x", Bernoulli(logits=torch.zeros(B)))
    with raises(sg.GraphError, "before recording"):
        with g:
            pass


@pytest.mark.parametrize("name", ["", None, 3])
def test_bad_node_name(name):
    with sg.Graph() as g:
        with raises(sg.GraphError, repr(name)):
            g.sample(name, Bernoulli(logits=torch.zeros(B)))


def test_negative_batch_ndim():
    with raises(ValueError, "batch_ndim", "-1"):
        sg.Graph(batch_ndim=-1)


# ----------------------------------------------------------------------------- values
@pytest.mark.parametrize("shape", [(B + 1,), (B, 2), ()], ids=str)
def test_value_with_wrong_shape(shape):
    with sg.Graph() as g:
        with raises(sg.GraphError, "'x'", str(tuple(shape)), f"({B},)"):
            g.sample("x", Normal(torch.zeros(B), 1.0), value=torch.zeros(shape))


def test_categorical_value_with_wrong_shape():
    with sg.Graph() as g:
        with raises(sg.GraphError, "'k'", "(4,)", f"({B},)"):
            g.sample("k", Categorical(logits=torch.zeros(B, 3)), value=torch.zeros(4, dtype=torch.long))


# ----------------------------------------------------------------------------- baselines
def _graph_with_baseline(baseline, shape=(B,)):
    with sg.Graph() as g:
        x = g.sample("x", Bernoulli(logits=torch.zeros(shape)), estimator=ScoreFunction(baseline=baseline))
        g.cost("c", x * 2.0)
    return g


@pytest.mark.parametrize("make", [lambda: torch.zeros(B + 2), lambda: Constant(torch.zeros(2, B))],
                         ids=["tensor", "Constant"])
def test_baseline_tensor_wrong_shape(make):
    g = _graph_with_baseline(make())
    bad = (B + 2,) if isinstance(make(), torch.Tensor) else (2, B)
    with raises(sg.ShapeError, "'x'", str(bad), f"({B},)"):
        g.surrogate()


def test_learned_baseline_output_wrong_shape():
    g = _graph_with_baseline(Learned(nn.Linear(3, 2), torch.zeros(B, 3)))
    with raises(sg.ShapeError, "'x'", f"({B}, 2)", f"({B},)"):
        g.surrogate()


def test_leave_one_out_with_one_sample():
    g = _graph_with_baseline(LeaveOneOut(dim=0), shape=(1, B))
    with raises(sg.GraphError, "'x'", "at least 2", f"(1, {B})"):
        g.surrogate()


def test_leave_one_out_dim_out_of_range():
    g = _graph_with_baseline(LeaveOneOut(dim=2), shape=(3, B))
    with raises(sg.GraphError, "'x'", f"(3, {B})", "dimension 2"):
        g.surrogate()


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5])
def test_moving_average_decay_out_of_range(decay):
    with raises(ValueError, "decay", str(decay)):
        MovingAverage(decay)


@pytest.mark.parametrize("bad", ["mean", [0.5], {"b": 0.5}], ids=["str", "list", "dict"])
def test_bad_baseline_type(bad):
    with raises(TypeError, "baseline", type(bad).__name__):
        ScoreFunction(baseline=bad)


def test_bad_baseline_type_in_importance_weighted():
    with raises(TypeError, "baseline", "str"):
        ImportanceWeighted(torch.zeros(B), baseline="mean")


# ----------------------------------------------------------------------------- importance weighting
def test_importance_weighted_without_value():
    with sg.Graph() as g:
        with raises(sg.GraphError, "'a'", "value="):
            g.sample("a", Categorical(logits=torch.zeros(B, 3)), estimator=ImportanceWeighted(torch.zeros(B)))


def test_importance_weighted_behavior_log_prob_shape():
    with sg.Graph() as g:
        with raises(sg.GraphError, "'a'", f"({B + 1},)", f"({B},)"):
            g.sample("a", Categorical(logits=torch.zeros(B, 3)), value=torch.zeros(B, dtype=torch.long),
                     estimator=ImportanceWeighted(torch.zeros(B + 1)))


@pytest.mark.parametrize("clip", [0.0, 1.0, -0.2, 1.5])
def test_importance_weighted_clip_out_of_range(clip):
    with raises(ValueError, "clip", str(clip)):
        ImportanceWeighted(torch.zeros(B), clip=clip)


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_gumbel_softmax_bad_temperature(temperature):
    with raises(ValueError, "temperature", str(temperature)):
        GumbelSoftmax(temperature)
