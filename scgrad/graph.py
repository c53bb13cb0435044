"""The stochastic computation graph: records nodes as the forward pass runs, builds the surrogate."""
from __future__ import annotations

import threading
from typing import Callable, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple, Union

import networkx as nx
import torch
from torch.distributions import Distribution

from ._shapes import align, broadcast_shapes, numel
from .errors import GraphError, NonFiniteCostError, ShapeError
from .estimators import DrawContext, Estimator, Terms, default_estimator
from .nodes import CostNode, StochasticNode
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
            enumerate (``Enumerate``): enumerated supports are laid out to their left. Defaults
            to the batch rank of the first enumerated node.
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
        self._override = override_estimator
        self._tracker: Optional[Provenance] = None
        self._inside = False
        self._built = False
        self._batch_ndim = batch_ndim
        self._enum_dims = 0
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
            drawn = chosen.draw(dist, DrawContext(name, value, self._new_enum_dim))
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
            parents=parents, observed=value is not None, enum_dim=drawn.enum_dim)
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
                node upstream of it are allowed only for enumerated supports. Keep it
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
        self._costs[name] = CostNode(name, value, self._parents(declared, value))
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
        return self._ancestors()[self[name].name]

    # ----------------------------------------------------------------- surrogate
    def surrogate(self) -> torch.Tensor:
        """The scalar surrogate loss.

        Its value is the mean over samples of the summed costs (for enumerated nodes: their
        expectation); its gradient of every order is an estimate of the gradient of the
        expected total cost, unbiased when every node's estimator is. Build it once per graph:
        it updates stateful baselines.
        """
        if self._built:
            raise GraphError("surrogate() was already built for this graph (it updates baselines); "
                             "record a new Graph for each forward pass")
        if not self._costs:
            raise GraphError("surrogate() needs at least one cost; record one with g.cost(name, value)")
        ancestors = self._ancestors()
        self._check_cost_shapes(ancestors)
        if self._check_costs:
            self._check_finite()
        if torch.is_grad_enabled():
            self._check_gradients(ancestors)
        self._built = True
        terms = self._node_terms(ancestors)
        # Terms with the same upstream log-weights and shape share one exp(τ)·(Σ terms): an
        # identity at every order, and cheaper (a baseline folds into its costs: exp(ℓ)(c − b)).
        groups: Dict[tuple, List[Tuple[str, torch.Tensor]]] = {}

        def add(upstream: FrozenSet[str], label: str, value: torch.Tensor) -> None:
            weighted = frozenset(n for n in upstream if terms[n].log_weight is not None)
            groups.setdefault((weighted, value.shape), []).append((label, value))

        for cost in self._costs.values():
            add(ancestors[cost.name], f"cost '{cost.name}'", cost.value)
        aux = []
        for name, node_terms in terms.items():
            if node_terms.baseline is not None and node_terms.log_weight is not None:
                label = f"baseline of node '{name}'"
                b = node_terms.baseline.expand(node_terms.log_weight.shape)  # per sample, like ℓ
                add(ancestors[name], label, b)                                # exp(τ_A)·b
                add(ancestors[name] | {name}, label, -b)                      # −exp(τ_A + ℓ)·b
            if node_terms.control_variate is not None:
                add(ancestors[name], f"control variate of node '{name}'", node_terms.control_variate)
            if node_terms.aux_loss is not None:
                aux.append(node_terms.aux_loss - node_terms.aux_loss.detach())
        parts = [self._reduce(self._weighted(_total([v for _, v in members]), upstream, terms,
                                             " + ".join(label for label, _ in members)))
                 for (upstream, _), members in groups.items()]
        return _total(parts + aux)

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

    def _new_enum_dim(self, batch_rank: int) -> int:
        """Allocate the batch dimension (a negative index) for the next enumerated node."""
        if self._batch_ndim is None:
            self._batch_ndim = batch_rank
        if batch_rank > self._batch_ndim + self._enum_dims:
            raise ShapeError(
                f"an enumerated distribution has batch rank {batch_rank}, more than batch_ndim="
                f"{self._batch_ndim} plus {self._enum_dims} enumerated dims; pass "
                "Graph(batch_ndim=...) with the number of sample dimensions")
        dim = -(self._batch_ndim + 1 + self._enum_dims)
        self._enum_dims += 1
        return dim

    def _check_finite(self) -> None:
        """Costs and log-probabilities must be finite (−inf is an enumerated node's impossible
        outcome, weighted by exp(−inf) = 0). One host sync when they are: all of them are
        checked as one tensor; the culprits are found only on the way to the error."""
        costs = list(self._costs.values())
        nodes = [node for node in self._stochastic.values() if node.log_prob is not None]
        tensors = [cost.value.detach() for cost in costs] + [_checked_log_prob(node) for node in nodes]
        if _all_finite(tensors):
            return
        bad = [not bool(torch.isfinite(t).all()) for t in tensors]  # the error path: syncs freely
        raise NonFiniteCostError(_non_finite_message([c.name for c, b in zip(costs, bad) if b],
                                                     [n.name for n, b in zip(nodes, bad[len(costs):]) if b]))

    def _check_cost_shapes(self, ancestors: Dict[str, FrozenSet[str]]) -> None:
        """A cost may have fewer dimensions than the scored nodes upstream of it, not more.

        Shapes align from the right, so a cost [B, B] on a node [B] would pair sample j with
        cost column j. Extra dimensions are allowed where they cannot mispair: size 1, or the
        supports of enumerated nodes (left of the batch dims). Pathwise nodes (no log-prob)
        have no weight to mispair: autograd pairs their elements.
        """
        for cost in self._costs.values():
            shape = cost.value.shape
            for name in ancestors[cost.name]:
                node = self._stochastic[name]
                if node.log_prob is None or len(shape) <= node.log_prob.dim():
                    continue
                if not self._only_enumerated(shape, node.log_prob.dim()):
                    raise ShapeError(
                        f"cost '{cost.name}' has shape {tuple(shape)}, more dimensions than node "
                        f"'{name}' upstream of it (shape {tuple(node.shape)}): shapes align from the "
                        f"right, so sample j of '{name}' would be paired with the cost's last-dimension "
                        "element j; reduce the cost to the node's shape (leading dimensions are "
                        "samples), or give the node the cost's sample dimensions (value= or "
                        "dist.expand)")

    def _only_enumerated(self, shape: torch.Size, rank: int) -> bool:
        """Whether the dimensions of ``shape`` left of its last ``rank`` are all size 1 or
        enumerated supports."""
        lowest = (self._batch_ndim or 0) + 1                  # positions counted from the right
        highest = (self._batch_ndim or 0) + self._enum_dims
        return all(size == 1 or (self._enum_dims and lowest <= len(shape) - i <= highest)
                   for i, size in enumerate(shape[:len(shape) - rank]))

    def _check_gradients(self, ancestors: Dict[str, FrozenSet[str]]) -> None:
        """Scored nodes upstream of a cost must have a log-prob with a gradient, when the
        surrogate is built with gradients on (a graph evaluated wholly under ``torch.no_grad()``,
        for a loss to log, is fine).

        A log-prob without gradient is right for a distribution with no trainable parameters
        (an observed value under a constant distribution); it was lost if the node was sampled
        under ``torch.no_grad()``, or if the distribution's parameters require grad.
        """
        upstream = frozenset().union(*(ancestors[c] for c in self._costs))
        lost = []
        for name in upstream:
            node = self._stochastic[name]
            if node.log_prob is None or node.log_prob.requires_grad:
                continue
            if name in self._no_grad:
                lost.append(f"node '{name}' was sampled under torch.no_grad() or torch.inference_mode()")
            elif any(isinstance(t, torch.Tensor) and t.requires_grad for t in vars(node.dist).values()):
                lost.append(f"node '{name}' has parameters that require grad but a log-prob that does not")
        if lost:
            raise GraphError(f"{'; '.join(sorted(lost))}: its score term would silently give no gradient; "
                             "sample it with gradients enabled (outside torch.no_grad()), or build the "
                             "surrogate under torch.no_grad() too if only its value is wanted")

    def _ancestors(self) -> Dict[str, FrozenSet[str]]:
        """Stochastic ancestors of every node. Recording order is a topological order."""
        found: Dict[str, FrozenSet[str]] = {}
        for record in [*self._stochastic.values(), *self._costs.values()]:
            closure = set(record.parents)
            for parent in record.parents:
                closure |= found[parent]
            found[record.name] = frozenset(closure)
        return found

    def _node_terms(self, ancestors: Dict[str, FrozenSet[str]]) -> Dict[str, Terms]:
        """Each node's surrogate terms; nodes upstream of no cost contribute nothing."""
        downstream: Dict[str, List[CostNode]] = {name: [] for name in self._stochastic}
        for cost in self._costs.values():
            for name in ancestors[cost.name]:
                downstream[name].append(cost)
        terms = {}
        for name, node in self._stochastic.items():
            if downstream[name]:
                credit = self._credit(node, downstream[name], ancestors) if node.estimator.needs_credit else None
                terms[name] = node.estimator.terms(node, credit)
        return terms

    def _credit(self, node: StochasticNode, costs: List[CostNode],
                ancestors: Dict[str, FrozenSet[str]]) -> torch.Tensor:
        """The node's downstream cost, detached, in the node's shape.

        Costs downstream of enumerated nodes that the node itself lacks are first summed over
        those supports with weights p (their expectation). Each cost is scaled so that
        subtracting a baseline from the credit matches the surrogate's normalisation (each cost
        is averaged over its own elements). Records, on the node, the dimensions along which a
        cost was shared by several samples.
        """
        shape = node.shape
        parts = []
        shared = set()
        for cost in costs:
            c = self._expect_enumerated(cost.value.detach(), ancestors[cost.name] - ancestors[node.name] - {node.name})
            shared |= _broadcast_dims(c.shape, shape)
            aligned = align(c, shape, f"cost '{cost.name}' credited to node '{node.name}'")
            scale = numel(shape) / max(numel(c.shape), 1)
            parts.append(aligned if scale == 1 else aligned * scale)
        node.shared_credit_dims = frozenset(shared)
        return _total(parts)

    def _expect_enumerated(self, cost: torch.Tensor, between: FrozenSet[str]) -> torch.Tensor:
        """``cost`` summed over the supports of the enumerated nodes in ``between``, weighted
        by their probabilities (size-1 dims are kept where the supports were)."""
        enumerated = [self._stochastic[name] for name in self._stochastic
                      if name in between and self._stochastic[name].enum_dim is not None]
        if not enumerated:
            return cost
        weights = [node.log_prob.detach() for node in enumerated]
        shape = broadcast_shapes(cost.shape, *(w.shape for w in weights))
        expected = cost * torch.exp(_total([align(w, shape, f"node '{n.name}'") for n, w in zip(enumerated, weights)]))
        axes = [len(shape) + n.enum_dim for n in enumerated]  # enum_dim counts from the right
        return expected.sum([a for a in axes if a >= 0], keepdim=True)

    def _weighted(self, x: torch.Tensor, upstream: FrozenSet[str], terms: Dict[str, Terms],
                  what: str) -> torch.Tensor:
        """``x`` times exp(Σ log-weights of the nodes upstream of it), in a common shape."""
        weights = [(name, terms[name].log_weight) for name in self._stochastic
                   if name in upstream and terms[name].log_weight is not None]
        if not weights:
            return x
        enumerated = [lw.shape for name, lw in weights if self._stochastic[name].enum_dim is not None]
        if not enumerated and len(weights) == 1 and weights[0][1].shape == x.shape:  # the common case
            return torch.exp(weights[0][1]) * x
        try:
            shape = broadcast_shapes(x.shape, *enumerated)
        except RuntimeError:
            raise ShapeError(f"{what} has shape {tuple(x.shape)}, which does not broadcast with the "
                             f"enumerated nodes upstream of it (shapes {[tuple(s) for s in enumerated]})") from None
        tau = _total([align(lw, shape, f"node '{name}' (log-prob shape {tuple(lw.shape)}) upstream of {what}")
                      for name, lw in weights])
        return torch.exp(tau) * x

    def _reduce(self, term: torch.Tensor) -> torch.Tensor:
        """Sum over enumerated dimensions, mean over sample dimensions."""
        if self._enum_dims == 0:
            return term.mean()
        assert self._batch_ndim is not None
        rank = term.dim()
        if rank > self._batch_ndim + self._enum_dims:
            raise ShapeError(f"a term of shape {tuple(term.shape)} has more dimensions than "
                             f"batch_ndim={self._batch_ndim} plus {self._enum_dims} enumerated ones")
        axes = [rank - self._batch_ndim - 1 - i for i in range(self._enum_dims)
                if rank - self._batch_ndim - 1 - i >= 0]
        return term.sum(axes).mean() if axes else term.mean()

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


