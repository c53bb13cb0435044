"""The surrogate loss of a recorded graph, from its records and its nodes' terms.

With the terms of ``scgrad.protocol`` (ℓ_w = box(s_w) + log_weight_w, baseline b_w, control
variate v_w, auxiliary loss r_w), the surrogate is

    L = Σ_c  exp(τ(W_c)) · c  +  Σ_w exp(τ(A_w)) · b_w − exp(τ(A_w ∪ {w})) · b_w + v_w·exp(τ(A_w))
      + Σ_w  (r_w − stop_grad(r_w)),        τ(S) = Σ_{w ∈ S} ℓ_w,

each product reduced to a scalar by ``Layout.reduce`` (mean over samples, weighted sum over
points). Terms with the same upstream set and shape are added before the one multiplication
they share. The τ of all upstream sets come from ``nested.nested_sums``: in a sequence of T
nodes the sets nest, so all T of them cost one stack and one cumulative sum, and the products
along such a run are formed and reduced as one stacked tensor. Scores are summed before the
magic box is applied (box(Σ s) = Σ box(s): the box is linear), so a score-function node costs
no tensor operation of its own. The costs of the commonest long graph — upstream sets that grow
in recording order — skip the grouping: one stack of scores, one cumsum, one product
(``_costs_along_nested_sets``).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import torch

from ._shapes import align, broadcast_shapes
from .ancestry import Ancestry
from .errors import ShapeError
from .layout import Layout
from .nested import Sum, key, members, nested_sums
from .nodes import CostNode, StochasticNode
from .protocol import Terms

Label = Tuple[str, str]  # ("cost", name), ("baseline of node", name), ...: for error messages


class _Group:
    """Terms that share an upstream set of weighted nodes (a bitset) and a shape, with their labels."""

    __slots__ = ("bits", "shape", "members")

    def __init__(self, bits: int, shape: torch.Size) -> None:
        self.bits, self.shape = bits, shape
        self.members: List[Tuple[Label, torch.Tensor]] = []

    def describe(self) -> str:
        """The terms, for an error message: "cost 'c' + baseline of node 'w'"."""
        return _describe(self.members)


class _Groups(dict):
    """The groups by (``nested.key`` of the bitset, shape)."""

    def add(self, bits: int, label: Label, value: torch.Tensor) -> None:
        """Add term ``value`` (named by ``label``) to the group of upstream set ``bits`` and its shape."""
        k = (key(bits), value.shape)
        group = self.get(k)
        if group is None:
            group = self[k] = _Group(bits, value.shape)
        group.members.append((label, value))


def _describe(members: List[Tuple[Label, torch.Tensor]]) -> str:
    """The terms of a group, for an error message: "cost 'c' + baseline of node 'w'"."""
    return " + ".join(f"{kind} '{name}'" for (kind, name), _ in members)


def build(stochastic: Dict[str, StochasticNode], costs: Dict[str, CostNode], terms: Dict[str, Terms],
          ancestry: Ancestry, layout: Layout) -> torch.Tensor:
    """The scalar surrogate (see the module docstring); ``terms`` holds the terms of every node
    upstream of some cost."""
    weights = _Weights(stochastic, terms, ancestry)
    groups = _Groups()
    mask, upstream_of = weights.mask, ancestry.upstream

    aux = []
    along = _costs_along_nested_sets(costs, weights, upstream_of, layout)
    if along is not None:
        aux.append(along)
    else:
        for cost in costs.values():  # labels stay tuples until an error
            groups.add(upstream_of[cost.name] & mask, ("cost", cost.name), cost.value)
    for name, t in terms.items():
        upstream = upstream_of[name]
        if t.baseline is not None and weights.has(name):
            b = t.baseline.expand(weights.shape(name))                                 # per sample, like ℓ
            label = ("baseline of node", name)
            groups.add(upstream & mask, label, b)                                      # exp(τ_A)·b
            groups.add((upstream | 1 << ancestry.bit[name]) & mask, label, -b)         # −exp(τ_A + ℓ)·b
        if t.control_variate is not None:
            groups.add(upstream & mask, ("control variate of node", name), t.control_variate)
        if t.aux_loss is not None:
            aux.append(t.aux_loss - t.aux_loss.detach())
    return _add(_weighted_terms(groups, weights, layout) + aux)


def _costs_along_nested_sets(costs: Dict[str, CostNode], weights: "_Weights", upstream_of: Dict[str, int],
                             layout: Layout) -> Optional[torch.Tensor]:
    """Σ_c exp(τ(W_c))·c reduced, in one stack, for the common shape of long sequences — else
    ``None`` (the general grouping then handles the costs).

    The shape: in recording order, each cost's set of weighted nodes upstream contains the
    previous cost's (a chain, or several nodes per step, or one cost at the end), every cost and
    every score there have one shape, and those nodes have scores only (no other log-weight, no
    points). Then τ of every set is a row of one cumulative sum of the scores in order of first
    appearance, and costs with the same set share a row. Same value as the general path, without
    its per-set bookkeeping (grouping, nested-set ids), which dominates for thousands of steps.
    """
    order: List[int] = []      # node bits in order of first appearance
    ends: List[int] = []       # per row: the position in ``order`` of its set's last node
    rows: List[List[torch.Tensor]] = []
    previous, shape = -1, None
    for cost in costs.values():
        bits, value = upstream_of[cost.name] & weights.mask, cost.value
        if shape is None:
            shape = value.shape
        elif value.shape != shape:
            return None
        if bits == previous:
            rows[-1].append(value)
            continue
        if previous > 0 and previous & ~bits:
            return None  # not nested
        order.extend(members(bits ^ previous if previous > 0 else bits))
        ends.append(len(order) - 1)
        rows.append([value])
        previous = bits
    if not order or previous & (weights.logged | weights.pointed) or ends[0] < 0:
        return None  # no weights (plain costs), log-weights or points, or a first cost upstream of nothing
    names = weights.ancestry.names
    scores = [weights.scores[names[i]] for i in order]
    if any(s.shape != shape for s in scores):
        return None
    taus = torch.stack(scores).cumsum(0)
    if ends != list(range(len(order))):
        taus = taus[torch.tensor(ends, device=taus.device)]
    values = torch.stack([r[0] if len(r) == 1 else _add(r) for r in rows])
    return layout.reduce(torch.exp(taus - taus.detach()) * values, stacked=True)


class _Weights:
    """The log-weights of a graph's nodes: which nodes have one, and τ of any set of them."""

    def __init__(self, stochastic: Dict[str, StochasticNode], terms: Dict[str, Terms], ancestry: Ancestry):
        self.ancestry = ancestry
        self.scores: Dict[str, torch.Tensor] = {}
        self.logs: Dict[str, torch.Tensor] = {}  # the log-weight besides the score: the estimator's and the points'
        self.scored = self.logged = self.pointed = 0  # bitsets of the nodes with each
        bit = ancestry.bit
        for n, t in terms.items():  # one pass: graphs of long sequences have thousands of nodes
            b = 1 << bit[n]
            if t.score is not None:
                self.scores[n] = t.score
                self.scored |= b
            log, points = t.log_weight, stochastic[n].points
            if points is not None:
                self.pointed |= b
                if points.log_weight is not None:
                    log = points.log_weight if log is None else log + points.log_weight
            if log is not None:
                self.logs[n] = log
                self.logged |= b
        self.mask = self.scored | self.logged

    def has(self, name: str) -> bool:
        return bool(self.mask >> self.ancestry.bit[name] & 1)

    def shape(self, name: str) -> torch.Size:
        """The shape of node ``name``'s log-weight."""
        shapes = [x[name].shape for x in (self.scores, self.logs) if name in x]
        return shapes[0] if len(shapes) == 1 else broadcast_shapes(*shapes)

    def target(self, bits: int, shape: torch.Size, what: Callable[[], str]) -> torch.Size:
        """The shape of exp(τ(bits))·x for x of ``shape``: x's, widened by the points of the
        nodes in ``bits`` that have several (an enumerated support). ``what()`` names x for errors."""
        pointed = bits & self.pointed
        if not pointed:
            return shape
        enumerated = [self.logs[n].shape for n in self.ancestry.names_of(pointed)]
        try:
            return broadcast_shapes(shape, *enumerated)
        except RuntimeError:
            raise ShapeError(f"{what()} has shape {tuple(shape)}, which does not broadcast with the "
                             f"enumerated nodes upstream of it (shapes {[tuple(s) for s in enumerated]})") from None

    def item(self, field: str, target: torch.Size):
        """item(i) for ``nested_sums``: node i's score (``field="score"``) or other log-weight
        (``"log_weight"``), aligned to ``target`` (``_Misaligned`` if it cannot be)."""
        table = self.scores if field == "score" else self.logs

        names = self.ancestry.names

        def get(i: int) -> torch.Tensor:
            x = table[names[i]]
            if x.shape == target:  # the common case, without align's checks
                return x
            try:
                return align(x, target, "")
            except ShapeError:
                raise _Misaligned(i, x.shape) from None
        return get


