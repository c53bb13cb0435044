"""Hypothesis strategies for random small stochastic computation graphs with exact expectations.

:func:`graph_specs` draws a :class:`GraphSpec`: 1–5 stochastic nodes (Bernoulli, Categorical
with 2–4 categories, Normal), random wiring and 1–3 costs. The wiring keeps the expectation
computable exactly by :mod:`scgrad.testing.exact`:

- a discrete node's logits depend on parameters and on earlier *discrete* nodes only, each
  entering by **indexing** a parameter table with the parent's sample;
- a Normal node's loc is linear in earlier Normal nodes plus table lookups of earlier discrete
  nodes; its scale is exp(parameter);
- a cost is ``scale_c · (Σ table[discrete value] + polynomial of degree ≤ 2 in Normal values)``,
  over a random subset of the nodes (at least one).

Every Normal value is then linear-Gaussian given the discrete values, every cost a polynomial
of degree ≤ 2 in the Normal noises: Gauss–Hermite of order ≥ 2 is exact.

A spec builds the model for given parameters (:meth:`GraphSpec.model`), with an estimator per
node (:class:`Choice`, instantiated by :class:`Estimators`, which also keeps stateful baselines
across graphs). Parameters carry a leading *copy* dimension n (n = 1 for a single model), so
that ``scgrad.testing.per_sample_derivatives`` gets n independent estimates in one backward pass.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from hypothesis import strategies as st
from torch import nn
from torch.distributions import Bernoulli, Categorical, Distribution, Normal

from .. import baselines
from ..estimators import ARM, DisARM, Enumerate, ImportanceWeighted, MeasureValued, Reparam, ScoreFunction
from ..protocol import Estimator
from ..graph import Graph

KINDS = ("bernoulli", "categorical", "normal")
DISCRETE = ("bernoulli", "categorical")


# ----------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class NodeSpec:
    """One stochastic node.

    Attributes:
        name: node name, e.g. ``"categorical1"``.
        kind: ``"bernoulli"``, ``"categorical"`` or ``"normal"``.
        categories: support size (2 for Bernoulli, 2–4 for Categorical, 0 for Normal).
        discrete_parents: earlier discrete nodes whose value indexes a parameter table
            ``<name>.by_<parent>`` (shape ``[parent categories]``) added to the logits / loc.
        normal_parents: earlier Normal nodes entering the loc as ``<name>.weight_<parent> · x``
            (Normal nodes only).
        directions: Categorical only: per discrete parent, a constant vector [categories]
            that spreads the parent's (scalar) table entry over the logits.
    """

    name: str
    kind: str
    categories: int
    discrete_parents: Tuple[str, ...] = ()
    normal_parents: Tuple[str, ...] = ()
    directions: Tuple[Tuple[float, ...], ...] = ()


@dataclass(frozen=True)
class CostSpec:
    """One cost: ``<name>.scale · (Σ tables + Σ linear + Σ quadratic)``, shape = the batch.

    Attributes:
        tables: (discrete node, constant cost of each of its values).
        linear: (Normal node, coefficient).
        quadratic: (Normal node i, Normal node j, coefficient) for the term coef · x_i · x_j.
    """

    name: str
    tables: Tuple[Tuple[str, Tuple[float, ...]], ...] = ()
    linear: Tuple[Tuple[str, float], ...] = ()
    quadratic: Tuple[Tuple[str, str, float], ...] = ()


@dataclass(frozen=True)
class GraphSpec:
    """A random small graph: nodes in topological order, costs and the parameters' values.

    ``init`` holds (parameter name, flat initial values) in the order of
    :meth:`parameter_shapes`; the repr is valid Python, so a failing example can be rebuilt.
    """

    nodes: Tuple[NodeSpec, ...]
    costs: Tuple[CostSpec, ...]
    init: Tuple[Tuple[str, Tuple[float, ...]], ...] = ()

    def node(self, name: str) -> NodeSpec:
        """The node called ``name``."""
        return next(n for n in self.nodes if n.name == name)

    def parameter_shapes(self) -> Dict[str, Tuple[int, ...]]:
        """Parameter name → shape (without the copy dimension), in a fixed order."""
        shapes: Dict[str, Tuple[int, ...]] = {}
        for node in self.nodes:
            if node.kind == "bernoulli":
                shapes[f"{node.name}.logit"] = ()
            elif node.kind == "categorical":
                shapes[f"{node.name}.logits"] = (node.categories,)
            else:
                shapes[f"{node.name}.loc"] = ()
                shapes[f"{node.name}.log_scale"] = ()
                for parent in node.normal_parents:
                    shapes[f"{node.name}.weight_{parent}"] = ()
            for parent in node.discrete_parents:
                shapes[f"{node.name}.by_{parent}"] = (self.node(parent).categories,)
        for cost in self.costs:
            shapes[f"{cost.name}.scale"] = ()
        return shapes

    def parameters(self, dtype: torch.dtype = torch.float64) -> Dict[str, torch.Tensor]:
        """The initial parameter values: name → leaf tensor (requires grad), shapes as
        :meth:`parameter_shapes`."""
        shapes, values = self.parameter_shapes(), dict(self.init)
        return {name: torch.tensor(values[name], dtype=dtype).reshape(shape).requires_grad_()
                for name, shape in shapes.items()}

    def parameter_labels(self) -> List[str]:
        """A label per flattened parameter element (``"cost0.scale"``, ``"categorical1.logits[2]"``)."""
        labels = []
        for name, shape in self.parameter_shapes().items():
            labels += [name] if not shape else [f"{name}[{i}]" for i in range(shape[0])]
        return labels

    def model(self, params: Mapping[str, torch.Tensor], inner: int = 1,
              estimators: Optional["Estimators"] = None) -> Callable[[Graph], None]:
        """The model ``model(g)`` recording this graph on ``g``.

        Args:
            params: name → tensor ``[n, *shape]``: n copies of the parameters; copy i drives
                the samples ``[i, :]``.
            inner: samples per copy; sample tensors have batch shape ``[n, inner]``, so
                record the graph with ``Graph(batch_ndim=2)``.
            estimators: the per-node estimators; ``None`` draws every node with its default
                estimator and no ``value=`` (what ``exact_objective`` needs).
        """
        def model(g: Graph) -> None:
            n = next(iter(params.values())).shape[0]
            batch = (n, inner)
            rows = torch.arange(n).unsqueeze(-1)  # [n, 1]: copy i reads row i of each table
            values: Dict[str, torch.Tensor] = {}
            for node in self.nodes:
                dist = self._distribution(node, params, values, rows, batch)
                values[node.name] = (g.sample(node.name, dist) if estimators is None
                                     else estimators.sample(g, node, dist, values))
            for cost in self.costs:
                g.cost(cost.name, self._cost(cost, params, values, batch))

        return model

    # ------------------------------------------------------------------- building blocks
    def _distribution(self, node: NodeSpec, params: Mapping[str, torch.Tensor],
                      values: Mapping[str, torch.Tensor], rows: torch.Tensor, batch) -> Distribution:
        p = params
        lookups = [_lookup(p[f"{node.name}.by_{parent}"], values[parent], rows) for parent in node.discrete_parents]
        if node.kind == "bernoulli":
            logits = p[f"{node.name}.logit"].unsqueeze(-1) + sum(lookups)
            return Bernoulli(logits=_expand(logits, batch))
        if node.kind == "categorical":
            logits = p[f"{node.name}.logits"].unsqueeze(-2)  # [n, 1, C]
            for lookup, direction in zip(lookups, node.directions):
                logits = logits + lookup.unsqueeze(-1) * torch.tensor(direction, dtype=logits.dtype)
            return Categorical(logits=_expand(logits, batch + (node.categories,)))
        loc = p[f"{node.name}.loc"].unsqueeze(-1) + sum(lookups)
        for parent in node.normal_parents:
            loc = loc + p[f"{node.name}.weight_{parent}"].unsqueeze(-1) * values[parent]
        scale = p[f"{node.name}.log_scale"].unsqueeze(-1).exp()
        return Normal(_expand(loc, batch), _expand(scale, batch))

    def _cost(self, cost: CostSpec, params: Mapping[str, torch.Tensor],
              values: Mapping[str, torch.Tensor], batch) -> torch.Tensor:
        scale = params[f"{cost.name}.scale"].unsqueeze(-1)  # [n, 1]
        total = torch.zeros((), dtype=scale.dtype)
        for name, table in cost.tables:
            total = total + torch.tensor(table, dtype=scale.dtype)[values[name].long()]
        for name, coefficient in cost.linear:
            total = total + coefficient * values[name]
        for first, second, coefficient in cost.quadratic:
            total = total + coefficient * values[first] * values[second]
        return _expand(scale * total, batch)

    def __str__(self) -> str:
        lines = ["GraphSpec:"]
        for node in self.nodes:
            parents = ", ".join(node.discrete_parents + node.normal_parents) or "-"
            size = f"({node.categories})" if node.kind == "categorical" else ""
            lines.append(f"  {node.name}: {node.kind}{size} | parents: {parents}")
        for cost in self.costs:
            terms = [f"table[{n}]" for n, _ in cost.tables] + [f"{c:+g}·{n}" for n, c in cost.linear]
            terms += [f"{c:+g}·{a}·{b}" for a, b, c in cost.quadratic]
            lines.append(f"  {cost.name} = scale · ({' + '.join(terms)})")
        return "\n".join(lines)


def _lookup(table: torch.Tensor, index: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Per-copy table lookup: ``table[i, index[..., i, j]]``.

    ``table`` [n, K]; ``index`` [..., n or 1, inner or 1] (a sample, or an enumerated support
    with extra dims on the left); ``rows`` [n, 1]. Indexing (not a one-hot product) is the
    point: it is the dependency the graph must find by tracking.
    """
    return table[rows, index.long()]


