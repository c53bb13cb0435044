"""Sums over nested sets of tensors, in O(new members) tensor operations.

A graph of T stochastic nodes in sequence, with a cost at every step, needs the sum of the
log-weights upstream of each cost — over {1}, {1, 2}, …, {1, …, T} — and, for baselines, the sum
of the costs downstream of each node — over {t, …, T}. Summing every set afresh costs O(T²)
additions. Here each set's sum is its *parent's* plus one item, the parent being the set less
its highest member (``drop="high"``: prefixes in recording order) or its lowest (``drop="low"``:
suffixes), and every run of sets that extend one another is summed by a single ``cumsum`` over
their stacked items. A chain of T sets thus costs a stack and a cumsum, whatever T; sets that
share nothing cost nothing beyond their own items.

Sets are Python ints used as bitsets (bit i: item i): union and difference of a thousand-member
set take nanoseconds, and dicts of sets are keyed by ``key`` (the bitset's bytes, whose hash is
well spread), so the bookkeeping is linear in practice as well.
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


def key(bits: int) -> bytes:
    """A dict key for a bitset: its bytes. Python hashes an int by its value modulo 2^61 − 1, so
    the bitsets of nested sets ({0}, {0, 1}, …, or suffixes) share only 61 hash values: each
    lookup among n of them compares about n/61 big ints, quadratic in n overall (negligible at a
    thousand sets, measured; it grows with longer sequences). Bytes hash well."""
    return bits.to_bytes((bits.bit_length() + 7) // 8, "little")


def nested_sums(sets: Iterable[int], item: Callable[[int], torch.Tensor], drop: str = "high") -> List[Optional[Sum]]:
    """The sum of ``item(i)`` over the members i of each set in ``sets``.

    Args:
        sets: bitsets; the empty set (0) has no sum (``None``).
        item: the tensor of item i; items that meet in a sum must broadcast together.
        drop: ``"high"`` (each set extends the set less its highest member: prefixes) or
            ``"low"`` (suffixes).

    Returns:
        One ``Sum`` per set of ``sets``, in order (``None`` for the empty set); equal sets share it.
    """
    take = highest if drop == "high" else lowest
    ids: Dict[bytes, int] = {}   # key(set) -> its id; ids are given parents first
    parent: List[int] = []       # id -> the parent's id (−1: the empty set)
    extra: List[int] = []        # id -> the item the set adds to its parent
    requested: List[int] = []    # the id of each of ``sets`` (−1: empty)
    for s in sets:
        chain = []               # (key, item added) of s and its ancestors without an id, children first
        found = -1
        while s:
            k = key(s)
            found = ids.get(k, -1)
            if found >= 0:
                break
            i = take(s)
            chain.append((k, i))
            s ^= 1 << i
        for k, i in reversed(chain):
            ids[k] = len(parent)
            parent.append(found)
            extra.append(i)
            found = len(parent) - 1
        requested.append(found)
    runs = _runs(parent)
    sums: List[Optional[Sum]] = [None] * len(parent)
    for run in runs:
        root = parent[run[0]]
        items = [item(extra[s]) for s in run]
        if len(run) == 1:
            sums[run[0]] = Sum(items[0] if root < 0 else sums[root].tensor() + items[0])
            continue
        shape = items[0].shape
        if any(x.shape != shape for x in items):
            shape = broadcast_shapes(*(x.shape for x in items))
            items = [x if x.shape == shape else x.expand(shape) for x in items]
        stacked = torch.stack(items).cumsum(0)
        if root >= 0:
            stacked = stacked + sums[root].tensor()
        for row, s in enumerate(run):
            sums[s] = Sum(stacked, row)
    return [sums[i] if i >= 0 else None for i in requested]


def _runs(parent: List[int]) -> List[List[int]]:
    """Sets (ids, parents first) grouped into runs that extend one another: a set joins its
    parent's run when the parent ends it (each set is extended by at most one child)."""
    runs: List[List[int]] = []
    run_of: List[int] = []
    for s, p in enumerate(parent):
        if p >= 0 and runs[run_of[p]][-1] == p:
            runs[run_of[p]].append(s)
        else:
            runs.append([s])
        run_of.append(len(runs) - 1)
    return runs
