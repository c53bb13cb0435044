"""Adam over flat parameter storage: one contiguous tensor per parameter group.

The networks of the RL algorithms are small (a few thousand to a few hundred thousand
weights in a dozen tensors) and take many cheap steps (PPO: 320 minibatch steps per 2048
environment steps). There the cost of a step is per-tensor work — Python loops in the
optimiser, one kernel launch per tensor to zero, clip and update gradients — not arithmetic.
Keeping each group's parameters in one tensor, and their gradients in another, turns all of
it into one tensor's worth: a PPO-sized minibatch step on two 64-64 networks took 1.45× as
long with ``torch.optim.Adam(fused=True)`` over the separate tensors and torch's gradient
clipping (``benchmarks/rl_parts.py``).
"""
from __future__ import annotations

from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn

from scgrad.rl import distributed


def flatten_parameters(modules: Sequence[nn.Module]) -> nn.Parameter:
    """Move every parameter of ``modules`` into one contiguous tensor; returns it.

    Each module parameter is replaced by an ``nn.Parameter`` that is a view of the flat
    tensor, with a ``.grad`` that is a view of the flat tensor's ``.grad``: backward
    accumulates into those views in place, so the flat gradient is filled without a copy, and
    an optimiser stepping the flat tensor updates the modules' weights in place. Values are
    kept; a parameter shared between modules stays shared. ``load_state_dict`` keeps working
    (it copies into the parameters). Replace no parameter afterwards, and zero gradients in
    place (``FlatAdam.zero_grad`` does), never by setting them to ``None``.

    Returns:
        The flat parameter [P] (P = total number of elements), its ``.grad`` zeros.
    """
    slots = list(_parameter_slots(modules))
    unique: Dict[int, nn.Parameter] = {id(p): p for _, _, p in slots}
    total = sum(p.numel() for p in unique.values())
    first = next(iter(unique.values()))
    flat = nn.Parameter(torch.zeros(total, dtype=first.dtype, device=first.device))
    flat.grad = torch.zeros_like(flat)
    views: Dict[int, nn.Parameter] = {}
    offset = 0
    for key, old in unique.items():
        n = old.numel()
        view = nn.Parameter(flat.data[offset:offset + n].view_as(old))
        with torch.no_grad():
            view.copy_(old)
        view.grad = flat.grad[offset:offset + n].view_as(old)
        views[key], offset = view, offset + n
    for module, name, old in slots:
        setattr(module, name, views[id(old)])
    return flat


def _parameter_slots(modules: Sequence[nn.Module]) -> Iterator[Tuple[nn.Module, str, nn.Parameter]]:
    """(owning module, attribute name, parameter) for every parameter of ``modules``."""
    for module in modules:
        for owner in module.modules():
            for name, param in owner.named_parameters(recurse=False):
                yield owner, name, param


class FlatAdam(torch.optim.Adam):
    """``torch.optim.Adam`` on flattened parameters: one group per ``(module, lr)`` pair, its
    parameters in one tensor (``flatten_parameters``).

    Behaves as Adam over the modules' parameters, and is a ``torch.optim.Adam`` (learning
    rates in ``param_groups`` with ``initial_lr`` for schedules; ``state_dict`` /
    ``load_state_dict``; ``torch.nn.utils.clip_grad_norm_`` over the ``param_groups``' params
    clips all the modules' gradients together). Two differences: constructing it rewires the
    modules' parameters (see ``flatten_parameters``), and ``zero_grad`` always zeroes in place,
    so every group takes a step at every ``step`` (a group whose loss was left out steps on a
    zero gradient, which moves it by its momentum): give parts that must sometimes stand still
    an optimiser of their own. Uses the fused kernel where torch has one for the device, else
    the foreach one.

    Args:
        groups: ``(module, learning rate)`` pairs.
        **kwargs: further ``torch.optim.Adam`` arguments (betas, eps, weight_decay, ...).
    """

    def __init__(self, groups: Sequence[Tuple[nn.Module, float]], **kwargs) -> None:
        if not groups:
            raise ValueError("FlatAdam needs at least one (module, learning rate) pair")
        flats = [(flatten_parameters([module]), float(lr)) for module, lr in groups]

        def param_groups() -> List[dict]:  # fresh dicts: Optimizer.__init__ writes into them
            return [{"params": [flat], "lr": lr, "initial_lr": lr} for flat, lr in flats]

        try:
            super().__init__(param_groups(), lr=flats[0][1], fused=True, **kwargs)
        except (RuntimeError, ValueError, TypeError):  # a torch or device without fused Adam
            super().__init__(param_groups(), lr=flats[0][1], foreach=True, **kwargs)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the flat gradients in place; ``set_to_none`` is ignored (the modules'
        gradients are views of the flat ones and must stay so)."""
        for group in self.param_groups:
            for flat in group["params"]:
                flat.grad.zero_()


def clip_grad_norm_(parameters: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale the gradients of ``parameters`` together so that their joint 2-norm is at most
    ``max_norm``; returns the norm before clipping (0-dim).

    The same arithmetic as ``torch.nn.utils.clip_grad_norm_`` (coefficient
    max_norm / (norm + 1e-6), capped at 1), in four foreach calls and no host sync: for the few
    flat tensors of ``FlatAdam`` torch's took 2.1× as long per call (``benchmarks/rl_parts.py``).
    Parameters without a gradient are skipped.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, (max_norm / (total + 1e-6)).clamp_(max=1.0))
    return total


def average_gradients(optimizers: Sequence[torch.optim.Optimizer], *scalars: float | torch.Tensor) -> List[float]:
    """Average the gradients of the optimisers' parameters over the processes of a
    data-parallel run, in one all-reduce that also carries ``scalars``; returns their means
    (the scalars themselves in a single process, where nothing is exchanged)."""
    params = [p for optimizer in optimizers for group in optimizer.param_groups for p in group["params"]]
    return distributed.average_([p.grad for p in params if p.grad is not None], *scalars)


def step(optimizers: Sequence[torch.optim.Optimizer], max_grad_norm: Optional[float], averaged: bool = False) -> None:
    """Average the gradients over the processes of a data-parallel run (one all-reduce; nothing
    in a single process; skipped if ``averaged`` by ``average_gradients`` already), clip the
    gradient norm of all the optimisers' parameters together (if asked, as SB3 does) and step
    each."""
    params = [p for optimizer in optimizers for group in optimizer.param_groups for p in group["params"]]
    if not averaged:
        distributed.average_([p.grad for p in params if p.grad is not None])
    if max_grad_norm is not None:
        clip_grad_norm_(params, max_grad_norm)
    for optimizer in optimizers:
        optimizer.step()
