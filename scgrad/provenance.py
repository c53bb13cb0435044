"""Data-flow tracking: which stochastic nodes each tensor was computed from.

While a :class:`~scgrad.Graph` is entered (``with g:``), a :class:`Provenance` mode sees every
torch function call (PyTorch's documented, scoped ``TorchFunctionMode`` hook: no monkey-patching,
no tensor subclass). Each output is tagged with the union of the tags of its inputs, so a
dependency is found whatever the route: arithmetic, a discrete sample used as an index, a
sample that feeds another distribution's parameters, in-place writes.

Values that leave torch (``.item()``, ``.numpy()``, ``.tolist()``) cannot be
followed. To stay safe, the tags of every tensor that escaped are attached to tensors later
built from Python or NumPy data (``torch.tensor``, ``torch.as_tensor``, ``torch.from_numpy``):
a reward computed by an environment from ``action.numpy()`` is credited to the action.
Crediting too many nodes keeps the gradient unbiased; crediting too few would bias it.
Python control flow on a sample is invisible: declare it with ``depends_on``.
"""
from __future__ import annotations

from typing import Any, Callable, FrozenSet, Iterable, Iterator

import torch
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakTensorKeyDictionary

Tags = FrozenSet[str]
NO_TAGS: Tags = frozenset()

# Tensor methods through which a value leaves torch's view. ``bool(t)`` is not among them: it
# is control flow (invisible anyway), and torch.distributions' argument validation calls it on
# every parameter, which would credit every later constant to every node.
_ESCAPES = frozenset(
    {"item", "tolist", "numpy", "__array__", "__float__", "__int__", "__index__"}
)
# Functions that build a tensor from Python or NumPy data (which may carry escaped values).
_FROM_DATA: frozenset[Callable[..., Any]] = frozenset(
    {torch.tensor, torch.as_tensor, torch.from_numpy, torch.asarray}
)


def _tensors(items: Iterable[Any]) -> Iterator[torch.Tensor]:
    """Tensors among ``items`` and one level of lists/tuples inside them (``torch.cat([a, b])``)."""
    for item in items:
        if isinstance(item, torch.Tensor):
            yield item
        elif isinstance(item, (list, tuple)):
            for inner in item:
                if isinstance(inner, torch.Tensor):
                    yield inner


def _is_inplace(name: str) -> bool:
    """``add_``, ``__setitem__``, ``__iadd__``: calls that write into their first argument."""
    if name.startswith("__"):
        return name == "__setitem__" or name.startswith("__i") and name not in ("__index__", "__int__")
    return name.endswith("_")


class Provenance(TorchFunctionMode):
    """Tags tensors with the names of the stochastic nodes they were computed from."""

    def __init__(self) -> None:
        super().__init__()
        self._tags: WeakTensorKeyDictionary = WeakTensorKeyDictionary()
        self.escaped: Tags = NO_TAGS

    def of(self, *values: Any) -> Tags:
        """Union of the tags of the tensors among ``values``."""
        found = NO_TAGS
        for tensor in _tensors(values):
            tags = self._tags.get(tensor)
            if tags:
                found = found | tags
        return found

    def tag(self, tensor: torch.Tensor, tags: Tags) -> None:
        """Add ``tags`` to ``tensor``'s tags."""
        if tags:
            self._tags[tensor] = self._tags.get(tensor, NO_TAGS) | tags

    def replace(self, tensor: torch.Tensor, tags: Tags) -> None:
        """Set ``tensor``'s tags to exactly ``tags`` (a node's value is tagged with the node only)."""
        self._tags[tensor] = tags

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        found = self.of(*args, *kwargs.values())
        name = getattr(func, "__name__", "")
        if name in _ESCAPES:
            self.escaped = self.escaped | found
            return out
        if func in _FROM_DATA:
            found = found | self.escaped
        if not found:
            return out
        if isinstance(out, torch.Tensor):
            self.tag(out, found)
        elif isinstance(out, (list, tuple)):
            for tensor in _tensors(out):
                self.tag(tensor, found)
        if args and isinstance(args[0], torch.Tensor) and _is_inplace(name):
            self.tag(args[0], found)
        return out
