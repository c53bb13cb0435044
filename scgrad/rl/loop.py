"""The epoch loop every algorithm shares: run folder, resume, one epoch's work, episode
statistics, progress.csv, checkpoints, the NaN guard and the progress bar.

An algorithm supplies only the work of one epoch (``Training.epoch``) and the objects whose
state must survive a restart (``Training.state``: anything with ``state_dict`` and
``load_state_dict`` — the model, optimisers, normaliser, env runner, a replay buffer).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import RunConfig
from .errors import CheckpointError, TrainingDiverged
from .logger import RunFolder, episode_stats
from .progress import ProgressBar
from .rollout import EnvRunner

_RESERVED = {"format", "epoch", "elapsed", "rng"}


@dataclass
class Training:
    """What the loop drives.

    Attributes:
        name: the algorithm's name (recorded in config.json).
        config: its settings.
        epochs: epochs in the whole run.
        steps_per_epoch: environment steps per epoch, all environments together.
        runner: the env runner, whose finished episodes give each epoch's return statistics.
        model: checked for NaN or infinite parameters after every epoch.
        state: objects saved in each checkpoint under their names.
        epoch: ``epoch(i) -> info``: epoch i's work (1-based); returns its progress columns
            (LossPi, LossV, KL, Entropy and any extras).
    """

    name: str
    config: RunConfig
    epochs: int
    steps_per_epoch: int
    runner: EnvRunner
    model: nn.Module
    state: Dict[str, Any]
    epoch: Callable[[int], Dict[str, float]]


def run(training: Training, out_dir: Optional[str] = None, resume: bool = False, progress: bool = False,
        stop_after: Optional[int] = None) -> Tuple[List[Dict[str, str]], bool]:
    """Run (or resume) the epochs; returns (progress rows, whether it stopped early).

    A checkpoint is written every ``config.checkpoint_every`` epochs and after the last one,
    after that epoch's row is in progress.csv. An epoch whose losses or parameters are not
    finite raises ``TrainingDiverged`` before anything is saved, so the last good checkpoint
    stays.
    """
    t = training
    folder = RunFolder(out_dir)
    start, elapsed = _start(t, folder, resume)
    last = min(stop_after if stop_after is not None else t.epochs, t.epochs)
    bar = ProgressBar(t.epochs * t.steps_per_epoch, start * t.steps_per_epoch) if progress else None
    t0 = time.perf_counter() - elapsed
    try:
        for epoch in range(start + 1, last + 1):
            info = _checked_epoch(t, epoch, folder)
            row = {"Epoch": epoch, "TotalEnvInteracts": epoch * t.steps_per_epoch,
                   **episode_stats(*t.runner.pop_episodes()), **info, "Time": time.perf_counter() - t0}
            folder.log(row)
            if folder.path is not None and (epoch % t.config.checkpoint_every == 0 or epoch == last):
                save_checkpoint(folder.checkpoint_path, _capture(t, epoch, row["Time"]))
            if bar:
                bar.update(epoch * t.steps_per_epoch, f"return {row['AverageEpRet']:.1f}")
    finally:
        if bar:
            bar.close()
        t.runner.env.close()
    return folder.rows, last < t.epochs


def _start(t: Training, folder: RunFolder, resume: bool) -> Tuple[int, float]:
    """Create the run folder, or restore the run in it; returns (epochs done, seconds spent)."""
    if not resume:
        folder.create(t.name, t.config.to_dict())
        return 0, 0.0
    if folder.path is None:
        raise CheckpointError("resume needs the run folder (out_dir)")
    folder.check_resume(t.name, t.config.to_dict())
    saved = load_checkpoint(folder.checkpoint_path)
    try:
        for name, obj in t.state.items():
            obj.load_state_dict(saved[name])
        set_rng_state(saved["rng"])
        start, elapsed = int(saved["epoch"]), float(saved["elapsed"])
    except (KeyError, RuntimeError, ValueError, TypeError) as error:
        raise CheckpointError(f"the checkpoint in {folder.path} does not match this run "
                              f"({' '.join(str(error).split())[:200]})") from None
    folder.reopen(start)
    return start, elapsed


def _capture(t: Training, epoch: int, elapsed: float) -> Dict[str, Any]:
    assert not _RESERVED & set(t.state), f"state names {_RESERVED & set(t.state)} are reserved"
    return {"epoch": epoch, "elapsed": elapsed, "rng": rng_state(),
            **{name: obj.state_dict() for name, obj in t.state.items()}}


def _checked_epoch(t: Training, epoch: int, folder: RunFolder) -> Dict[str, float]:
    """Run one epoch; ``TrainingDiverged`` if a loss or a parameter is NaN or infinite."""
    try:
        info = t.epoch(epoch)
    except FloatingPointError as error:  # e.g. the graph refusing a NaN cost
        raise _diverged(epoch, folder, " ".join(str(error).split())) from None
    bad = [k for k, v in info.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad or not all(torch.isfinite(p).all() for p in t.model.parameters()):
        raise _diverged(epoch, folder, f"{', '.join(bad) or 'the parameters'} became NaN or infinite")
    return info


def _diverged(epoch: int, folder: RunFolder, what: str) -> TrainingDiverged:
    where = f"; the last good checkpoint is kept in {folder.path}" if folder.path is not None else ""
    return TrainingDiverged(f"epoch {epoch}: {what}; training stopped{where}")
