"""The RL-NTM tasks (Zaremba & Sutskever 2015), their curriculum and held-out test lengths.

Alphabet: the original's 35 symbols, here 0-based: 0 is the end-of-output marker (the
original's '1'), 1 and 2 the repeat counts '2' and '3', 24 the blank, 27 the '.'; the other
symbols are plain characters. Each example is an input tape (symbol ids) and a target: the
symbols the model must write, in order, each scored once.

- ``copy``: the target is the input followed by the end marker.
- ``duplicated_input``: each input symbol appears 3 times in a row on the tape, followed by a
  blank; the target is each symbol once, then the end marker.
- ``reverse``: the target is the input reversed, then the end marker (the input head may move
  both ways).
- ``forward_reverse``: ``reverse`` with an input head that can never move back, so the symbols
  must be stored in memory and read back.
- ``repeat_copy``: the first cell holds the repeat count ('2' or '3'), then a phrase ending in
  '.'; the target is the phrase repeated that many times.

Curriculum (the original's ``train_curriculum0``): a task has difficulty levels (a length, and
for ``repeat_copy`` a repeat count); each example of a batch is drawn at the current level plus
a geometric extra (P(k) = 2^−(k+1)), except that 10% are uniform over all levels and 25% uniform
over the levels up to that one. The held-out test is a batch at a longer length than any level.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import torch

SYMBOLS = 35
END, TWO, THREE, BLANK, DOT = 0, 1, 2, 24, 27
PLAIN = [s for s in range(SYMBOLS) if s not in (END, TWO, THREE, BLANK, DOT)]  # 30 characters


@dataclass
class Batch:
    """A batch of B examples, padded.

    Attributes:
        tape: input symbols [B, L_in] (blank-padded).
        target: symbols to write [B, L_out] (END-padded; positions past ``lengths`` unscored).
        lengths: number of target symbols per example [B].
        steps: machine steps per example [B] (the budget to read and write it all).
        levels: each example's curriculum level [B] (0-based; −1 for a test example).
    """

    tape: torch.Tensor
    target: torch.Tensor
    lengths: torch.Tensor
    steps: torch.Tensor
    levels: torch.Tensor

    def __len__(self) -> int:
        return len(self.tape)


@dataclass(frozen=True)
class Level:
    """A difficulty: the phrase length, and (repeat_copy) the repeat count."""

    length: int
    repeats: int = 1


def _plain(n: int, generator: torch.Generator) -> List[int]:
    return [PLAIN[i] for i in torch.randint(len(PLAIN), (n,), generator=generator).tolist()]


def copy_example(level: Level, g: torch.Generator) -> Tuple[List[int], List[int]]:
    phrase = _plain(level.length, g)
    return phrase, phrase + [END]


def duplicated_input_example(level: Level, g: torch.Generator) -> Tuple[List[int], List[int]]:
    phrase = _plain(level.length, g)
    return [s for s in phrase for _ in range(3)] + [BLANK], phrase + [END]


def reverse_example(level: Level, g: torch.Generator) -> Tuple[List[int], List[int]]:
    phrase = _plain(level.length, g)
    return phrase, phrase[::-1] + [END]


def repeat_copy_example(level: Level, g: torch.Generator) -> Tuple[List[int], List[int]]:
    phrase = _plain(level.length - 1, g) + [DOT]
    return [TWO if level.repeats == 2 else THREE] + phrase, phrase * level.repeats


@dataclass(frozen=True)
class Task:
    """A task: its example maker, curriculum levels, held-out test level, and interface rules.

    Attributes:
        name: the command line's name.
        example: ``example(level, generator) -> (tape, target)`` as lists of symbol ids.
        levels: the curriculum, easiest first.
        test: the held-out level (longer than every curriculum level).
        forward_only: the input head cannot move back (``forward_reverse``).
        slack: extra machine steps beyond reading the tape and writing the target.
    """

    name: str
    example: Callable[[Level, torch.Generator], Tuple[List[int], List[int]]]
    levels: Tuple[Level, ...]
    test: Level
    forward_only: bool = False
    slack: int = 2

    def steps(self, tape: List[int], target: List[int]) -> int:
        """The step budget of an example: time to read the tape and write the target."""
        return len(tape) + len(target) + self.slack


def _lengths(n: int) -> Tuple[Level, ...]:
    return tuple(Level(k) for k in range(1, n + 1))


TASKS: Dict[str, Task] = {
    "copy": Task("copy", copy_example, _lengths(20), Level(50)),
    "duplicated_input": Task("duplicated_input", duplicated_input_example, _lengths(20), Level(50)),
    "reverse": Task("reverse", reverse_example, _lengths(20), Level(50)),
    "forward_reverse": Task("forward_reverse", reverse_example, _lengths(20), Level(50), forward_only=True),
    "repeat_copy": Task("repeat_copy", repeat_copy_example,
                        tuple(Level(k, 2) for k in range(2, 10)) + tuple(Level(k, 3) for k in range(2, 10)),
                        Level(30, 3)),
}


def make_batch(task: Task, levels: List[int], generator: torch.Generator, test: bool = False) -> Batch:
    """One example per entry of ``levels`` (indices into ``task.levels``; ignored with ``test``)."""
    tapes, targets, steps = [], [], []
    for index in levels:
        tape, target = task.example(task.test if test else task.levels[index], generator)
        tapes.append(tape)
        targets.append(target)
        steps.append(task.steps(tape, target))
    width, out = max(map(len, tapes)), max(map(len, targets))
    tape = torch.full((len(levels), width), BLANK, dtype=torch.long)
    target = torch.full((len(levels), out), END, dtype=torch.long)
    for b, (t, y) in enumerate(zip(tapes, targets)):
        tape[b, :len(t)] = torch.tensor(t)
        target[b, :len(y)] = torch.tensor(y)
    return Batch(tape, target, torch.tensor(list(map(len, targets))), torch.tensor(steps),
                 torch.tensor([-1] * len(levels) if test else levels))


def curriculum_levels(task: Task, level: int, batch: int, generator: torch.Generator) -> List[int]:
    """Each example's level around the current one (see the module docstring): ``batch`` indices."""
    top = len(task.levels) - 1
    out = []
    u = torch.rand(batch, 2, generator=generator).tolist()
    for b in range(batch):
        extra = 0
        while torch.rand((), generator=generator).item() < 0.5:
            extra += 1
        near = min(level + extra, top)
        if u[b][0] < 0.1:
            out.append(int(torch.randint(top + 1, (), generator=generator)))
        elif u[b][1] < 0.25:
            out.append(int(torch.randint(near + 1, (), generator=generator)))
        else:
            out.append(near)
    return out
