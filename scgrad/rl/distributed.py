"""Data parallelism over processes with ``torch.distributed``: which process this is, and the
few collective operations the training loop and the on-policy learners need.

A run launched by ``torchrun`` (one process per core or GPU, ``--nnodes`` for several machines)
joins the process group the launcher describes in its environment variables (``start``); every
other run is a world of one, in which each function here is a no-op that returns its input, so
single-process code pays nothing. Ranks hold identical parameters (they start from the same
seed, and every gradient is averaged before a step), own their environments and random streams,
and meet only where the mathematics needs the whole batch: gradients, advantage statistics,
early-stopping and trust-region decisions, episode statistics and checkpoints.

The backend is gloo for CPU tensors and NCCL for CUDA ones (``backend_for``); objects (episode
lists, checkpoint states) travel through ``all_gather_object``, which pickles them, so only
trusted peers may join a run's rendezvous.
"""
from __future__ import annotations

import datetime
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist

from scgrad.rl.errors import PeerLost

#: how long a collective waits for a missing peer before the survivors fail with an error
#: (environment variable SCGRAD_DIST_TIMEOUT_S, seconds; a dead peer's closed connection is
#: noticed at once, the timeout is for one that hangs)
TIMEOUT = datetime.timedelta(seconds=int(os.environ.get("SCGRAD_DIST_TIMEOUT_S", "120")))


@dataclass(frozen=True)
class World:
    """The processes of a run: this one's rank in [0, size) and their number."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the process that writes the run folder and prints."""
        return self.rank == 0


def world() -> World:
    """This process's place in the current process group (a world of one when there is none)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def launched() -> bool:
    """Whether a launcher (``torchrun``) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def backend_for(device: str) -> str:
    """nccl for runs on CUDA devices, gloo for CPU runs."""
    return "nccl" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "gloo"


def start(device: str = "cpu") -> World:
    """Join the process group ``torchrun`` describes (``MASTER_ADDR``, ``RANK``, ``WORLD_SIZE``,
    ...), if this process was launched as one of several and has not joined yet; returns the world."""
    if launched() and not dist.is_initialized():
        backend = backend_for(device)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend, timeout=TIMEOUT)
    return world()


