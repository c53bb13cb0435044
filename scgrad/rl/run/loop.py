"""The epoch loop every training run shares: run folder, resume, one epoch's work, episode
statistics, progress.csv, checkpoints, the NaN guard and the progress bar.

A run supplies only the work of one epoch (``Training.epoch``) and the objects whose state must
survive a restart (``Training.state``: anything with ``state_dict`` and ``load_state_dict`` — the
model, optimisers, normaliser, env runner, a replay buffer). Nothing here needs an environment:
with no ``runner`` the loop counts whatever units the run counts (episodes, examples) and the
epoch reports its own statistics, so supervised training reuses the same folder and resume.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from scgrad.rl import distributed
from scgrad.rl.config import RunConfig
from scgrad.rl.data.runner import EnvRunner
from scgrad.rl.errors import CheckpointError, PeerLost, TrainingDiverged
from scgrad.rl.run.checkpoint import (checkpoint_epoch, has_checkpoint, read_checkpoint, rng_state,
                                      save_checkpoint, set_rng_state)
from scgrad.rl.run.folder import RunFolder, episode_stats, say
from scgrad.rl.run import tensorboard
from scgrad.rl.run.progress import ProgressBar

_RANKS = "other_processes"  # a data-parallel checkpoint's states of ranks 1, 2, ...
_RESERVED = {"format", "epoch", "elapsed", "rng", "steps_done", _RANKS}


@dataclass
class Training:
    """What the loop drives.

    Attributes:
        name: the algorithm's (or program's) name, recorded in config.json.
        config: its settings: a ``RunConfig`` or any object with ``to_dict()`` (JSON-ready) and
            ``checkpoint_every``.
        steps: units of work in the whole run (environment steps, all environments together,
            for RL; exactly: the last epoch is shorter when ``steps_per_epoch`` does not divide it).
        steps_per_epoch: units per epoch.
        model: checked for NaN or infinite parameters after every epoch.
        state: objects saved in each checkpoint under their names.
        epoch: ``epoch(i, start, stop) -> info``: epoch i's work (1-based), taking the run from
            ``start`` to ``stop`` units; returns its progress columns (LossPi, LossV, KL,
            Entropy and any extras).
        runner: the env runner, whose finished episodes give each epoch's return statistics and
            move the progress bar as it steps; ``None`` when the run has none (the epoch then
            returns whatever statistics it has).
        count: the progress.csv column of the units ``steps`` counts.
        length: the setting that holds ``steps``: the one setting a resume may change.
        options: what config.json records beside the settings and the thread count (as
            ``"run"``), which a resume must repeat: ``{"model": "own"}`` for a model of the
            user's own.
    """

    name: str
    config: RunConfig
    steps: int
    steps_per_epoch: int
    model: nn.Module
    state: Dict[str, Any]
    epoch: Callable[[int, int, int], Dict[str, float]]
    runner: Optional[EnvRunner] = None
    count: str = "TotalEnvInteracts"
    length: str = "steps"
    options: Dict[str, Any] = field(default_factory=dict)


def run(training: Training, out_dir: Optional[str] = None, resume: bool = False, progress: bool = False,
        stop_after: Optional[int] = None, until: Optional[Callable[[], bool]] = None
        ) -> Tuple[List[Dict[str, str]], bool]:
    """Run (or resume) the epochs; returns (progress rows, whether it stopped early).

    ``stop_after``: stop after this epoch. ``until``: a goal checked after every epoch; once it
    holds, that epoch is checkpointed and the run stops (a task solved).

    The folder is locked for this process while it trains. A checkpoint is written every
    ``config.checkpoint_every`` epochs and after the last one, after that epoch's row is in
    progress.csv; its manifest records the settings and the run options (``run_options``),
    which a resume must match. Resuming a folder without a checkpoint (a run killed before
    its first one) starts the run afresh. An epoch whose losses or parameters are not finite
    raises ``TrainingDiverged`` before anything is saved, so the last good checkpoint stays.
    """
    t = training
    if resume and out_dir is None:
        raise CheckpointError("resume needs the run folder (out_dir)")
    here = distributed.world()
    folder = RunFolder(out_dir if here.main else None)  # in a data-parallel run, rank 0 writes
    progress = progress and here.main
    bar = events = None
    try:
        epoch, done, elapsed = _start(t, folder, resume)
        if progress:
            bar = ProgressBar(t.steps, done, unit=t.count)
            if t.runner is not None:
                t.runner.on_step = bar.advance  # redrawn as the environments step, not once an epoch
        if folder.path is not None and getattr(t.config, "tensorboard", False) and tensorboard.available():
            events = tensorboard.TensorBoardLog(folder.path, t.count)
        t0 = time.perf_counter() - elapsed
        reached = False
        while done < t.steps and (stop_after is None or epoch < stop_after) and not reached:
            epoch, start, done = epoch + 1, done, min(done + t.steps_per_epoch, t.steps)
            info = _checked_epoch(t, epoch, start, done, folder)
            stats = episode_stats(*_episodes(t.runner)) if t.runner is not None else {}
            row = {"Epoch": epoch, t.count: done, **stats, **info, "Time": time.perf_counter() - t0}
            folder.log(row)
            if events is not None:
                events.log(row)
            reached = until is not None and until()
            last = done == t.steps or epoch == stop_after or reached
            if out_dir is not None and (epoch % t.config.checkpoint_every == 0 or last):
                _save(t, folder, epoch, done, row["Time"])
            if bar:
                bar.update(done, f"return {row['AverageEpRet']:.1f}" if "AverageEpRet" in row else "")
    except PeerLost as error:  # say where the run can go on from
        raise PeerLost(f"{error}{_kept(out_dir)}; resume it under torchrun with the same number of processes"
                       if out_dir is not None else str(error)) from None
    finally:
        if t.runner is not None:
            t.runner.on_step = None
            t.runner.env.close()
        if bar:
            bar.close()
        if events is not None:
            events.close()
        folder.release()
    return folder.rows, done < t.steps


def run_options() -> Dict[str, Any]:
    """What besides the settings changes a run's results, as this process has it: the torch
    thread count (a different one may reduce sums in another order) and, for a data-parallel
    run, the number of processes (``processes``: each owns its environments and random streams)."""
    processes = distributed.world().size
    return {"threads": torch.get_num_threads(), **({"processes": processes} if processes > 1 else {})}


def _start(t: Training, folder: RunFolder, resume: bool) -> Tuple[int, int, float]:
    """Take and create the run folder, or restore the run in it; returns (epochs done,
    environment steps done, seconds spent). In a data-parallel run rank 0 opens the folder and
    sends every process its own state from the checkpoint (or its error, which all then raise)."""
    saved = _on_main(lambda: _open(t, folder, resume))
    if saved is None:
        return 0, 0, 0.0
    here = distributed.world()
    mine = saved if here.rank == 0 else saved[_RANKS][here.rank - 1]
    try:
        for name, obj in t.state.items():
            obj.load_state_dict(mine[name])
        set_rng_state(mine["rng"])
        start, done, elapsed = int(saved["epoch"]), int(saved["steps_done"]), float(saved["elapsed"])
    except (KeyError, RuntimeError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise CheckpointError(f"the checkpoint in {folder.path or 'the run folder'} does not match this run "
                              f"({type(error).__name__}: {' '.join(str(error).split())[:200]})") from None
    if folder.path is not None:
        folder.reopen(start)
        folder.write_config(t.name, t.config.to_dict(), {**run_options(), **t.options})  # the new steps, if changed
    return start, done, elapsed


def _open(t: Training, folder: RunFolder, resume: bool) -> Optional[Dict[str, Any]]:
    """Take the folder and create the run in it, or check it for a resume: the checkpoint's
    payload to restore, or ``None`` to start afresh."""
    folder.acquire(create=not resume)
    settings, options = t.config.to_dict(), {**run_options(), **t.options}
    if not resume:
        folder.create(t.name, settings, options)
        return None
    folder.check_resume(t.name, settings, t.length)
    if not has_checkpoint(folder.path):
        say(f"{folder.path} holds no checkpoint yet: starting the run from scratch with its recorded settings")
        folder.reopen(0)
        folder.write_config(t.name, settings, options)
        return None
    manifest, saved = read_checkpoint(folder.path)
    if manifest["run"].get("exported"):
        raise CheckpointError(f"{folder.path} holds exported weights only (no optimiser, random or environment "
                              "state): it can be evaluated, not resumed; resume the run it was exported from")
    _check_recorded(folder, manifest, t.name, settings, options, t.length)
    return saved


def _on_main(work: Callable[[], Any]) -> Any:
    """``work()`` done by rank 0 and its result sent to every process; if it raises, every
    process raises (the others a ``CheckpointError`` naming rank 0's error) instead of waiting."""
    if distributed.world().size == 1:
        return work()
    if distributed.world().main:
        try:
            result = work()
        except Exception as error:
            distributed.broadcast((False, f"{type(error).__name__}: {error}"))
            raise
        return distributed.broadcast((True, result))[1]
    ok, result = distributed.broadcast(None)
    if not ok:
        raise CheckpointError(f"rank 0 stopped the run: {result}")
    return result


def _save(t: Training, folder: RunFolder, epoch: int, done: int, elapsed: float) -> None:
    """Checkpoint the run: rank 0 writes its own state with every other process's beside it."""
    captured = distributed.gather(_capture(t, epoch, done, elapsed))
    state = {**captured[0], _RANKS: captured[1:]} if len(captured) > 1 else captured[0]
    _on_main(lambda: save_checkpoint(folder.path, state, _record(t, epoch)))


def _episodes(runner: EnvRunner) -> Tuple[List[float], List[int]]:
    """Returns and lengths of the episodes finished since the last epoch, in every process."""
    returns, lengths = [], []
    for theirs in distributed.gather(runner.pop_episodes()):
        returns += theirs[0]
        lengths += theirs[1]
    return returns, lengths


def _check_recorded(folder: RunFolder, manifest: Dict[str, Any], algo: str, settings: Dict[str, Any],
                    options: Dict[str, Any], length: str = "steps") -> None:
    """The resumed run must have the algorithm, settings (its length aside) and run options its
    checkpoint was written with: config.json may have been edited since."""
    if manifest.get("algo") != algo:
        raise CheckpointError(f"the checkpoint in {folder.path} is of a {manifest.get('algo')} run, not {algo}")
    saved = manifest["settings"]
    changed = [f"{k}={settings.get(k)!r} (the checkpoint has {saved.get(k)!r})"
               for k in sorted(set(saved) | set(settings)) if k != length and saved.get(k) != settings.get(k)]
    if changed:
        raise CheckpointError(f"cannot resume {folder.path}: its settings differ from those its checkpoint was "
                              f"written with: {'; '.join(changed)}; restore config.json")
    if manifest["run"].get("model") != options.get("model"):
        raise CheckpointError(f"{folder.path} was trained with a model of the user's own: resume it from Python, "
                              "passing the same actor_critic= factory" if manifest["run"].get("model") else
                              f"{folder.path} was trained with the default model: resume it without actor_critic=")
    processes = manifest["run"].get("processes", 1)
    if processes != options.get("processes", 1):
        raise CheckpointError(f"{folder.path} was trained on {processes} process(es) and this run has "
                              f"{options.get('processes', 1)}: each process's environments and random streams are "
                              f"in the checkpoint, so resume it with torchrun --nproc_per_node {processes}"
                              + (" (in total over the nodes)" if processes > 1 else " (or without torchrun)"))
    threads = manifest["run"].get("threads")
    if threads != options["threads"]:
        raise CheckpointError(f"{folder.path} was trained with {threads} torch thread(s), this process has "
                              f"{options['threads']}, which changes the results: resume with --threads {threads} "
                              f"(in Python: torch.set_num_threads({threads}))")


def _capture(t: Training, epoch: int, steps_done: int, elapsed: float) -> Dict[str, Any]:
    assert not _RESERVED & set(t.state), f"state names {_RESERVED & set(t.state)} are reserved"
    return {"epoch": epoch, "steps_done": steps_done, "elapsed": elapsed, "rng": rng_state(),
            **{name: obj.state_dict() for name, obj in t.state.items()}}


def _record(t: Training, epoch: int) -> Dict[str, Any]:
    """What the checkpoint's manifest records beside its files."""
    return {"epoch": epoch, "algo": t.name, "settings": t.config.to_dict(), "run": {**run_options(), **t.options}}


def _checked_epoch(t: Training, epoch: int, start: int, stop: int, folder: RunFolder) -> Dict[str, float]:
    """Run one epoch; ``TrainingDiverged`` if a loss or a parameter is NaN or infinite."""
    try:
        info = t.epoch(epoch, start, stop)
    except FloatingPointError as error:  # e.g. the graph refusing a NaN cost
        raise _diverged(epoch, folder, " ".join(str(error).split())) from None
    bad = [k for k, v in info.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad or not all(torch.isfinite(p).all() for p in t.model.parameters()):
        raise _diverged(epoch, folder, f"{', '.join(bad) or 'the parameters'} became NaN or infinite")
    return info


def _diverged(epoch: int, folder: RunFolder, what: str) -> TrainingDiverged:
    return TrainingDiverged(f"epoch {epoch}: {what}; training stopped{_kept(folder.path)}")


def _kept(path: Optional[str | os.PathLike]) -> str:
    """"; the last good checkpoint is kept in DIR (epoch N)", or that none was written ("" without a folder)."""
    if path is None:
        return ""
    kept = checkpoint_epoch(path)
    return (f"; the last good checkpoint is kept in {path} (epoch {kept})" if kept is not None else
            f"; no checkpoint had been written to {path} yet")