def _checked_log_prob(node: StochasticNode) -> torch.Tensor:
    """The node's log-prob as the finiteness check sees it: −inf (an impossible outcome) is
    fine for an enumerated node, whose weight exp(−inf) = 0 is exact."""
    log_prob = node.log_prob.detach()
    if node.enum_dim is not None and log_prob.is_floating_point():
        return log_prob.clamp(min=torch.finfo(log_prob.dtype).min)
    return log_prob


def _all_finite(tensors: List[torch.Tensor]) -> bool:
    """Whether every element of every tensor is finite, read back in one host sync (per device).

    x − x is 0 for every finite x and NaN for ±inf and NaN, so the sum of the differences is 0
    exactly when all elements are finite (a plain sum could overflow), in fewer kernels than
    ``isfinite``. The tensors are flattened into one copy (small beside the model), so the
    check costs the same however many nodes and costs the graph has.
    """
    device = tensors[0].device
    if any(t.device != device for t in tensors):
        return all(_all_finite([t]) for t in tensors)  # rare: one sync per tensor
    if len(tensors) == 1:
        zeros = tensors[0] - tensors[0]
    else:
        flat = torch.cat([t.reshape(-1) if t.dim() != 1 else t for t in tensors])
        zeros = flat.sub_(flat)  # our own copy
    return zeros.sum().item() == 0


def _non_finite_message(costs: List[str], nodes: List[str]) -> str:
    """What is NaN or infinite, and where it usually comes from."""
    parts = []
    if costs:
        parts.append(f"cost(s) {', '.join(map(repr, costs))} contain NaN or inf")
    if nodes:
        parts.append(f"the log-prob of node(s) {', '.join(map(repr, nodes))} contains NaN or inf (an "
                     "infinite or out-of-support value=, or NaN distribution parameters)")
    return "; ".join(parts) + "; no gradient can be estimated"


def _broadcast_dims(small: torch.Size, shape: torch.Size) -> set:
    """Dimensions of ``shape`` (non-negative) along which ``small`` would be broadcast."""
    offset = len(shape) - len(small)
    return {d for d in range(len(shape)) if shape[d] > 1 and (d < offset or small[d - offset] == 1)}


def _total(tensors: List[torch.Tensor]) -> torch.Tensor:
    """Sum of a non-empty list of tensors, without the extra ``0 + ...`` of the builtin ``sum``."""
    total = tensors[0]
    for tensor in tensors[1:]:
        total = total + tensor
    return total
