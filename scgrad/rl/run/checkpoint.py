"""Checkpoints: crash-safe, checksummed, loaded without running code; random streams included.

A run folder's checkpoint is a payload file, ``checkpoint-000012.pt`` (the state, written by
``torch.save``), and a manifest, ``checkpoint.json``, that names it with its SHA-256:
``{"format", "epoch", "files": {name: sha256}, "algo", "settings", "run", "sha256"}`` (the
last entry is the SHA-256 of the rest, so an edited or damaged manifest is refused too).

Writing (``save_checkpoint``): the payload goes to a temporary file, is fsynced and renamed;
then the manifest likewise — its rename is the commit point — then the folder is fsynced and
the superseded payload deleted. A run killed at any moment leaves the previous checkpoint or
the new one; leftovers (temporary files, an uncommitted payload) are removed by
``remove_leftovers`` when a run next opens the folder.

Reading (``read_checkpoint``): the manifest and each file's checksum are verified, and the
payload is read with ``torch.load(weights_only=True)``, allowing tensors, plain containers and
numeric NumPy arrays only: a crafted checkpoint cannot run code on ``eval`` or ``--resume``.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import re
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Optional, Tuple

import numpy as np
import torch

from scgrad.rl.envs.state import DTYPES
from scgrad.rl.errors import CheckpointError

FORMAT = "scgrad.rl checkpoint 2"
MANIFEST = "checkpoint.json"
LEGACY = "checkpoint.pt"  # the pickled single-file checkpoint of earlier versions: never loaded
_PAYLOAD = re.compile(r"checkpoint-\d{6,}(-\d+)?\.pt")
_CHUNK = 1 << 20


def _safe_globals() -> list:
    """What a payload may reference beyond torch's own types: numeric NumPy arrays."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy < 2
        from numpy.core.multiarray import _reconstruct
    return [_reconstruct, np.ndarray, np.dtype, *{type(dtype) for dtype in DTYPES}]


# ------------------------------------------------------------------ writing
class _HashingWriter:
    """A file wrapper that hashes what ``torch.save`` writes through it (hashing once, on the way)."""

    def __init__(self, file: BinaryIO) -> None:
        self.file, self.sha256 = file, hashlib.sha256()

    def write(self, data: bytes) -> int:
        """Hash and write ``data``."""
        self.sha256.update(data)
        return self.file.write(data)

    def flush(self) -> None:
        """Flush the file."""
        self.file.flush()


def save_checkpoint(run_dir: str | os.PathLike, state: Dict[str, Any], info: Dict[str, Any]) -> None:
    """Commit ``state`` as the checkpoint of ``run_dir`` (see the module docstring).

    ``info`` goes into the manifest: ``epoch`` (also saved in the state), ``algo``, ``settings``
    and ``run`` (run options such as the thread count). A failure (a full disk, ...) is a
    ``CheckpointError`` in one line; the previous checkpoint then stays the folder's checkpoint.
    """
    folder = Path(run_dir)
    previous = _committed_files(folder)
    epoch = int(info["epoch"])
    name = _payload_name(epoch, previous)
    committed = False
    try:
        digest = _write_durably(folder / name, lambda f: torch.save({"format": FORMAT, **state}, f))
        fsync_dir(folder)  # the payload's entry is durable before a manifest names it
        manifest = {"format": FORMAT, **info, "epoch": epoch, "files": {name: digest}}
        text = json.dumps({**manifest, "sha256": _body_hash(manifest)}, indent=2) + "\n"
        _write_durably(folder / MANIFEST, lambda f: f.write(text.encode()))
        committed = True
        fsync_dir(folder)
    except OSError as error:
        if not committed:
            (folder / name).unlink(missing_ok=True)  # a payload no manifest names
        kept = ("it may not survive a crash of the machine" if committed else
                f"the checkpoint of epoch {previous['epoch']} is kept" if previous else "no checkpoint was written")
        raise CheckpointError(f"cannot write the checkpoint of epoch {epoch} in {folder} "
                              f"({error.strerror or error}); {kept}") from None
    for old in set(previous.get("files", {})) - {name}:
        (folder / old).unlink(missing_ok=True)


def _payload_name(epoch: int, previous: Dict[str, Any]) -> str:
    """``checkpoint-EPOCH.pt``, or a variant when the committed checkpoint already uses it."""
    name, k = f"checkpoint-{epoch:06d}.pt", 0
    while name in previous.get("files", {}):
        k += 1
        name = f"checkpoint-{epoch:06d}-{k}.pt"
    return name


def _write_durably(path: Path, write: Callable[[_HashingWriter], Any]) -> str:
    """Write through ``write(file)`` to a temporary file, fsync it and rename it to ``path``;
    returns the SHA-256 of what was written."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            writer = _HashingWriter(f)
            write(writer)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return writer.sha256.hexdigest()


def fsync_dir(folder: Path) -> None:
    """Make the folder's entries (a rename, a new file) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _body_hash(manifest: Dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def remove_leftovers(run_dir: str | os.PathLike) -> None:
    """Delete what an interrupted write left in ``run_dir``: temporary files (``.*.tmp``) and
    payloads the manifest does not name (all of them if there is no manifest; none if the
    manifest is unreadable, so that nothing is lost that could still be recovered)."""
    folder = Path(run_dir)
    for tmp in folder.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    try:
        keep = set(read_manifest(folder)["files"])
    except CheckpointError as error:
        if "no checkpoint" not in str(error):
            return
        keep = set()
    for payload in folder.glob("checkpoint-*.pt"):
        if _PAYLOAD.fullmatch(payload.name) and payload.name not in keep:
            payload.unlink(missing_ok=True)


