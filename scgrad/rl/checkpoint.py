"""Checkpoints: written atomically, read back with clear errors, random streams included."""
from __future__ import annotations

import os
import pickle
import random
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

from .errors import CheckpointError

FORMAT = "scgrad.rl checkpoint 1"


def save_checkpoint(path: str | os.PathLike, state: Dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically.

    The state goes to a temporary file in the same folder, is flushed to disk, and then
    replaces ``path`` with ``os.replace`` (atomic on POSIX and Windows): a run killed at any
    moment leaves either the previous checkpoint or the new one, never half a file.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | os.PathLike) -> Dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; ``CheckpointError`` in one line if
    it is missing, truncated or not a checkpoint. Unpickles: load only files you trust."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        # weights_only=False: the state holds RNG states and the pickled environment
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile,
            ValueError, AttributeError, ImportError) as error:
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable "
                              f"({type(error).__name__}: {' '.join(str(error).split())[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an scgrad.rl checkpoint")
    return state


def rng_state() -> Dict[str, Any]:
    """The global random streams this process may draw from: torch, numpy and Python's."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and Python's global generators (environments are seeded separately)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