class _Misaligned(Exception):
    """Node ``bit``'s log-weight of ``shape`` does not align with a term's shape."""

    def __init__(self, bit: int, shape: torch.Size) -> None:
        super().__init__(bit, shape)
        self.bit, self.shape = bit, shape


def _weighted_terms(groups: _Groups, weights: _Weights, layout: Layout) -> List[torch.Tensor]:
    """Each group's reduced exp(τ)·(Σ terms); groups along one run of nested sets as one tensor."""
    by_target: Dict[torch.Size, List[_Group]] = {}
    for group in groups.values():
        target = weights.target(group.bits, group.shape, group.describe) if group.bits & weights.pointed else group.shape
        by_target.setdefault(target, []).append(group)
    parts: List[torch.Tensor] = []
    runs: Dict[Tuple[int, torch.Size], List[Tuple[int, torch.Tensor, torch.Tensor]]] = {}
    for target, alike in by_target.items():
        for group, score, log in zip(alike, *_taus(alike, weights, target)):
            value = group.members[0][1] if len(group.members) == 1 else _add([v for _, v in group.members])
            if score is not None and log is None and score.row is not None and target == group.shape:
                runs.setdefault((id(score.stack), target), []).append((score.row, value, score.stack))  # batched below
                continue
            tau: Optional[torch.Tensor] = None
            if score is not None:
                s = score.tensor()
                tau = s - s.detach()
            if log is not None:
                tau = log.tensor() if tau is None else tau + log.tensor()
            parts.append(layout.reduce(value if tau is None else torch.exp(tau) * value))
    for rows in runs.values():
        stack = rows[0][2]
        index = [row for row, _, _ in rows]
        taus = stack if index == list(range(len(stack))) else stack[torch.tensor(index, device=stack.device)]
        boxed = torch.exp(taus - taus.detach())
        parts.append(layout.reduce(boxed * torch.stack([v for _, v, _ in rows]), stacked=True))
    return parts