def _committed_files(folder: Path) -> Dict[str, Any]:
    """The committed manifest, or {} if there is none or it is unreadable."""
    try:
        return read_manifest(folder)
    except CheckpointError:
        return {}


# ------------------------------------------------------------------ reading
def has_checkpoint(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir`` holds a checkpoint (its manifest, or a legacy ``checkpoint.pt``)."""
    return (Path(run_dir) / MANIFEST).exists() or (Path(run_dir) / LEGACY).exists()


def read_manifest(run_dir: str | os.PathLike) -> Dict[str, Any]:
    """The verified manifest of ``run_dir``'s checkpoint; ``CheckpointError`` in one line if
    there is none or it is damaged."""
    folder = Path(run_dir)
    path = folder / MANIFEST
    if not path.is_file():
        if (folder / LEGACY).is_file():
            raise CheckpointError(f"{folder / LEGACY} is a checkpoint of an earlier scgrad.rl, which is not "
                                  "loaded (it is a pickle, which can run code): train a new run")
        raise CheckpointError(f"no checkpoint in {folder}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path} is corrupt or unreadable ({type(error).__name__}); the run "
                              "cannot be resumed from it") from None
    _require(isinstance(manifest, dict) and manifest.get("format") == FORMAT,
             f"{path} is not an scgrad.rl checkpoint manifest ({FORMAT})")
    _require(manifest.get("sha256") == _body_hash(manifest), f"{path} is corrupt (its checksum does not match)")
    files = manifest.get("files")
    _require(isinstance(files, dict) and len(files) == 1
             and all(isinstance(n, str) and _PAYLOAD.fullmatch(n) and isinstance(h, str) for n, h in files.items())
             and isinstance(manifest.get("epoch"), int) and isinstance(manifest.get("settings"), dict)
             and isinstance(manifest.get("run"), dict), f"{path} is corrupt (unexpected entries)")
    return manifest


def read_checkpoint(run_dir: str | os.PathLike) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(manifest, state) of ``run_dir``'s checkpoint, both verified; ``CheckpointError`` in one
    line if it is missing, damaged (a checksum differs) or holds anything but plain data.

    A payload deleted between reading the manifest and opening it (a training process
    committed a newer checkpoint meanwhile) is looked up again in the new manifest.
    """
    for _ in range(3):
        manifest = read_manifest(run_dir)
        (name, digest), = manifest["files"].items()
        path = Path(run_dir) / name
        try:
            with open(path, "rb") as f:
                actual = _file_hash(f)
        except FileNotFoundError:
            continue
        except OSError as error:
            raise CheckpointError(f"cannot read {path} ({error.strerror or error})") from None
        _require(actual == digest, f"{path} is corrupt (its SHA-256 differs from the one in {MANIFEST}); "
                                   "the run cannot be resumed from it")
        state = _load_payload(path)
        _require(state.get("epoch") == manifest["epoch"], f"{path} does not belong to {MANIFEST}")
        return manifest, state
    raise CheckpointError(f"the checkpoint in {run_dir} keeps changing or its payload is missing")


def load_checkpoint(run_dir: str | os.PathLike) -> Dict[str, Any]:
    """The state saved in ``run_dir``'s checkpoint (see :func:`read_checkpoint`)."""
    return read_checkpoint(run_dir)[1]


def _file_hash(f: BinaryIO) -> str:
    sha256 = hashlib.sha256()
    for chunk in iter(lambda: f.read(_CHUNK), b""):
        sha256.update(chunk)
    return sha256.hexdigest()


def _load_payload(path: Path) -> Dict[str, Any]:
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if unsafe:
            raise CheckpointError(f"{path} refers to {unsafe.group(1)}, which is not plain data; it was not "
                                  "loaded, since loading it could run code") from None
        raise _corrupt(path, error) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, AttributeError, ImportError,
            TypeError, KeyError, IndexError) as error:
        raise _corrupt(path, error) from None
    _require(isinstance(state, dict) and state.get("format") == FORMAT, f"{path} is not an scgrad.rl checkpoint")
    return state


def _corrupt(path: Path, error: BaseException) -> CheckpointError:
    return CheckpointError(f"checkpoint {path} is corrupt or unreadable "
                           f"({type(error).__name__}: {' '.join(str(error).split())[:200]})")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckpointError(message)


# ------------------------------------------------------------------ random streams
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


def checkpoint_epoch(run_dir: str | os.PathLike) -> Optional[int]:
    """The epoch of ``run_dir``'s committed checkpoint, or ``None`` if it has none (or an
    unreadable one)."""
    return _committed_files(Path(run_dir)).get("epoch")
