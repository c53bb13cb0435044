"""Train an RL-NTM on a task with the original's curriculum.

    python examples/rl_ntm/train.py --task copy --seed 0 --out runs/copy
    python examples/rl_ntm/train.py --task forward_reverse --direct-access true --out runs/fr
    python examples/rl_ntm/train.py --resume runs/copy                  # continue exactly

Each update: a batch whose examples' levels are drawn around the current curriculum level
(``tasks.curriculum_levels``), one graph (three score-function nodes and one cost per step),
one surrogate, SGD with momentum on the controller (gradient norm clipped to ``clip``) and the
baseline (``baseline_clip``), as the original. The level rises when the moving average (0.8) of
the per-symbol error on the batch's examples at the current level or above falls below
``threshold``, at most once per 100 updates. Every epoch (``updates_per_epoch`` updates) the
held-out test — ``test_examples`` examples at the task's longer test length, greedy actions —
is measured; a run is solved when it has passed the last level and its test error is below
``threshold``, and it stops there. The run folder, checkpoints, exact resume and progress.csv
are scgrad.rl's. The last line printed is
``solved=<true|false> updates=<int> test_error=<float> level=<int>``.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Optional, Tuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402
import tasks  # noqa: E402

import scgrad as sg  # noqa: E402
from scgrad.rl.errors import RLError  # noqa: E402
from scgrad.rl.run.checkpoint import seed_everything  # noqa: E402
from scgrad.rl.run.commandline import settings_from, settings_parser  # noqa: E402
from scgrad.rl.run.loop import Training, run  # noqa: E402

TEST_SEED = 20150504  # the held-out test batch of every run (the paper's arXiv date)


@dataclasses.dataclass
class Settings:
    """A run's settings (recorded in config.json; a resume must keep them, ``updates`` aside).

    Attributes:
        task: copy, duplicated_input, reverse, forward_reverse or repeat_copy.
        direct_access: gated paths from the cells read to the output and the memory write.
        updates: the most updates to run (the run stops earlier when solved).
        updates_per_epoch: updates per progress row, test and (every ``checkpoint_every``)
            checkpoint.
        batch: examples per update.
        lr: SGD's learning rate (momentum 0.9).
        clip: gradient-norm clip of the controller's parameters.
        baseline_clip: gradient-norm clip of the baseline's.
        threshold: per-symbol error below which the level rises, and the test error that
            counts as solved (the original: 0.2–0.25).
        hidden: LSTM units.
        cells: memory cells.
        action_scale: scale of the action logits.
        test_examples: held-out examples per test.
        seed: seeds the initialisation, the batches and the sampled actions.
        checkpoint_every: epochs between checkpoints (and after the last).
    """

    task: str = "copy"
    direct_access: bool = False
    updates: int = 20000
    updates_per_epoch: int = 50
    batch: int = 200
    lr: float = 0.05
    clip: float = 2.0
    baseline_clip: float = 5.0
    threshold: float = 0.2
    hidden: int = 25
    cells: int = 64
    action_scale: float = 0.03
    test_examples: int = 200
    seed: int = 0
    checkpoint_every: int = 4

    def __post_init__(self) -> None:
        if self.task not in tasks.TASKS:
            raise RLError(f"--task must be one of {', '.join(tasks.TASKS)}, got {self.task!r}")
        for name in ("updates", "updates_per_epoch", "batch", "hidden", "cells", "test_examples", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise RLError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and self.clip > 0 and self.baseline_clip > 0 and 0 < self.threshold < 1):
            raise RLError("--lr, --clip and --baseline-clip must be > 0 and --threshold in (0, 1)")

    def to_dict(self) -> dict:
        """JSON-ready settings."""
        return dataclasses.asdict(self)


class Curriculum:
    """The level, the moving average of the per-symbol error at it, and when it last rose."""

    def __init__(self, levels: int, threshold: float) -> None:
        self.levels, self.threshold = levels, threshold
        self.level, self.error, self.raised_at = 0, 1.0, 0

    def update(self, wrong: int, written: int, update: int) -> None:
        """Fold in a batch's errors at the current level or above; raise the level if due."""
        if written:
            self.error = 0.8 * self.error + 0.2 * wrong / written
        if self.error < self.threshold and self.level < self.levels - 1 and update - self.raised_at > 100:
            self.level, self.error, self.raised_at = self.level + 1, 1.0, update

    @property
    def finished(self) -> bool:
        """At the last level with its error below the threshold."""
        return self.level == self.levels - 1 and self.error < self.threshold

    def state_dict(self) -> dict:
        return {"level": self.level, "error": self.error, "raised_at": self.raised_at}

    def load_state_dict(self, state: dict) -> None:
        self.level, self.error, self.raised_at = int(state["level"]), float(state["error"]), int(state["raised_at"])


