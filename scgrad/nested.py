"""Sums over nested sets of tensors, in O(new members) tensor operations.

A graph of T stochastic nodes in sequence, with a cost at every step, needs the sum of the
log-weights upstream of each cost — over {1}, {1, 2}, …, {1, …, T} — and, for baselines, the sum
of the costs downstream of each node — over {t, …, T}. Summing every set afresh costs O(T²)
additions. Here each set's sum is its *parent's* plus one item, the parent being the set less
its highest member (``drop="high"``: prefixes in recording order) or its lowest (``drop="low"``:
suffixes), and every run of sets that extend one another is summed by a single ``cumsum`` over
their stacked items. A chain of T sets thus costs a stack and a cumsum, whatever T; sets that
share nothing cost nothing beyond their own items.

Sets are Python ints used as bitsets (bit i: item i): union, difference and hashing of a
thousand-member set take nanoseconds, so the bookkeeping is linear in practice as well.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterable, Iterator, List, Optional

import torch

from ._shapes import broadcast_shapes


def members(bits: int) -> Iterator[int]:
    """The items of a bitset, lowest first."""
    while bits:
        low = bits & -bits
        yield low.bit_length() - 1
        bits ^= low


def highest(bits: int) -> int:
    """The highest item of a non-empty bitset."""
    return bits.bit_length() - 1


def lowest(bits: int) -> int:
    """The lowest item of a non-empty bitset."""
    return (bits & -bits).bit_length() - 1


class Sum:
    """A set's sum: ``stack[row]``, or ``stack`` itself when ``row`` is ``None``.

    Sets on one run share ``stack`` ([run length, *shape]): callers can then batch their work
    over the rows instead of indexing each (see ``surrogate``). (A plain class with slots: one
    is made per set, thousands per graph.)
    """

    __slots__ = ("stack", "row")

    def __init__(self, stack: torch.Tensor, row: Optional[int] = None) -> None:
        self.stack, self.row = stack, row

    def tensor(self) -> torch.Tensor:
        """The sum as a tensor of the items' (broadcast) shape."""
        return self.stack if self.row is None else self.stack[self.row]


def nested_sums(sets: Iterable[int], item: Callable[[int], torch.Tensor], drop: str = "high") -> Dict[int, Sum]:
    """The sum of ``item(i)`` over the members i of each non-empty set in ``sets``.

    Args:
        sets: bitsets; the empty set (0) is skipped (it has no sum).
        item: the tensor of item i; items that meet in a sum must broadcast together.
        drop: ``"high"`` (each set extends the set less its highest member: prefixes) or
            ``"low"`` (suffixes).

    Returns:
        {set: its ``Sum``} for every non-empty requested set (and the intermediate sets the
        parent chains pass through, which are computed anyway).
    """
    take = highest if drop == "high" else lowest
    parent: Dict[int, int] = {}
    extra: Dict[int, int] = {}
    for s in sets:
        while s and s not in parent:
            i = take(s)
            parent[s], extra[s] = s ^ (1 << i), i
            s = parent[s]
    # A parent has one member fewer than its child: by size is an order parents-first.
    order = sorted(parent, key=int.bit_count)
    runs: List[List[int]] = []
    run_of: Dict[int, int] = {}      # set -> index of its run
    extended = set()                  # sets whose run was extended by a child already
    for s in order:
        p = parent[s]
        if p and p not in extended and runs[run_of[p]][-1] == p:
            runs[run_of[p]].append(s)
            extended.add(p)
        else:
            runs.append([s])
        run_of[s] = len(runs) - 1
    sums: Dict[int, Sum] = {}
    for run in runs:
        root = parent[run[0]]
        items = [item(extra[s]) for s in run]
        if len(run) == 1:
            total = items[0] if not root else sums[root].tensor() + items[0]
            sums[run[0]] = Sum(total)
            continue
        shape = items[0].shape
        if any(x.shape != shape for x in items):
            shape = broadcast_shapes(*(x.shape for x in items))
            items = [x if x.shape == shape else x.expand(shape) for x in items]
        stacked = torch.stack(items).cumsum(0)
        if root:
            stacked = stacked + sums[root].tensor()
        for row, s in enumerate(run):
            sums[s] = Sum(stacked, row)
    return sums