def stop() -> None:
    """Leave the process group (after the last collective), if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        _collective(dist.barrier)  # no process tears the group down while another still talks to it
        dist.destroy_process_group()


def finish(status: int) -> int:
    """End a process's part in a finished run: leave the process group and, if this process
    was one of several, exit at once with ``status`` (output flushed) instead of returning.

    Why: about one launch in ten (CartPole VPG, two processes, this machine), a process that had
    left the group cleanly still aborted after its last Python frame ("terminate called without
    an active exception", SIGABRT, in torch 2.13's teardown of its C++ state), which made
    ``torchrun`` report a finished run as failed. Everything the run writes is already on disk
    (progress rows and checkpoints are fsynced), so nothing is lost by skipping that teardown.
    Returns ``status`` in a world of one.
    """
    several = world().size > 1
    stop()
    if several:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def abandon() -> None:
    """Leave the process group without waiting for the others (after an error: they may be gone)."""
    if dist.is_available() and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except RuntimeError:
            pass


def seed_of_rank(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s random streams: ``seed`` itself on rank 0 (so a world of one
    draws exactly what a single process does), an independent stream derived from both elsewhere."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence(seed, spawn_key=(rank,)).generate_state(1)[0])


# ------------------------------------------------------------------ collectives
def _device() -> torch.device:
    """Where tensors sent between the processes must live: this process's GPU under NCCL."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _collective(operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``operation(*args, **kwargs)``; a ``PeerLost`` in one line if a peer is gone (the backend
    raises a ``RuntimeError`` when a connection closes or the timeout passes)."""
    try:
        return operation(*args, **kwargs)
    except RuntimeError as error:
        detail = " ".join(str(error).split())[:300]
        raise PeerLost(f"process {world().rank} of {world().size} lost its peers (another process of the run "
                       f"died, was killed or hung for {TIMEOUT.seconds} s): {detail}") from None


def average_(tensors: Sequence[torch.Tensor], *scalars: float | torch.Tensor) -> List[float]:
    """Replace each tensor by its mean over the ranks, in place, with one all-reduce of their
    concatenation (the flat gradients of ``optim.FlatAdam``: one tensor per network); returns
    the mean over the ranks of each scalar, carried in the same all-reduce (in the tensors'
    dtype) so that a statistic a step needs (PPO's KL) costs no collective of its own."""
    numbers = [float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for v in scalars]
    if world().size == 1 or not (tensors or numbers):
        return numbers
    if len(tensors) == 1 and not numbers:
        flat = tensors[0]
        _collective(dist.all_reduce, flat)
        flat.div_(world().size)
        return []
    like = tensors[0] if tensors else torch.zeros((), dtype=torch.float64, device=_device())
    extra = torch.tensor(numbers, dtype=like.dtype, device=like.device)
    flat = torch.cat([t.reshape(-1) for t in tensors] + [extra])
    _collective(dist.all_reduce, flat)
    flat.div_(world().size)
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()
    return flat[offset:].tolist()


def mean(*values: float | torch.Tensor) -> List[float] | float:
    """The mean over the ranks of each scalar (one all-reduce for all of them): a loss, a KL, a
    statistic that each rank measured on its share of the batch (shares are of equal size)."""
    numbers = [float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for v in values]
    if world().size == 1:
        out = numbers
    else:
        packed = torch.tensor(numbers, dtype=torch.float64, device=_device())
        _collective(dist.all_reduce, packed)
        out = (packed / world().size).tolist()
    return out[0] if len(out) == 1 else out


def mean_tensor(x: torch.Tensor) -> torch.Tensor:
    """A tensor's elementwise mean over the ranks (a new tensor; ``x`` itself when alone)."""
    if world().size == 1:
        return x
    x = x.detach().clone()
    _collective(dist.all_reduce, x)
    return x / world().size


def standardize(x: torch.Tensor) -> torch.Tensor:
    """(x − mean) / (std + 1e-8) with the mean and the (unbiased) std of every element on every
    rank: ``data.batch.standardize`` of the whole batch, computed where its shares live (two
    small all-reduces: the sum and count, then the squared deviations)."""
    if world().size == 1:
        return (x - x.mean()) / (x.std() + 1e-8)
    moments = torch.tensor([float(x.sum()), float(x.numel())], dtype=torch.float64, device=x.device)
    _collective(dist.all_reduce, moments)
    mu = moments[0] / moments[1]
    squares = (x.double() - mu).square().sum().reshape(1)
    _collective(dist.all_reduce, squares)
    std = float(torch.sqrt(squares[0] / (moments[1] - 1)))
    return (x - float(mu)) / (std + 1e-8)


def standardize_chunks(x: torch.Tensor, size: int) -> torch.Tensor:
    """``standardize`` of each run of ``size`` consecutive elements of x [N] (the last may be
    shorter; runs of one element are left as they are), with every rank's run i counted in
    run i's mean and std: the minibatches of an update epoch, normalised in one all-reduce
    of their moments instead of two per minibatch. x's runs must line up across ranks (equal
    shares)."""
    if world().size == 1:
        return torch.cat([(c - c.mean()) / (c.std() + 1e-8) if len(c) > 1 else c for c in x.split(size)])
    run = torch.arange(len(x), device=x.device) // size                           # [N] each element's run
    wide = x.detach().double()
    moments = torch.zeros(3, (len(x) + size - 1) // size, dtype=torch.float64, device=x.device)
    moments.index_add_(1, run, torch.stack([wide, wide.square(), torch.ones_like(wide)]))
    sent = moments.to(_device())
    _collective(dist.all_reduce, sent)
    total, squares, count = sent.to(x.device)                                      # each [runs]
    mu = total / count
    std = ((squares - total * mu) / (count - 1).clamp(min=1)).clamp(min=0).sqrt()
    out = ((x.double() - mu[run]) / (std[run] + 1e-8)).to(x.dtype)
    return torch.where((count > 1)[run], out, x)


def copy_from_main(module: torch.nn.Module) -> None:
    """Overwrite ``module``'s parameters and buffers with rank 0's (one broadcast each)."""
    if world().size == 1:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            sent = tensor.data.to(_device())  # NCCL sends CUDA tensors only; the model may still be on the CPU
            _collective(dist.broadcast, sent, src=0)
            tensor.data.copy_(sent)


def gather(obj: Any) -> List[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` when alone)."""
    if world().size == 1:
        return [obj]
    out: List[Optional[Any]] = [None] * world().size
    _collective(dist.all_gather_object, out, obj)
    return out


def broadcast(obj: Any, source: int = 0) -> Any:
    """Rank ``source``'s ``obj`` on every rank."""
    if world().size == 1:
        return obj
    box = [obj if world().rank == source else None]
    _collective(dist.broadcast_object_list, box, src=source)
    return box[0]