def _expand(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Broadcast ``x`` up to at least ``shape`` (enumerated dims on the left are kept)."""
    return x.expand(torch.broadcast_shapes(x.shape, tuple(shape)))


# ----------------------------------------------------------------------------- estimators
@dataclass(frozen=True)
class Choice:
    """How one node is estimated.

    Attributes:
        estimator: ``"score"`` (ScoreFunction), ``"reparam"`` (Normal only), ``"enumerate"``
            (discrete only), ``"arm"`` / ``"disarm"`` (Bernoulli only; first derivative only),
            ``"measure_valued"`` (Normal only; first derivative only) or
            ``"importance"`` (ImportanceWeighted without clip, value drawn from a detached,
            perturbed copy of the node's distribution).
        baseline: for ``"score"``: ``"none"``, ``"moving_average"``, ``"leave_one_out"``
            (along the inner sample dimension: needs ``inner ≥ 2``), ``"constant"`` or
            ``"learned"`` (a linear map of the earlier nodes' detached values).
    """

    estimator: str = "score"
    baseline: str = "none"

    def supports(self, kind: str) -> bool:
        """Whether this estimator can be used on a node of ``kind``."""
        if self.estimator == "reparam":
            return kind == "normal"
        if self.estimator == "enumerate":
            return kind in DISCRETE
        if self.estimator in ("arm", "disarm"):
            return kind == "bernoulli"
        if self.estimator == "measure_valued":
            return kind == "normal"
        return self.estimator in ("score", "importance")


class Estimators:
    """Per-node estimators for one :class:`GraphSpec`, kept across graphs.

    Stateful baselines (``MovingAverage``, the ``Learned`` module) are created once per node
    here, so successive graphs share them as in training; one instance per node, because a
    shared moving average would mix in the current batch of another node's credit.

    Args:
        spec: the graph.
        choices: node name → :class:`Choice`.
        dtype: dtype of the learned baselines' weights.
    """

    def __init__(self, spec: GraphSpec, choices: Mapping[str, Choice], dtype: torch.dtype = torch.float64) -> None:
        self.choices = dict(choices)
        self.dtype = dtype
        self._earlier: Dict[str, List[str]] = {}
        self._state: Dict[str, object] = {}
        for i, node in enumerate(spec.nodes):
            choice = self.choices[node.name]
            if not choice.supports(node.kind):
                raise ValueError(f"node '{node.name}': {choice} does not support a {node.kind} node")
            self._earlier[node.name] = [n.name for n in spec.nodes[:i]]
            if choice.baseline == "moving_average":
                self._state[node.name] = baselines.MovingAverage(0.5)
            elif choice.baseline == "learned":
                self._state[node.name] = nn.Linear(i + 1, 1).to(dtype)  # see _features

    def sample(self, g: Graph, node: NodeSpec, dist: Distribution, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Record ``node`` on ``g`` with its chosen estimator; return the value."""
        choice = self.choices[node.name]
        if choice.estimator == "importance":
            behaviour = _behaviour(dist)
            value = behaviour.sample()
            estimator = ImportanceWeighted(behaviour.log_prob(value))
            return g.sample(node.name, dist, estimator=estimator, value=value)
        return g.sample(node.name, dist, estimator=self._estimator(node, choice, dist, values))

    def _estimator(self, node: NodeSpec, choice: Choice, dist: Distribution,
                   values: Mapping[str, torch.Tensor]) -> Estimator:
        if choice.estimator == "reparam":
            return Reparam()
        if choice.estimator == "enumerate":
            return Enumerate()
        if choice.estimator == "arm":
            return ARM()
        if choice.estimator == "disarm":
            return DisARM()
        if choice.estimator == "measure_valued":
            return MeasureValued()
        return ScoreFunction(baseline=self._baseline(node, choice, dist, values))

    def _baseline(self, node: NodeSpec, choice: Choice, dist: Distribution,
                  values: Mapping[str, torch.Tensor]) -> Optional[baselines.Baseline]:
        kind = choice.baseline
        if kind == "none":
            return None
        if kind == "constant":
            return baselines.Constant(0.7)
        if kind == "leave_one_out":
            return baselines.LeaveOneOut(dim=-1)
        if kind == "moving_average":
            return self._state[node.name]
        if kind == "learned":
            return baselines.Learned(self._state[node.name], self._features(node, dist, values))
        raise ValueError(f"unknown baseline kind {kind!r}")

    def _features(self, node: NodeSpec, dist: Distribution, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The learned baseline's input ``[*batch, #earlier nodes]``: earlier values, detached
        (a baseline may depend on anything but the node's own sample and what follows it).

        A value that does not fit the node's batch shape (an enumerated node that is not a
        parent) reads as ones, so that the input size stays fixed across graphs.
        """
        batch = dist.batch_shape
        features = [torch.ones(batch, dtype=self.dtype)]
        for name in self._earlier[node.name]:
            value = values[name].detach().to(self.dtype)
            fits = torch.broadcast_shapes(value.shape, batch) == batch
            features.append(value.expand(batch) if fits else torch.ones(batch, dtype=self.dtype))
        return torch.stack(features, -1)


def _behaviour(dist: Distribution) -> Distribution:
    """A detached, perturbed copy of ``dist`` to draw importance-weighted values from.

    The Normal copy is wider than ``dist`` (scale × 1.25), which keeps the importance
    weights' second moments (and so the variance of the Hessian estimates) finite.
    """
    if isinstance(dist, Bernoulli):
        return Bernoulli(logits=dist.logits.detach() + 0.3)
    if isinstance(dist, Categorical):
        shift = torch.linspace(0.3, -0.3, dist.logits.shape[-1], dtype=dist.logits.dtype)
        return Categorical(logits=dist.logits.detach() + shift)
    return Normal(dist.loc.detach() + 0.2, dist.scale.detach() * 1.25)


# ----------------------------------------------------------------------------- strategies
def _numbers(low: float, high: float) -> st.SearchStrategy[float]:
    """Multiples of 0.05 in [low, high]: short to print, away from float edge cases."""
    return st.integers(round(low * 20), round(high * 20)).map(lambda k: k / 20)


def _init_range(parameter: str) -> Tuple[float, float]:
    """Where a parameter's initial values are drawn from: moderate, so no probability is
    tiny (which would make score-function estimates heavy-tailed)."""
    field = parameter.split(".", 1)[1]
    if field == "log_scale":
        return (-0.5, 0.3)
    if field == "scale":  # a cost's scale
        return (0.5, 1.5)
    return (-1.0, 1.0)  # logits, locs, weights, tables


@st.composite
def graph_specs(draw, max_nodes: int = 5, kinds: Sequence[str] = KINDS,
                require: Optional[Sequence[str]] = None, max_costs: int = 3) -> GraphSpec:
    """A random :class:`GraphSpec` with 1–``max_nodes`` nodes of ``kinds``.

    Args:
        require: if given, at least one node has one of these kinds (e.g. a Normal node for
            testing ``Reparam``).
        max_costs: at most this many costs (at least one).
    """
    count = draw(st.integers(1, max_nodes))
    node_kinds = draw(st.lists(st.sampled_from(list(kinds)), min_size=count, max_size=count))
    if require and not set(require) & set(node_kinds):
        node_kinds[draw(st.integers(0, count - 1))] = draw(st.sampled_from(list(require)))
    nodes: List[NodeSpec] = []
    for i, kind in enumerate(node_kinds):
        nodes.append(draw(_node(f"{kind}{i}", kind, nodes)))
    costs = tuple(draw(_cost(f"cost{i}", nodes)) for i in range(draw(st.integers(1, max_costs))))
    spec = GraphSpec(tuple(nodes), costs)
    init = []
    for name, shape in spec.parameter_shapes().items():
        low, high = _init_range(name)
        size = shape[0] if shape else 1
        init.append((name, tuple(draw(st.lists(_numbers(low, high), min_size=size, max_size=size)))))
    return dataclasses.replace(spec, init=tuple(init))


def _node(name: str, kind: str, earlier: Sequence[NodeSpec]) -> st.SearchStrategy[NodeSpec]:
    discrete = [n.name for n in earlier if n.kind in DISCRETE]
    normal = [n.name for n in earlier if n.kind == "normal"]

    @st.composite
    def build(draw) -> NodeSpec:
        categories = draw(st.integers(2, 4)) if kind == "categorical" else {"bernoulli": 2, "normal": 0}[kind]
        discrete_parents = tuple(draw(_subset(discrete, 2)))
        normal_parents = tuple(draw(_subset(normal, 2))) if kind == "normal" else ()
        directions = tuple(tuple(draw(st.lists(_numbers(-1, 1), min_size=categories, max_size=categories)))
                           for _ in discrete_parents) if kind == "categorical" else ()
        return NodeSpec(name, kind, categories, discrete_parents, normal_parents, directions)

    return build()


def _cost(name: str, nodes: Sequence[NodeSpec]) -> st.SearchStrategy[CostSpec]:
    @st.composite
    def build(draw) -> CostSpec:
        reads = draw(st.lists(st.sampled_from([n.name for n in nodes]), min_size=1, max_size=3, unique=True))
        discrete = [n for n in nodes if n.name in reads and n.kind in DISCRETE]
        normal = [n.name for n in nodes if n.name in reads and n.kind == "normal"]
        tables = tuple((n.name, tuple(draw(st.lists(_numbers(-2, 2), min_size=n.categories, max_size=n.categories))))
                       for n in discrete)
        pairs = list(itertools.combinations_with_replacement(normal, 2))
        quadratic = tuple((a, b, draw(_numbers(-1.5, 1.5))) for a, b in draw(_subset(pairs, 2)))
        linear = tuple((n, draw(_numbers(-1.5, 1.5))) for n in normal
                       if not any(n in q[:2] for q in quadratic) or draw(st.booleans()))
        return CostSpec(name, tables, linear, quadratic)

    return build()


def _subset(items: Sequence, max_size: int) -> st.SearchStrategy[list]:
    if not items:
        return st.just([])
    return st.lists(st.sampled_from(list(items)), max_size=max_size, unique=True)


@st.composite
def estimator_choices(draw, spec: GraphSpec, under_test: Choice,
                      others: Optional[Mapping[str, Sequence[Choice]]] = None) -> Dict[str, Choice]:
    """node name → :class:`Choice`: ``under_test`` on every node that supports it, a random
    choice from ``others[kind]`` on the rest (default: ScoreFunction, or Reparam for Normal)."""
    others = others or {"bernoulli": [Choice("score")], "categorical": [Choice("score")],
                        "normal": [Choice("score"), Choice("reparam")]}
    return {node.name: under_test if under_test.supports(node.kind) else draw(st.sampled_from(list(others[node.kind])))
            for node in spec.nodes}
