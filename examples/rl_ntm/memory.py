"""Memory tapes written and read at sampled positions, at a cost independent of their size.

Each write is kept as the vector of the step that made it; an integer table (updated in place,
no gradient) records, per cell, which step wrote it last (−1: the cell's initial value). A read
gathers one vector per example and position. No operation touches all N cells, so a step costs
the same for N = 16 or 4,096 (``benchmarks/rl_ntm.py`` measures it).

Two implementations of the same maths:

- ``Tape``: the written vectors are stacked at each read — O(steps so far) per read, and any
  leading dimensions left of the batch (the points of enumerated nodes, for the exact gradient
  check) broadcast through it.
- ``FastTape`` (no leading dimensions; what training uses): the vectors live in one
  preallocated buffer, and two autograd functions route the gradients: a read adds its output's
  gradient into a gradient buffer at the (step, example) it gathered, and each write, whose
  backward autograd runs only after every later read's (the writes and reads hang on one chain
  of tokens), takes its step's row. O(1) in the steps so far; first derivatives only.
"""
from __future__ import annotations

from typing import List

import torch


def initial_cells(cells: int, width: int) -> torch.Tensor:
    """The tape's initial contents [N, width]: zeros, cell 0 all ones (the original's start mark)."""
    out = torch.zeros(cells, width)
    out[0] = 1.0
    return out


class Tape:
    """Memory for any leading dims: reads stack the written vectors (see the module docstring)."""

    def __init__(self, batch: int, cells: int, width: int, steps: int = 0) -> None:
        self.cells, self.width = cells, width
        self.last = torch.full((batch, cells), -1, dtype=torch.long)   # [..., B, N]
        self.writes: List[torch.Tensor] = []                            # step t: [..., B, width]
        self.initial = initial_cells(cells, width)

    def read(self, position: torch.Tensor) -> torch.Tensor:
        """The cells at ``position`` [..., B, K] (wrapped): [..., B, K, width]."""
        lead = position.shape[:-1]
        self._grow(lead)
        cell = position % self.cells
        step = self.last.gather(-1, cell)                               # [..., B, K]
        value = self.initial[cell]
        if self.writes:
            history = torch.stack([w.expand(*lead, self.width) for w in self.writes])  # [t, ..., B, width]
            flat = history.reshape(len(self.writes), -1, self.width)                 # [t, M, width]
            rows = torch.arange(flat.shape[1]).reshape(*lead, 1).expand_as(step)
            gathered = flat[step.clamp(min=0), rows]
            value = torch.where((step >= 0).unsqueeze(-1), gathered, value)
        return value

    def write(self, position: torch.Tensor, value: torch.Tensor) -> None:
        """Make ``value`` [..., B, width] the cell at ``position`` [..., B]."""
        self._grow(position.shape)
        self.writes.append(value)
        self.last.scatter_(-1, (position % self.cells).unsqueeze(-1), len(self.writes) - 1)

    def _grow(self, lead: torch.Size) -> None:
        if self.last.shape[:-1] != lead:  # new leading (enumerated) dims: one table per point
            self.last = self.last.expand(*lead, self.cells).clone()


class _Buffers:
    """The values written so far and their gradients: [steps, B, width] each."""

    def __init__(self, steps: int, batch: int, width: int) -> None:
        self.values = torch.zeros(steps, batch, width)
        self.grads = torch.zeros(steps, batch, width)


class _Write(torch.autograd.Function):
    @staticmethod
    def forward(ctx, value: torch.Tensor, token: torch.Tensor, buffers: _Buffers, step: int) -> torch.Tensor:
        buffers.values[step] = value.detach()
        ctx.buffers, ctx.step = buffers, step
        return token.detach().clone()  # the next token: every later read and write hangs on it

    @staticmethod
    def backward(ctx, token_grad: torch.Tensor):
        # runs after the backward of every read made later (they depend on this token)
        return ctx.buffers.grads[ctx.step].clone(), token_grad, None, None


class _Read(torch.autograd.Function):
    @staticmethod
    def forward(ctx, token: torch.Tensor, buffers: _Buffers, step: torch.Tensor, initial: torch.Tensor
                ) -> torch.Tensor:
        rows = torch.arange(step.shape[0]).unsqueeze(-1).expand_as(step)
        written = step >= 0
        value = torch.where(written.unsqueeze(-1), buffers.values[step.clamp(min=0), rows], initial)
        ctx.buffers, ctx.rows, ctx.step, ctx.written = buffers, rows, step, written
        return value

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        keep = ctx.written
        ctx.buffers.grads.index_put_((ctx.step[keep], ctx.rows[keep]), grad[keep], accumulate=True)
        return torch.zeros(()), None, None, None


class FastTape:
    """Memory for a batch without leading dims, O(1) per read and write (module docstring)."""

    def __init__(self, batch: int, cells: int, width: int, steps: int) -> None:
        self.cells, self.width = cells, width
        self.last = torch.full((batch, cells), -1, dtype=torch.long)
        self.buffers = _Buffers(steps, batch, width)
        self.initial = initial_cells(cells, width)
        self.token = torch.zeros((), requires_grad=True)
        self.step = 0

    def read(self, position: torch.Tensor) -> torch.Tensor:
        """The cells at ``position`` [B, K] (wrapped): [B, K, width]."""
        cell = position % self.cells
        return _Read.apply(self.token, self.buffers, self.last.gather(-1, cell), self.initial[cell])

    def write(self, position: torch.Tensor, value: torch.Tensor) -> None:
        """Make ``value`` [B, width] the cell at ``position`` [B]."""
        self.token = _Write.apply(value, self.token, self.buffers, self.step)
        self.last.scatter_(-1, (position % self.cells).unsqueeze(-1), self.step)
        self.step += 1


def make_tape(batch: int, cells: int, width: int, steps: int, exact: bool = False) -> "Tape | FastTape":
    """The fast tape, or (``exact``: leading dims will appear) the general one."""
    return (Tape if exact else FastTape)(batch, cells, width, steps)