def make_model(s: Settings) -> machine.Controller:
    task = tasks.TASKS[s.task]
    return machine.Controller(machine.MachineSettings(hidden=s.hidden, cells=s.cells, direct_access=s.direct_access,
                                                      action_scale=s.action_scale, forward_only=task.forward_only))


def test_error(model: machine.Controller, s: Settings) -> float:
    """Per-symbol error on the held-out batch (greedy actions, argmax symbols)."""
    task = tasks.TASKS[s.task]
    batch = tasks.make_batch(task, [0] * s.test_examples, torch.Generator().manual_seed(TEST_SEED), test=True)
    with torch.no_grad():
        wrong, written = machine.run(model, batch, None, greedy=True).errors()
    return wrong / max(written, 1)


def update_once(model: machine.Controller, optimizer: torch.optim.Optimizer, s: Settings, curriculum: Curriculum,
                update: int) -> Tuple[float, int, int]:
    """One update; returns (loss, wrong, written) over the examples at the current level or above."""
    task = tasks.TASKS[s.task]
    generator = torch.Generator().manual_seed(s.seed * 1_000_003 + update)  # a resume redraws the same batch
    levels = tasks.curriculum_levels(task, curriculum.level, s.batch, generator)
    batch = tasks.make_batch(task, levels, generator)
    graph = sg.Graph(check_finite=False)  # untracked: every cost credits every earlier action
    episode = machine.run(model, batch, graph)
    loss = graph.surrogate()
    optimizer.zero_grad()
    loss.backward()
    baseline = list(model.baseline_head.parameters())
    controller = [p for p in model.parameters() if all(p is not b for b in baseline)]
    torch.nn.utils.clip_grad_norm_(controller, s.clip)
    torch.nn.utils.clip_grad_norm_(baseline, s.baseline_clip)
    optimizer.step()
    relevant = batch.levels >= curriculum.level
    wrong = int(sum((w & relevant).sum() for w in episode.wrong))
    written = int(sum((w & relevant).sum() for w in episode.written))
    return float(loss.detach()), wrong, written


def train(s: Settings, out: Optional[str], resume: bool = False, progress: bool = True) -> Tuple[bool, int, float, int]:
    """Train (or resume) into ``out``; returns (solved, updates, test error, level)."""
    seed_everything(s.seed)
    model = make_model(s)
    optimizer = torch.optim.SGD(model.parameters(), lr=s.lr, momentum=0.9)
    curriculum = Curriculum(len(tasks.TASKS[s.task].levels), s.threshold)
    result = {"test": 1.0, "updates": 0}

    def epoch(i: int, start: int, stop: int) -> dict:
        began, losses = time.perf_counter(), []
        for update in range(start, stop):
            loss, wrong, written = update_once(model, optimizer, s, curriculum, update)
            curriculum.update(wrong, written, update)
            losses.append(loss)
        seconds = time.perf_counter() - began
        result["test"], result["updates"] = test_error(model, s), stop
        return {"Loss": sum(losses) / len(losses), "Level": curriculum.level, "TrainError": curriculum.error,
                "TestError": result["test"], "ExamplesPerSecond": (stop - start) * s.batch / seconds}

    training = Training(f"rl_ntm/{s.task}", s, s.updates, s.updates_per_epoch, model,
                        {"model": model, "optimizer": optimizer, "curriculum": curriculum}, epoch,
                        count="Updates", length="updates")
    solved = lambda: curriculum.finished and result["test"] < s.threshold  # noqa: E731
    rows, _ = run(training, out, resume=resume, progress=progress, until=solved)
    if rows:
        result["test"], result["updates"] = float(rows[-1]["TestError"]), int(rows[-1]["Updates"])
    return solved(), result["updates"], result["test"], curriculum.level


def main(argv: Optional[list] = None) -> int:
    """The command line (see the module docstring)."""
    parser = settings_parser(Settings, __doc__.split("\n")[0], "updates", "the most updates to run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        s = settings_from(Settings, args, "updates")
        torch.set_num_threads(1)
        solved, updates, error, level = train(s, args.resume or args.out, resume=bool(args.resume),
                                              progress=not args.no_progress and sys.stderr.isatty())
    except (RLError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"solved={'true' if solved else 'false'} updates={updates} test_error={error:.4f} level={level}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
