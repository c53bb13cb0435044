"""Which stochastic nodes lie upstream of each node and cost of a graph, as bitsets.

Node i (in recording order, stochastic nodes only) is bit i. Recording order is a topological
order, so a record's upstream set is the union of its parents and their upstream sets, known
the moment it is recorded: the graph adds each record as it goes, and building the surrogate
finds the ancestry ready. Bitsets keep that, and the surrogate's grouping by upstream set,
linear in practice for graphs of thousands of nodes in sequence (a union of two thousand-member
sets is one machine operation per 64 members).
"""
from __future__ import annotations

from typing import Collection, Dict, FrozenSet, Iterable, List

from .nested import members


class Ancestry:
    """The ancestry of a graph's records so far.

    Attributes:
        names: stochastic node names in recording order (bit i is ``names[i]``).
        bit: name -> bit index, for stochastic nodes.
        upstream: every node's and cost's name -> bitset of the stochastic nodes upstream of it.
        of_costs: bitset of the stochastic nodes upstream of at least one cost.
    """

    def __init__(self) -> None:
        self.names: List[str] = []
        self.bit: Dict[str, int] = {}
        self.upstream: Dict[str, int] = {}
        self.of_costs = 0

    def add_node(self, name: str, parents: Collection[str]) -> None:
        """Record stochastic node ``name`` (a new name) with its parents (names already added)."""
        self.upstream[name] = self._union(parents)
        self.bit[name] = len(self.names)
        self.names.append(name)

    def add_cost(self, name: str, parents: Collection[str]) -> None:
        """Record cost ``name`` (a new name) with its parents (stochastic nodes already added)."""
        self.upstream[name] = bits = self._union(parents)
        self.of_costs |= bits

    def names_of(self, bits: int) -> FrozenSet[str]:
        """The node names in a bitset."""
        return frozenset(self.names[i] for i in members(bits))

    def ordered(self, bits: int) -> List[str]:
        """The node names in a bitset, in recording order."""
        names = self.names
        return [names[i] for i in members(bits)]

    def bits_of(self, names: Iterable[str]) -> int:
        """The bitset of some stochastic node names."""
        bits = 0
        for name in names:
            bits |= 1 << self.bit[name]
        return bits

    def _union(self, parents: Collection[str]) -> int:
        """The parents and everything upstream of them, as a bitset."""
        bit, upstream = self.bit, self.upstream
        if len(parents) == len(bit):  # every node so far (an untracked graph's records): no unions
            return (1 << len(bit)) - 1
        bits = 0
        for parent in parents:
            bits |= (1 << bit[parent]) | upstream[parent]
        return bits
