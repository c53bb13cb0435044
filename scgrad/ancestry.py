"""Which stochastic nodes lie upstream of each node and cost of a graph, as bitsets.

Node i (in recording order, stochastic nodes only) is bit i. Recording order is a topological
order, so each record's upstream set is the union of its parents and their upstream sets, found
in one pass. Bitsets keep that pass, and the surrogate's grouping by upstream set, linear in
practice for graphs of thousands of nodes in sequence (a union of two thousand-member sets is
one machine operation per 64 members).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterable, List

from .nested import members
from .nodes import CostNode, StochasticNode


@dataclass(frozen=True)
class Ancestry:
    """Attributes:
        names: stochastic node names in recording order (bit i is ``names[i]``).
        bit: name -> bit index, for stochastic nodes.
        upstream: every node's and cost's name -> bitset of the stochastic nodes upstream of it.
        of_costs: bitset of the stochastic nodes upstream of at least one cost.
    """

    names: List[str]
    bit: Dict[str, int]
    upstream: Dict[str, int]
    of_costs: int

    def ordered(self, bits: int) -> List[str]:
        """The node names in a bitset, in recording order."""
        names = self.names
        return [names[i] for i in members(bits)]

    def names_of(self, bits: int) -> FrozenSet[str]:
        """The node names in a bitset."""
        return frozenset(self.names[i] for i in members(bits))

    def bits_of(self, names: Iterable[str]) -> int:
        """The bitset of some stochastic node names."""
        bits = 0
        for name in names:
            bits |= 1 << self.bit[name]
        return bits


def trace(stochastic: Dict[str, StochasticNode], costs: Dict[str, CostNode]) -> Ancestry:
    """The ancestry of a graph's records (stochastic nodes and costs, each in recording order)."""
    names = list(stochastic)
    bit = {name: i for i, name in enumerate(names)}
    upstream: Dict[str, int] = {}
    for record in stochastic.values():
        upstream[record.name] = _union(record.parents, bit, upstream)
    of_costs = 0
    for record in costs.values():
        upstream[record.name] = bits = _union(record.parents, bit, upstream)
        of_costs |= bits
    return Ancestry(names, bit, upstream, of_costs)


def _union(parents: Iterable[str], bit: Dict[str, int], upstream: Dict[str, int]) -> int:
    """The parents and everything upstream of them, as a bitset."""
    bits = 0
    for parent in parents:
        bits |= (1 << bit[parent]) | upstream[parent]
    return bits
