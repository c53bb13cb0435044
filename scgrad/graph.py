"""The stochastic computation graph: records nodes as the forward pass runs.

Recording is this module's job; the surrogate's mathematics live apart (``surrogate``,
``credit``, ``ancestry``, ``nested``, ``layout``, ``checks``), as Pyro keeps its DiCE apart from
its tracing."""
from __future__ import annotations

import threading
from typing import Callable, Dict, FrozenSet, Iterable, Optional, Set, Union

import networkx as nx
import torch
from torch.distributions import Distribution

from . import surrogate as _surrogate
from .ancestry import Ancestry
from .checks import Facts, check_cost_shapes, check_finite, check_gradients
from .credit import credits
from .errors import GraphError, ShapeError
from .estimators import default_estimator
from .layout import Layout
from .nodes import CostNode, StochasticNode
from .protocol import DrawContext, Estimator, Terms
from .provenance import NO_TAGS, Provenance, Tags

EstimatorOverride = Callable[[str, Distribution, Estimator], Estimator]


class Graph:
    """A stochastic computation graph, recorded while the model runs.

    Use it as a context manager so that dependencies are found by following the data::

        with sg.Graph() as g:
            k = g.sample("k", Categorical(logits=logits))       # shape [B]
            g.cost("loss", table[k])                             # shape [B]
        g.surrogate().backward()

    Inside ``with g:`` every torch operation is followed (see ``scgrad.provenance``), so each
    cost is credited only to the stochastic nodes it was computed from. A graph used without
    ``with`` cannot see data flow and credits each cost (and node) to every node recorded
    before it: still unbiased, only noisier (Pyro's ordering-based rule). In both modes,
    ``depends_on=`` adds dependencies torch cannot see.

    Args:
        batch_ndim: number of batch (sample) dimensions, needed only by estimators that
            evaluate a node at several points (``Enumerate``, ``GaussHermite``, ``ARM``): the
            points are laid out to their left. Defaults to the batch rank of the first such node.
        override_estimator: ``f(name, dist, requested) -> Estimator`` replacing every node's
            estimator; ``scgrad.testing`` uses it to enumerate a model exactly.
        check_finite: ``surrogate()`` raises ``NonFiniteCostError`` for a NaN or infinite cost
            or log-probability (an infinite ``value=``, NaN distribution parameters). The check
            reads the flags back from the device in one synchronisation per graph; a training
            loop that guards against divergence itself (as ``scgrad.rl``'s does) can turn it
            off to keep its inner loop free of host synchronisations.

    A tracked graph is recorded from the thread that entered it (torch's mode stack is per
    thread, so another thread's operations are invisible). Graphs may nest, and their ``with``
    blocks may interleave (a generator's graph exits while a graph entered after it is open):
    each keeps tracking until its own block ends.
    """

    def __init__(self, batch_ndim: Optional[int] = None,
                 override_estimator: Optional[EstimatorOverride] = None, check_finite: bool = True) -> None:
        if batch_ndim is not None and batch_ndim < 0:
            raise ValueError(f"Graph: batch_ndim must be >= 0, got {batch_ndim}")
        self._stochastic: Dict[str, StochasticNode] = {}
        self._costs: Dict[str, CostNode] = {}
        self._ancestry = Ancestry()  # kept up to date as records are added
        self._facts = Facts()        # what the checks need of each node, likewise
        self._override = override_estimator
        self._tracker: Optional[Provenance] = None
        self._inside = False
        self._built = False
        self._layout = Layout(batch_ndim)
        self._check_costs = check_finite
        self._thread: Optional[int] = None  # the entering thread, whose mode stack tracks
        self._no_grad: Set[str] = set()  # nodes sampled under torch.no_grad()

    # ----------------------------------------------------------------- recording
    def __enter__(self) -> "Graph":
        if self._tracker is not None:
            raise GraphError("a Graph can be entered once; record the whole model in one `with` block")
        if self._stochastic or self._costs:
            raise GraphError("enter the Graph (`with g:`) before recording any node")
        self._tracker = Provenance()
        self._tracker.__enter__()
        self._thread = threading.get_ident()
        self._inside = True
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        assert self._tracker is not None
        if threading.get_ident() != self._thread:
            raise GraphError("a Graph must be left (end of `with g:`) in the thread that entered it: "
                             "torch's mode stack, which does the tracking, is per thread")
        self._inside = False
        # Out of order (interleaved `with` blocks) is fine: the tracker leaves from wherever it
        # is on the stack, and the graphs entered after it keep tracking.
        if not self._tracker.leave() and exc_type is None:
            raise GraphError("this Graph's tracking was taken off torch's mode stack by something else "
                             "while `with g:` was open; dependencies recorded since may be missing")

    def sample(self, name: str, dist: Distribution, estimator: Optional[Estimator] = None,
               value: Optional[torch.Tensor] = None,
               depends_on: Optional[Iterable[str]] = None) -> torch.Tensor:
        """Record a stochastic node and return its value.

        Args:
            name: unique node name.
            dist: a ``torch.distributions.Distribution``; its batch shape's leading dims are
                independent samples.
            estimator: how gradients pass this node; default ``Reparam()`` if
                ``dist.has_rsample`` (and no ``value``), else ``ScoreFunction()``.
            value: score this given value instead of drawing one (e.g. replayed actions);
                shape ``[*sample, *dist.batch_shape, *dist.event_shape]``.
            depends_on: names of earlier nodes this one depends on in ways torch cannot see.

        Returns:
            The value (``[*sample, *batch, *event]``); use it, not ``value``, downstream.
        """
        declared = self._open_node(name, depends_on)
        if not isinstance(dist, Distribution):
            raise TypeError(f"node '{name}': dist must be a torch.distributions.Distribution, "
                            f"got {type(dist).__name__}")
        chosen = estimator if estimator is not None else default_estimator(dist, value is not None)
        if self._override is not None:
            chosen = self._override(name, dist, chosen)
        if not isinstance(chosen, Estimator):
            raise TypeError(f"node '{name}': estimator must be a scgrad.estimators.Estimator, "
                            f"got {type(chosen).__name__}")
        try:
            drawn = chosen.draw(dist, DrawContext(name, value, self._layout.new_dim))
        except GraphError:
            raise  # ours: already names the node
        except (ValueError, TypeError, RuntimeError, IndexError) as error:  # torch's: add the node
            raise _in_context(error, _describe(name, dist, value)) from error
        # Shapes, not numel(): inside `with g:` every tensor method call goes through the tracker.
        if 0 in drawn.value.shape or (drawn.log_prob is not None and 0 in drawn.log_prob.shape):
            raise ShapeError(f"{_describe(name, dist, drawn.value)} is empty: an empty batch has no "
                             "mean, so the surrogate would be NaN; skip the graph for an empty batch")
        if not torch.is_grad_enabled():
            self._no_grad.add(name)
        parents = self._parents(declared, drawn.value, drawn.log_prob)
        self._stochastic[name] = StochasticNode(
            name=name, dist=dist, value=drawn.value, log_prob=drawn.log_prob, estimator=chosen,
            parents=parents, observed=value is not None, points=drawn.points,
            noise=drawn.noise)
        self._facts.add(len(self._ancestry.names), drawn.log_prob)
        self._ancestry.add_node(name, parents)
        if self._tracker is not None:
            self._tracker.replace(drawn.value, frozenset({name}))
        return drawn.value

    def cost(self, name: str, value: Union[torch.Tensor, float],
             depends_on: Optional[Iterable[str]] = None) -> torch.Tensor:
        """Record a per-sample cost (to be minimised in expectation) and return it.

        Args:
            name: unique node name.
            value: shape = the batch shape of the samples it depends on, or fewer dimensions
                (shapes align from the right; a scalar broadcasts); more dimensions than a scored
                node upstream of it are allowed only for the points of a node (an enumerated support). Keep it
                differentiable where pathwise gradients should flow.
            depends_on: names of nodes the cost depends on in ways torch cannot see (a cost
                computed in NumPy, an environment step).
        """
        declared = self._open_node(name, depends_on)
        if not isinstance(value, torch.Tensor):
            value = _as_cost_tensor(name, value)
        if not value.is_floating_point():
            value = value.to(torch.get_default_dtype())
        if 0 in value.shape:
            raise ShapeError(f"cost '{name}' is empty (shape {tuple(value.shape)}): an empty batch has "
                             "no mean, so the surrogate would be NaN; skip the graph for an empty batch")
        self._costs[name] = record = CostNode(name, value, self._parents(declared, value))
        self._ancestry.add_cost(name, record.parents)
        self._facts.add_cost(value)
        return value

    # ----------------------------------------------------------------- inspection
    @property
    def nodes(self) -> Dict[str, StochasticNode]:
        """The stochastic nodes by name, in recording order."""
        return dict(self._stochastic)

    @property
    def costs(self) -> Dict[str, CostNode]:
        """The cost nodes by name, in recording order."""
        return dict(self._costs)

    def __getitem__(self, name: str) -> Union[StochasticNode, CostNode]:
        if name in self._stochastic:
            return self._stochastic[name]
        if name in self._costs:
            return self._costs[name]
        raise KeyError(f"no node named '{name}' in this graph")

    @property
    def nx(self) -> nx.DiGraph:
        """A ``networkx.DiGraph``: nodes by name (attribute ``kind``: "stochastic" or "cost",
        plus ``estimator`` and ``distribution`` for stochastic ones), edges from each node to the
        nodes and costs that depend on it directly."""
        graph = nx.DiGraph()
        for node in self._stochastic.values():
            graph.add_node(node.name, kind="stochastic", estimator=repr(node.estimator),
                           distribution=type(node.dist).__name__, observed=node.observed)
        for cost in self._costs.values():
            graph.add_node(cost.name, kind="cost")
        for record in [*self._stochastic.values(), *self._costs.values()]:
            graph.add_edges_from((parent, record.name) for parent in record.parents)
        return graph

    def ancestors(self, name: str) -> FrozenSet[str]:
        """Names of all stochastic nodes upstream of node ``name``."""
        return self._ancestry.names_of(self._ancestry.upstream[self[name].name])

    # ----------------------------------------------------------------- surrogate
    def surrogate(self) -> torch.Tensor:
        """The scalar surrogate loss.

        Its value is the mean over samples of the summed costs (for nodes with several points:
        the points' weighted sum, e.g. the expectation over an enumerated support); its gradient of every order is an estimate of the gradient of the
        expected total cost, unbiased when every node's estimator is. Build it once per graph:
        it updates stateful baselines.
        """
        if self._built:
            raise GraphError("surrogate() was already built for this graph (it updates baselines); "
                             "record a new Graph for each forward pass")
        if not self._costs:
            raise GraphError("surrogate() needs at least one cost; record one with g.cost(name, value)")
        ancestry = self._ancestry
        check_cost_shapes(self._stochastic, self._costs, ancestry, self._layout, self._facts)
        if self._check_costs:
            check_finite(self._stochastic, self._costs)
        if torch.is_grad_enabled():
            check_gradients(self._stochastic, ancestry, self._no_grad, self._facts)
        self._built = True
        return _surrogate.build(self._stochastic, self._costs, self._node_terms(ancestry), ancestry, self._layout)

    # ----------------------------------------------------------------- internals
    def _open_node(self, name: str, depends_on: Optional[Iterable[str]]) -> Tags:
        """Check that a node may be recorded now; return its declared dependencies."""
        if not isinstance(name, str) or not name:
            raise GraphError(f"node names must be non-empty strings, got {name!r}")
        if self._built:
            raise GraphError(f"cannot record '{name}': the surrogate of this graph was already built")
        if self._tracker is not None and not self._inside:
            raise GraphError(f"cannot record '{name}' after leaving `with g:`: dependencies "
                             "computed outside the block would be missed")
        if self._thread is not None and threading.get_ident() != self._thread:
            raise GraphError(f"cannot record '{name}' from another thread than the one that entered "
                             "`with g:`: torch's mode stack is per thread, so the operations of this "
                             "thread are not followed; record the graph in one thread")
        if name in self._stochastic or name in self._costs:
            raise GraphError(f"duplicate node name '{name}'")
        if depends_on is None:
            return NO_TAGS
        if isinstance(depends_on, str):
            depends_on = [depends_on]
        declared = frozenset(depends_on)
        unknown = sorted(d for d in declared if d not in self._stochastic)
        if unknown:
            known = ", ".join(self._stochastic) or "none"
            raise GraphError(f"node '{name}': depends_on names unknown stochastic nodes {unknown} "
                             f"(recorded so far: {known})")
        return declared

    def _parents(self, declared: Tags, *tensors: Optional[torch.Tensor]) -> Tags:
        if self._tracker is None:  # no data-flow view: every earlier node may matter
            return frozenset(self._stochastic) | declared
        # Values that left torch may come back through Python or NumPy: credit them too.
        found = self._tracker.of(*(t for t in tensors if t is not None)) | self._tracker.escaped
        return found | declared

    def _node_terms(self, ancestry: Ancestry) -> Dict[str, Terms]:
        """Each node's surrogate terms; nodes upstream of no cost contribute nothing."""
        nodes = [self._stochastic[name] for name in ancestry.ordered(ancestry.of_costs)]
        wanted = [node.name for node in nodes if node.estimator.needs_credit]
        whole = [name for name in wanted if self._stochastic[name].estimator.needs_differentiable_credit]
        credit = credits(wanted, self._stochastic, self._costs, ancestry, whole) if wanted else {}
        return {node.name: node.estimator.terms(node, credit.get(node.name)) for node in nodes}

    def __repr__(self) -> str:
        return (f"Graph({len(self._stochastic)} stochastic, {len(self._costs)} cost nodes, "
                f"{'tracked' if self._tracker is not None else 'untracked'})")


def _describe(name: str, dist: Distribution, value: object) -> str:
    """``node 'k' (Categorical, batch_shape (4,), value shape (4,))``, for error messages."""
    shapes = f"batch_shape {tuple(dist.batch_shape)}"
    if dist.event_shape:
        shapes += f", event_shape {tuple(dist.event_shape)}"
    if isinstance(value, torch.Tensor):
        shapes += f", value shape {tuple(value.shape)}"
    elif value is not None:
        shapes += f", value of type {type(value).__name__}"
    return f"node '{name}' ({type(dist).__name__}, {shapes})"


def _in_context(error: Exception, where: str) -> Exception:
    """``error`` again with ``where`` in front of its message: the same type where it can be
    rebuilt from a message (so ``except ValueError`` still catches it), else a ``GraphError``."""
    message = f"{where}: {error}"
    try:
        return type(error)(message)
    except Exception:  # a type whose constructor takes other arguments
        return GraphError(message)


def _as_cost_tensor(name: str, value: object) -> torch.Tensor:
    """A cost given as a number (or nested lists of them) as a tensor."""
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"cost '{name}': value must be a tensor or a number, got {type(value).__name__}")
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"cost '{name}': value must be a tensor or a number, got "
                        f"{type(value).__name__} ({error})") from error