def _taus(groups: List[_Group], weights: _Weights, target: torch.Size) -> Tuple[List[Optional[Sum]], List[Optional[Sum]]]:
    """For groups whose terms have shape ``target``: the sums of the scores and of the other
    log-weights over each group's upstream set (``None`` where it has none)."""
    def sums(field: str, mask: int) -> List[Optional[Sum]]:
        if not mask:  # no node has this kind of weight (log-weights beside scores are rare)
            return [None] * len(groups)
        return nested_sums([g.bits & mask for g in groups], weights.item(field, target))

    try:
        return sums("score", weights.scored), sums("log_weight", weights.logged)
    except _Misaligned as bad:
        culprit = next(g.describe() for g in groups if g.bits >> bad.bit & 1)
        raise ShapeError(
            f"node '{weights.ancestry.names[bad.bit]}' (log-prob shape {tuple(bad.shape)}) upstream of "
            f"{culprit} (shape {tuple(target)}): the shapes cannot be aligned; leading dimensions are "
            "independent samples and must match (or be 1) across nodes and costs") from None


def _add(tensors: List[torch.Tensor]) -> torch.Tensor:
    """Sum of a non-empty list of tensors, without the extra ``0 + ...`` of the builtin ``sum``."""
    total = tensors[0]
    for tensor in tensors[1:]:
        total = total + tensor
    return total
