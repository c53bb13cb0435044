"""The checks a graph passes before its surrogate is built: each failure would otherwise give a
silently wrong gradient (promise 6 of the design notes)."""
from __future__ import annotations

from typing import Dict, List, Optional, Set

import torch

from .ancestry import Ancestry
from .errors import GraphError, NonFiniteCostError, ShapeError
from .layout import Layout
from .nodes import CostNode, StochasticNode


class Facts:
    """What the checks need to know of each stochastic node, gathered as the graph records it (so
    that building the surrogate does not pass over every node again): the nodes with a log-prob,
    as a bitset per rank of the log-prob, and those whose log-prob has no gradient; and the
    highest rank of a cost."""

    def __init__(self) -> None:
        self.by_rank: Dict[int, int] = {}
        self.gradless = 0
        self.cost_rank = 0

    def add(self, bit: int, log_prob: Optional[torch.Tensor]) -> None:
        """Record node ``bit`` (its index in recording order) and its log-prob."""
        if log_prob is None:
            return
        self.by_rank[log_prob.dim()] = self.by_rank.get(log_prob.dim(), 0) | 1 << bit
        if not log_prob.requires_grad:
            self.gradless |= 1 << bit

    def add_cost(self, value: torch.Tensor) -> None:
        """Record a cost's value."""
        self.cost_rank = max(self.cost_rank, value.dim())


def check_cost_shapes(stochastic: Dict[str, StochasticNode], costs: Dict[str, CostNode], ancestry: Ancestry,
                      layout: Layout, facts: Facts) -> None:
    """A cost may have fewer dimensions than the scored nodes upstream of it, not more.

    Shapes align from the right, so a cost [B, B] on a node [B] would pair sample j with cost
    column j. Extra dimensions are allowed where they cannot mispair: size 1, or the points of
    nodes with several points (left of the sample dims). Pathwise nodes (no log-prob) have no weight to
    mispair: autograd pairs their elements. Only nodes of lower rank than a cost are looked at
    (a bitset per rank), so the check is linear in the graph's size, and free when no cost
    has more dimensions than every node.
    """
    by_rank = facts.by_rank
    if not any(rank < facts.cost_rank for rank in by_rank):  # no cost outranks a node: nothing to pass over
        return
    lower_than: Dict[int, int] = {}  # cost rank -> the scored nodes of lower rank
    for cost in costs.values():
        shape = cost.value.shape
        lower = lower_than.get(len(shape))
        if lower is None:
            lower = lower_than[len(shape)] = sum(bits for rank, bits in by_rank.items() if rank < len(shape))
        suspects = ancestry.upstream[cost.name] & lower
        if not suspects:
            continue
        for name in sorted(ancestry.names_of(suspects), key=ancestry.bit.get):
            node = stochastic[name]
            if not layout.only_points(shape, node.log_prob.dim()):
                raise ShapeError(
                    f"cost '{cost.name}' has shape {tuple(shape)}, more dimensions than node "
                    f"'{name}' upstream of it (shape {tuple(node.shape)}): shapes align from the "
                    f"right, so sample j of '{name}' would be paired with the cost's last-dimension "
                    "element j; reduce the cost to the node's shape (leading dimensions are "
                    "samples), or give the node the cost's sample dimensions (value= or "
                    "dist.expand)")


def check_finite(stochastic: Dict[str, StochasticNode], costs: Dict[str, CostNode]) -> None:
    """Costs and log-probabilities must be finite (−inf is an enumerated node's impossible
    outcome, weighted by exp(−inf) = 0). One host sync when they are: all of them are
    checked as one tensor; the culprits are found only on the way to the error."""
    cost_list = list(costs.values())
    nodes = [node for node in stochastic.values() if node.log_prob is not None]
    with torch.no_grad():  # no detach() per tensor: the check is one cat and one sum, whatever the size
        tensors = [cost.value for cost in cost_list] + [_checked_log_prob(node) for node in nodes]
        if _all_finite(tensors):
            return
    bad = [not bool(torch.isfinite(t).all()) for t in tensors]  # the error path: syncs freely
    raise NonFiniteCostError(_non_finite_message([c.name for c, b in zip(cost_list, bad) if b],
                                                 [n.name for n, b in zip(nodes, bad[len(cost_list):]) if b]))


def check_gradients(stochastic: Dict[str, StochasticNode], ancestry: Ancestry,
                    no_grad: Set[str], facts: Facts) -> None:
    """Scored nodes upstream of a cost must have a log-prob with a gradient, when the
    surrogate is built with gradients on (a graph evaluated wholly under ``torch.no_grad()``,
    for a loss to log, is fine).

    A log-prob without gradient is right for a distribution with no trainable parameters
    (an observed value under a constant distribution); it was lost if the node was sampled
    under ``torch.no_grad()``, or if the distribution's parameters require grad.
    """
    lost: List[str] = []
    for name in ancestry.ordered(ancestry.of_costs & facts.gradless):
        node = stochastic[name]
        if name in no_grad:
            lost.append(f"node '{name}' was sampled under torch.no_grad() or torch.inference_mode()")
        elif any(isinstance(t, torch.Tensor) and t.requires_grad for t in vars(node.dist).values()):
            lost.append(f"node '{name}' has parameters that require grad but a log-prob that does not")
    if lost:
        raise GraphError(f"{'; '.join(sorted(lost))}: its score term would silently give no gradient; "
                         "sample it with gradients enabled (outside torch.no_grad()), or build the "
                         "surrogate under torch.no_grad() too if only its value is wanted")


def _checked_log_prob(node: StochasticNode) -> torch.Tensor:
    """The node's log-prob as the finiteness check sees it: −inf (an impossible outcome) is
    fine for an enumerated node, whose weight exp(−inf) = 0 is exact."""
    log_prob = node.log_prob
    if node.points is not None and log_prob.is_floating_point():
        return log_prob.clamp(min=torch.finfo(log_prob.dtype).min)
    return log_prob


def _all_finite(tensors: List[torch.Tensor]) -> bool:
    """Whether every element of every tensor is finite, read back in one host sync (per device).

    x − x is 0 for every finite x and NaN for ±inf and NaN, so the sum of the differences is 0
    exactly when all elements are finite (a plain sum could overflow), in fewer kernels than
    ``isfinite``. The tensors are flattened into one copy (small beside the model), so the
    check costs the same however many nodes and costs the graph has. (Tensors on several
    devices cannot be concatenated: then each is checked alone.)
    """
    try:
        flat = torch.cat([t if t.dim() == 1 else t.reshape(-1) for t in tensors])
    except RuntimeError:  # tensors on several devices (rare): one sync per tensor
        return all(bool((t.detach() - t.detach()).sum() == 0) for t in tensors)
    return flat.sub_(flat).sum().item() == 0  # our own copy


def _non_finite_message(costs: List[str], nodes: List[str]) -> str:
    """What is NaN or infinite, and where it usually comes from."""
    parts = []
    if costs:
        parts.append(f"cost(s) {', '.join(map(repr, costs))} contain NaN or inf")
    if nodes:
        parts.append(f"the log-prob of node(s) {', '.join(map(repr, nodes))} contains NaN or inf (an "
                     "infinite or out-of-support value=, or NaN distribution parameters)")
    return "; ".join(parts) + "; no gradient can be estimated"
