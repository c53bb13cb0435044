"""Data-flow tracking: which stochastic nodes each tensor was computed from.

While a :class:`~scgrad.Graph` is entered (``with g:``), a :class:`Provenance` mode sees every
torch function call (PyTorch's documented, scoped ``TorchFunctionMode`` hook: no monkey-patching,
no tensor subclass). Each output is tagged with the union of the tags of its inputs, so a
dependency is found whatever the route: arithmetic, a discrete sample used as an index, a
sample that feeds another distribution's parameters, in-place writes (also through views: an
in-place write tags the whole storage it writes into).

Values that leave torch (``.item()``, ``.numpy()``, ``.tolist()``, ``float()``, ``complex()``,
``str()``/``repr()``/``format()``, ``__dlpack__`` (``numpy.from_dlpack``), the raw storage
(``untyped_storage()``, which pickling and ``torch.save`` read)) cannot be followed. To stay
safe, the graph credits every node and cost recorded after such an escape to the nodes whose
values escaped (:attr:`Provenance.escaped`): a reward computed by an environment from
``action.numpy()`` is credited to the action. Crediting too many nodes keeps the gradient
unbiased; crediting too few would bias it. Python control flow on a sample, functorch
transforms (``torch.vmap``), ``torch.utils.dlpack.to_dlpack`` (not dispatched through the mode)
and torch operations run in another thread (torch's mode stack is per thread) are invisible:
declare such dependencies with ``depends_on``.
"""
from __future__ import annotations

import weakref
from typing import Any, Dict, FrozenSet, Tuple

import torch
from torch.overrides import TorchFunctionMode, _get_current_function_mode_stack, _pop_mode, _push_mode

Tags = FrozenSet[str]
NO_TAGS: Tags = frozenset()
_FIRST_SWEEP = 4096  # entries before the first sweep of dead ones

# Tensor methods through which a value leaves torch's view. ``bool(t)`` is not among them: it
# is control flow (invisible anyway), and torch.distributions' argument validation calls it on
# every parameter, which would credit every later constant to every node. Printing counts
# (``__repr__`` serves ``str`` too): a number parsed back from a string is a value like any
# other. ``untyped_storage``/``storage`` hand out the raw bytes (``storage().tolist()``; pickling
# and ``torch.save`` go through them); counting the call itself over-credits, which is safe.
# The tracker's own storage lookups avoid these calls (see ``_storage_key``).
_ESCAPES = frozenset(
    {"item", "tolist", "numpy", "__array__", "__float__", "__int__", "__index__", "__complex__",
     "__format__", "__repr__", "__str__", "__dlpack__", "untyped_storage", "storage", "_typed_storage"}
)


# Python's augmented assignments (``x += y``): they write into ``x``.
_INPLACE_DUNDERS = frozenset(
    f"__i{op}__" for op in ("add", "sub", "mul", "matmul", "truediv", "floordiv", "mod", "pow",
                             "and", "or", "xor", "lshift", "rshift")
) | {"__setitem__"}


def _is_inplace(name: str) -> bool:
    """``add_``, ``__setitem__``, ``__iadd__``: calls that write into their first argument."""
    if name.startswith("__"):
        return name in _INPLACE_DUNDERS
    return name.endswith("_")


