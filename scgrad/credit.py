"""Each stochastic node's credit: the costs downstream of it, detached, in its shape.

Node w's credit is Σ_{c downstream of w} c (aligned to w's shape, each cost scaled by
numel(w) / numel(c), so that a baseline subtracted from it matches the surrogate's averaging of
c over its own elements). In a sequence of T nodes with a cost per step the downstream sets are
suffixes {c_t, …, c_T}; ``nested.nested_sums`` builds them all in one reverse cumulative sum
instead of T sums of up to T costs. Costs downstream of enumerated nodes that w lacks are
first averaged over those supports with weights p (their expectation), which depends on the
node; those graphs (small, exact ones) are summed node by node.
"""
from __future__ import annotations

from typing import Dict, FrozenSet, Iterable, List

import torch

from ._shapes import align, broadcast_shapes, numel
from .ancestry import Ancestry
from .nested import nested_sums
from .nodes import CostNode, StochasticNode
from .protocol import Credit


def credits(wanted: Iterable[str], stochastic: Dict[str, StochasticNode], costs: Dict[str, CostNode],
            ancestry: Ancestry, differentiable: Iterable[str] = ()) -> Dict[str, Credit]:
    """The credit of each node named in ``wanted`` (nodes upstream of at least one cost), with
    its differentiable sum too for the nodes named in ``differentiable``."""
    cost_list = list(costs.values())
    downstream = _downstream_costs(stochastic, cost_list)
    enumerated = [n for n in stochastic.values() if n.points is not None]
    shape_masks = _masks_by_shape(cost_list)
    out: Dict[str, Credit] = {}
    by_shape: Dict[torch.Size, List[str]] = {}
    for name in wanted:
        by_shape.setdefault(stochastic[name].shape, []).append(name)
    for shape, names in by_shape.items():
        if enumerated:
            values = {n: _summed_one_by_one(stochastic[n], cost_list, downstream[n], stochastic, ancestry)
                      for n in names}
        else:
            def scaled(i: int, shape: torch.Size = shape) -> torch.Tensor:
                cost = cost_list[i]
                c = align(cost.value.detach(), shape, f"cost '{cost.name}' credited to a node of shape {tuple(shape)}")
                scale = numel(shape) / max(numel(cost.value.shape), 1)
                return c if scale == 1 else c * scale

            sums = nested_sums([downstream[n] for n in names], scaled, drop="low")
            values = {n: s.tensor() for n, s in zip(names, sums)}
        for n in names:
            shared = _shared_dims(shape, downstream[n], shape_masks)
            out[n] = Credit(values[n], shared)
    for n in differentiable:
        whole = _summed_one_by_one(stochastic[n], cost_list, downstream[n], stochastic, ancestry, detach=False)
        out[n] = Credit(out[n].value, out[n].shared_dims, whole)
    return out


def _downstream_costs(stochastic: Dict[str, StochasticNode], costs: List[CostNode]) -> Dict[str, int]:
    """Node name -> bitset of the costs (by position in ``costs``) downstream of it: passed
    from each record to its parents in reverse recording order, one union per edge."""
    down = {name: 0 for name in stochastic}
    for j, cost in enumerate(costs):
        for parent in cost.parents:
            down[parent] |= 1 << j
    for node in reversed(list(stochastic.values())):
        for parent in node.parents:
            down[parent] |= down[node.name]
    return down


def _masks_by_shape(costs: List[CostNode]) -> Dict[torch.Size, int]:
    """Cost shape -> bitset of the costs of that shape."""
    masks: Dict[torch.Size, int] = {}
    for j, cost in enumerate(costs):
        masks[cost.value.shape] = masks.get(cost.value.shape, 0) | (1 << j)
    return masks


def _shared_dims(shape: torch.Size, downstream: int, masks: Dict[torch.Size, int]) -> FrozenSet[int]:
    """Dimensions of ``shape`` along which some downstream cost would be broadcast."""
    shared = set()
    for cost_shape, mask in masks.items():
        if downstream & mask:
            offset = len(shape) - len(cost_shape)
            shared |= {d for d in range(len(shape))
                       if shape[d] > 1 and (d < offset or cost_shape[d - offset] == 1)}
    return frozenset(shared)


def _summed_one_by_one(node: StochasticNode, costs: List[CostNode], downstream: int,
                       stochastic: Dict[str, StochasticNode], ancestry: Ancestry, detach: bool = True) -> torch.Tensor:
    """The node's credit, cost by cost, taking expectations over the enumerated nodes between
    (the costs detached unless ``detach`` is false; the points' weights always are)."""
    shape = node.shape
    parts = []
    own = ancestry.upstream[node.name] | (1 << ancestry.bit[node.name])
    j = 0
    while downstream:
        if downstream & 1:
            cost = costs[j]
            between = ancestry.upstream[cost.name] & ~own
            c = expect_enumerated(cost.value.detach() if detach else cost.value, between, stochastic, ancestry)
            aligned = align(c, shape, f"cost '{cost.name}' credited to node '{node.name}'")
            scale = numel(shape) / max(numel(c.shape), 1)
            parts.append(aligned if scale == 1 else aligned * scale)
        downstream >>= 1
        j += 1
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def expect_enumerated(cost: torch.Tensor, between: int, stochastic: Dict[str, StochasticNode],
                      ancestry: Ancestry) -> torch.Tensor:
    """``cost`` summed over the points of the nodes in the bitset ``between`` that have several
    (an enumerated support), weighted by the points' weights (size-1 dims are kept where the
    points were)."""
    enumerated = [stochastic[name] for name in ancestry.names
                  if between >> ancestry.bit[name] & 1 and stochastic[name].points is not None]
    if not enumerated:
        return cost
    weights = [node.points.log_weight.detach() for node in enumerated]
    shape = broadcast_shapes(cost.shape, *(w.shape for w in weights))
    aligned = [align(w, shape, f"node '{n.name}'") for n, w in zip(enumerated, weights)]
    log_weight = aligned[0]
    for w in aligned[1:]:
        log_weight = log_weight + w
    expected = cost * torch.exp(log_weight)
    axes = [len(shape) + n.points.dim for n in enumerated]  # the dims count from the right
    return expected.sum([a for a in axes if a >= 0], keepdim=True)
