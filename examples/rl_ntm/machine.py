"""The RL-NTM: an LSTM controller on an input tape, a memory tape and an output tape, whose heads
move by sampled actions — one ``sg.Graph`` per batch, three score-function nodes per step.

Each step (the original's order): read the cells around the input head (one-hot symbols) and
the memory head (vectors); run the LSTM on them and on the previous moves; sample the input
move, the memory move (each −1, 0, +1) and whether to write an output symbol; write the memory
cell under its head with a gate, m ← f·m + w (f = σ(·), w = tanh(·)); predict the next output
symbol from the state (and, with direct access, from gated copies of the cells read); if the
model writes, its cost is −log p(target symbol) and the output head advances; then the heads
move (both tapes are circular; in ``forward_reverse`` the input head cannot move back).
Writing is forbidden once every target symbol is written and forced when the steps left equal
the symbols left, so every target symbol is scored exactly once.

Memory that costs the same whatever its size: ``memory.py``.

Every tensor carries any leading dimensions left of the batch (``[..., B]``): enumerated nodes
(``scgrad.testing``) lay their support there, which is how the exact gradient over every
action sequence is computed for the gradient check.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical

import scgrad as sg
from scgrad.baselines import Learned
from scgrad.estimators import ScoreFunction

from memory import initial_cells, make_tape
from tasks import SYMBOLS, Batch

MOVES = (-1, 0, 1)
_STEP = torch.tensor(MOVES)     # action index -> head step
_NO_BACK = torch.tensor([True, False, False])  # the input move −1, masked in forward_reverse


def one_hot(index: torch.Tensor, n: int) -> torch.Tensor:
    """``index`` [...] as float one-hot rows [..., n]: a lookup in the identity (``F.one_hot``
    reads its input's range back to the host first, a sync per call)."""
    return torch.eye(n)[index]


@dataclass
class MachineSettings:
    """The machine's shape.

    Attributes:
        hidden: LSTM units of the controller (the original's experiments: 25).
        cells: memory cells N (circular).
        width: memory cell width (the number of symbols with direct access, whose gated paths
            add cells to the symbol logits).
        read_range: cells read on each side of a head (the original: 2, i.e. 5 cells).
        direct_access: gated paths from the cells read straight into the symbol logits and the
            memory write (the original's ``super_direct``).
        action_scale: the action logits are scaled by this (the original: 0.01–0.03), so the
            policy starts near uniform and moves slowly.
        forward_only: the input head cannot move back (``forward_reverse``).
        memory: ``sampled`` (the RL-NTM: a head at one cell, moved by sampled actions) or
            ``soft`` (an NTM-style head: attention weights over all N cells, shifted by the
            move probabilities, reading and writing every cell in proportion).
    """

    hidden: int = 25
    cells: int = 64
    width: int = SYMBOLS
    read_range: int = 2
    direct_access: bool = False
    action_scale: float = 0.03
    forward_only: bool = False
    memory: str = "sampled"


class Controller(nn.Module):
    """The LSTM controller and its heads; and the baseline, which predicts the cost to go from
    the controller's state before the step's actions (detached) and from an LSTM that has read
    the whole input tape backwards. (The original ran a second LSTM for the baseline; reading
    the controller's state instead halves the work, and stays a valid baseline: the state does
    not depend on the actions it baselines.)"""

    def __init__(self, s: MachineSettings) -> None:
        super().__init__()
        self.s = s
        reads = 2 * s.read_range + 1
        self.inputs = reads * SYMBOLS + reads * s.width + 2 * len(MOVES) + 2
        self.cell = nn.LSTMCell(self.inputs, s.hidden)
        self.moves = nn.Linear(s.hidden, 2 * len(MOVES) + 2)       # input move, memory move, write or not
        self.symbol = nn.Linear(s.hidden, SYMBOLS)
        self.gate, self.content = nn.Linear(s.hidden, s.width), nn.Linear(s.hidden, s.width)
        if s.direct_access:
            self.read_gates = nn.Linear(s.hidden, reads * 2)          # a scalar gate per cell read
            self.write_gates = nn.Linear(s.hidden, reads)             # input cells into the memory write
        self.tape_reader = nn.LSTM(SYMBOLS, s.hidden)
        self.baseline_head = nn.Sequential(nn.Linear(2 * s.hidden, s.hidden), nn.ReLU(), nn.Linear(s.hidden, 1))


@dataclass
class Episode:
    """What a batch's run produced.

    Attributes:
        costs: per step, −log p(target) where a symbol was written, else 0: T tensors [..., B].
        wrong: per-step count of written symbols whose argmax was wrong: T tensors [..., B].
        written: per step, 1 where a symbol was written: T tensors [..., B].
    """

    costs: List[torch.Tensor]
    wrong: List[torch.Tensor]
    written: List[torch.Tensor]

    def errors(self) -> Tuple[int, int]:
        """(wrong symbols, written symbols), summed over steps and examples."""
        return int(sum(w.sum() for w in self.wrong)), int(sum(w.sum() for w in self.written))


def around(position: torch.Tensor, reach: int, length: int) -> torch.Tensor:
    """Positions position − reach … position + reach, wrapped: [..., B, 2·reach + 1]."""
    return (position.unsqueeze(-1) + torch.arange(-reach, reach + 1)) % length


class SampledHead:
    """The RL-NTM's memory head: at one cell, moved −1/0/+1 by a sampled action."""

    def __init__(self, s: MachineSettings, batch: int, steps: int, exact: bool) -> None:
        self.s, self.tape = s, make_tape(batch, s.cells, s.width, steps, exact)
        self.position = torch.zeros(batch, dtype=torch.long)

    def read(self) -> torch.Tensor:
        """The cells around the head: [..., B, 2·reach + 1, width]."""
        return self.tape.read(around(self.position, self.s.read_range, self.s.cells))

    def write(self, value: torch.Tensor) -> None:
        """Make ``value`` [..., B, width] the cell under the head."""
        self.tape.write(self.position, value)

    def choose(self, logits: torch.Tensor, act) -> torch.Tensor:
        """The move [..., B], sampled (``act``: a score-function node)."""
        return act(logits)

    def move(self, choice: torch.Tensor) -> None:
        self.position = self.position + _STEP[choice]

    @staticmethod
    def encode(choice: torch.Tensor) -> torch.Tensor:
        """The move as the controller's next input: one-hot [..., B, 3]."""
        return one_hot(choice, 3)


class SoftHead:
    """An NTM-style head for comparison: weights over all N cells (a one-hot start), reads and
    writes in proportion, shifted by the move probabilities — differentiable, no sampling, and
    O(N) per step."""

    def __init__(self, s: MachineSettings, batch: int, steps: int, exact: bool) -> None:
        self.s = s
        self.memory = initial_cells(s.cells, s.width).expand(batch, -1, -1)     # [B, N, width]
        self.weights = F.one_hot(torch.zeros(batch, dtype=torch.long), s.cells).float()  # [B, N]

    def read(self) -> torch.Tensor:
        shifted = torch.stack([self.weights.roll(k, -1) for k in range(self.s.read_range, -self.s.read_range - 1, -1)], -2)
        return shifted @ self.memory                                             # [B, R, width]

    def write(self, value: torch.Tensor) -> None:
        w = self.weights.unsqueeze(-1)
        self.memory = self.memory * (1 - w) + w * value.unsqueeze(-2)

    def choose(self, logits: torch.Tensor, act) -> torch.Tensor:
        """The move probabilities P(−1), P(0), P(+1) [B, 3] (nothing sampled)."""
        return torch.softmax(logits, -1)

    def move(self, p: torch.Tensor) -> None:
        self.weights = sum(p[..., i:i + 1] * self.weights.roll(step, -1) for i, step in enumerate(MOVES))

    @staticmethod
    def encode(p: torch.Tensor) -> torch.Tensor:
        return p


def run(model: Controller, batch: Batch, graph: Optional[sg.Graph], greedy: bool = False,
        exact: bool = False) -> Episode:
    """Run the machine on a batch for its step budget; with ``graph``, record every sampled
    action as a score-function node with the learned baseline (names ``in{t}``, ``mem{t}``,
    ``out{t}``) and every step's cost; without, sample (or, ``greedy``, take the most likely
    actions) for evaluation. ``exact``: the graph enumerates the actions (leading dims appear),
    so the general memory tape is used instead of the fast one."""
    s = model.s
    B, width = len(batch), batch.tape.shape[1]
    rows = torch.arange(B)
    tape_onehot = F.one_hot(batch.tape, SYMBOLS).float()                # [B, L, S]
    steps = int(batch.steps.max())
    head = (SampledHead if s.memory == "sampled" else SoftHead)(s, B, steps, exact)
    h = c = torch.zeros(B, s.hidden)
    _, (reader, _) = model.tape_reader(tape_onehot.flip(1).transpose(0, 1))
    in_pos = out_pos = torch.zeros(B, dtype=torch.long)
    previous = torch.zeros(B, 2 * len(MOVES) + 2)
    episode = Episode([], [], [])
    for t in range(steps):
        symbols = tape_onehot[rows[:, None], around(in_pos, s.read_range, width)]    # [..., B, R, S]
        cells = head.read()                                                         # [..., B, R, width]
        lead = torch.broadcast_shapes(symbols.shape[:-2], cells.shape[:-2], previous.shape[:-1])  # [..., B]
        x = torch.cat([symbols.flatten(-2).expand(*lead, -1), cells.flatten(-2).expand(*lead, -1),
                       previous.expand(*lead, -1)], -1)
        h, c = _cell(model.cell, x, h, c)
        logits = model.moves(h) * s.action_scale
        in_logits, mem_logits, out_logits = logits.split([3, 3, 2], -1)
        if s.forward_only:
            in_logits = in_logits.masked_fill(_NO_BACK, -torch.inf)
        left = batch.lengths - out_pos                                             # symbols still to write
        steps_left = batch.steps - t
        must, cannot = (left >= steps_left) & (left > 0), left <= 0                  # forced / forbidden writes
        out_logits = out_logits.masked_fill(torch.stack([must, cannot], -1), -torch.inf)
        features = torch.cat([h, reader[0].expand(*h.shape[:-1], -1)], -1).detach()
        baseline = _Shared(model.baseline_head(features)) if graph is not None else None  # one prediction, 3 nodes
        in_move = _act(graph, f"in{t}", in_logits, baseline, greedy)
        mem_move = head.choose(mem_logits, lambda lg: _act(graph, f"mem{t}", lg, baseline, greedy))
        write = _act(graph, f"out{t}", out_logits, baseline, greedy)
        # memory write at the head, then the prediction from the state and the cells
        gate, content = torch.sigmoid(model.gate(h)), torch.tanh(model.content(h))
        here = cells[..., s.read_range, :]                                          # the cell under the head
        new = gate * here + content
        if s.direct_access:
            new = new + (torch.sigmoid(model.write_gates(h)).unsqueeze(-1) * symbols).sum(-2)
        head.write(new)
        symbol_logits = model.symbol(h)
        if s.direct_access:
            after = head.read()
            gates = torch.sigmoid(model.read_gates(h)).unsqueeze(-1)
            reads = 2 * s.read_range + 1
            symbol_logits = symbol_logits + (gates[..., :reads, :] * after).sum(-2) \
                + (gates[..., reads:, :] * symbols).sum(-2)
        scored = (write == 1) & (left > 0)
        target = batch.target[rows, out_pos.clamp(max=batch.target.shape[1] - 1)]
        shape = torch.broadcast_shapes(scored.shape, target.shape, symbol_logits.shape[:-1])
        nll = F.cross_entropy(symbol_logits.expand(*shape, SYMBOLS).reshape(-1, SYMBOLS), target.expand(shape).reshape(-1),
                              reduction="none").reshape(shape)
        cost = nll * scored
        if graph is not None:
            graph.cost(f"nll{t}", cost)
        episode.costs.append(cost)
        episode.wrong.append(((symbol_logits.argmax(-1) != target) & scored).detach().expand(shape))
        episode.written.append(scored.detach().expand(shape))
        # move the heads
        step_in = _STEP[in_move]
        in_pos = (in_pos + step_in) % width
        head.move(mem_move)
        out_pos = out_pos + scored.long()
        moves = [one_hot(in_move, 3), head.encode(mem_move), one_hot(write, 2)]
        lead = torch.broadcast_shapes(*(m.shape[:-1] for m in moves))
        previous = torch.cat([m.expand(*lead, m.shape[-1]).float() for m in moves], -1)
    return episode


def _cell(cell: nn.LSTMCell, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """An LSTM cell step for inputs with any leading dims [..., in]."""
    lead = x.shape[:-1]
    h, c = h.expand(*lead, -1), c.expand(*lead, -1)
    h2, c2 = cell(x.reshape(-1, x.shape[-1]), (h.reshape(-1, h.shape[-1]), c.reshape(-1, c.shape[-1])))
    return h2.reshape(*lead, -1), c2.reshape(*lead, -1)


class _Shared:
    """The baseline's prediction of a step [..., B, 1], computed once and handed to each of the
    step's three nodes as a ``Learned`` baseline (each regresses it onto its own credit)."""

    def __init__(self, prediction: torch.Tensor) -> None:
        self.prediction = prediction

    def __call__(self, _inputs: object) -> torch.Tensor:
        return self.prediction


def _act(graph: Optional[sg.Graph], name: str, logits: torch.Tensor, baseline: Optional[_Shared],
         greedy: bool) -> torch.Tensor:
    """A sampled (or greedy) action [..., B]: a score-function node with the learned baseline."""
    dist = Categorical(logits=logits, validate_args=False)  # built by us, valid: skip the host syncs of the checks
    if graph is None:
        return logits.argmax(-1) if greedy else dist.sample()
    return graph.sample(name, dist, estimator=ScoreFunction(baseline=Learned(baseline, None)))