class Provenance(TorchFunctionMode):
    """Tags tensors with the names of the stochastic nodes they were computed from.

    Tags live in a dict keyed by ``id(tensor)``, each entry with a weak reference to its tensor:
    an id can be reused once its tensor is freed, so an entry counts only while its reference
    still points at the tensor looked up. The references have no callbacks: a callback would
    run Python code for every tagged tensor freed, and autograd frees most of them during
    ``backward()`` (measured: 5 ms of a 40 ms backward over a thousand steps). Dead entries are
    swept instead when the dict has doubled since the last sweep (amortised O(1) per tag).
    Lookups by id keep the per-call cost to a few hundred nanoseconds on the path every torch
    call takes.

    In-place writes also tag the storage written into (keyed by its address), so views of it,
    earlier or later, carry the tags. A freed address that is reused can only add tags:
    over-crediting, which is safe.
    """

    def __init__(self) -> None:
        super().__init__()
        self._tags: Dict[int, Tuple[weakref.ref, Tags]] = {}
        self._sweep_at = _FIRST_SWEEP
        self._storage_tags: Dict[int, Tags] = {}
        #: Tags of every tensor whose value left torch (``.item()``, ``.numpy()``, ...).
        self.escaped: Tags = NO_TAGS

    def of(self, *values: Any) -> Tags:
        """Union of the tags of the tensors among ``values`` (and one level of lists in them)."""
        found = NO_TAGS
        tags = self._tags
        for value in values:
            if isinstance(value, torch.Tensor):
                entry = tags.get(id(value))
                if entry is not None and entry[0]() is value:
                    found = found | entry[1]
            elif isinstance(value, (list, tuple)):  # torch.cat([a, b]), torch.stack(...)
                for inner in value:
                    entry = tags.get(id(inner)) if isinstance(inner, torch.Tensor) else None
                    if entry is not None and entry[0]() is inner:
                        found = found | entry[1]
        if self._storage_tags:
            found = found | self._of_storage(values)
        return found

    def _of_storage(self, values: Tuple[Any, ...]) -> Tags:
        found = NO_TAGS
        for value in values:
            if isinstance(value, torch.Tensor):
                found = found | self._storage_tags.get(_storage_key(value), NO_TAGS)
        return found

    def _tag_storage(self, tensor: torch.Tensor, tags: Tags) -> None:
        key = _storage_key(tensor)
        if key:
            self._storage_tags[key] = self._storage_tags.get(key, NO_TAGS) | tags

    def tag(self, tensor: torch.Tensor, tags: Tags) -> None:
        """Add ``tags`` to ``tensor``'s tags."""
        if tags:
            entry = self._tags.get(id(tensor))
            if entry is not None and entry[0]() is tensor:
                self._tags[id(tensor)] = (entry[0], entry[1] | tags)
            else:
                self.replace(tensor, tags)

    def replace(self, tensor: torch.Tensor, tags: Tags) -> None:
        """Set ``tensor``'s tags to exactly ``tags`` (a node's value is tagged with the node only)."""
        key = id(tensor)
        entry = self._tags.get(key)
        ref = entry[0] if entry is not None and entry[0]() is tensor else weakref.ref(tensor)
        self._tags[key] = (ref, tags)
        if len(self._tags) > self._sweep_at:
            self._sweep()

    def _sweep(self) -> None:
        """Drop the entries of freed tensors; sweep next when the dict has doubled."""
        self._tags = {key: entry for key, entry in self._tags.items() if entry[0]() is not None}
        self._sweep_at = max(_FIRST_SWEEP, 2 * len(self._tags))

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        if not self.leave():
            raise RuntimeError("Provenance: this mode is not on this thread's torch function mode stack")

    def leave(self) -> bool:
        """Take this mode off this thread's torch function mode stack, wherever it is on it.

        ``TorchFunctionMode.__exit__`` pops the innermost mode, whichever it is: when two
        graphs' ``with`` blocks interleave (a generator's graph exits while a graph entered
        after it is open), that is the other graph's mode, whose tracking would stop silently.
        The modes above this one are put back in their order, so both keep tracking. Uses the
        helpers ``TorchFunctionMode`` itself is built on (torch has no public call for this).

        Returns:
            False, changing nothing, if this mode is not on this thread's stack.
        """
        stack = _get_current_function_mode_stack()
        if not any(mode is self for mode in stack):
            return False
        above = []
        while True:
            mode = _pop_mode()
            if mode is self:
                break
            above.append(mode)
        for mode in reversed(above):
            _push_mode(mode)
        return True

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **kwargs) if kwargs else func(*args)
        if not self._tags:  # nothing sampled yet (e.g. the policy's forward pass)
            return out
        found = self.of(*args, *kwargs.values()) if kwargs else self.of(*args)
        if not found:  # the common case: nothing sampled flows in
            return out
        name = getattr(func, "__name__", "")
        if name in _ESCAPES:  # .item(), .numpy(), .tolist(): the value leaves torch
            self.escaped = self.escaped | found
            return out
        if isinstance(out, torch.Tensor):
            self.tag(out, found)
        elif isinstance(out, (list, tuple)):
            for tensor in out:
                if isinstance(tensor, torch.Tensor):
                    self.tag(tensor, found)
        if args and isinstance(args[0], torch.Tensor) and _is_inplace(name):
            self.tag(args[0], found)
            self._tag_storage(args[0], found)
        return out


def _storage_key(tensor: torch.Tensor) -> int:
    """Address of the tensor's storage (0 for tensors without data, which are never keyed).

    Computed from the data pointer and the storage offset rather than ``untyped_storage()``:
    that call counts as an escape, and the graph's own bookkeeping runs this outside the
    mode's handler, where the call would be seen.
    """
    try:
        return tensor.data_ptr() - tensor.storage_offset() * tensor.element_size()
    except (RuntimeError, NotImplementedError):  # e.g. sparse or meta tensors
        return 0
