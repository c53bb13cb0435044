"""The run folder: config.json, progress.csv (Spinning Up's columns), the checkpoint
(``checkpoint.json`` + its payload, see ``checkpoint.py``) and the lock of the process training in it."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from scgrad.rl.errors import CheckpointError, ConfigError
from scgrad.rl.run.checkpoint import fsync_dir, has_checkpoint, remove_leftovers

try:
    import fcntl
except ImportError:  # Windows: no advisory locks (a second process is not kept out)
    fcntl = None

#: Spinning Up's progress columns that apply to every algorithm, in order; an algorithm's extra
#: columns (ClipFrac, StopIter, ...) go between these and Time.
COLUMNS = ["Epoch", "TotalEnvInteracts", "AverageEpRet", "StdEpRet", "MaxEpRet", "MinEpRet",
           "EpLen", "LossPi", "LossV", "KL", "Entropy"]
CONFIG_FILE, PROGRESS_FILE, LOCK_FILE = "config.json", "progress.csv", ".lock"
RUN_KEY = "run"  # config.json's entry for the run options that are not settings (threads)


def episode_stats(returns: Sequence[float], lengths: Sequence[int]) -> Dict[str, float]:
    """Average/Std/Max/Min of the episode returns finished this epoch, and their mean length
    (NaN when no episode finished)."""
    if not returns:
        return {k: math.nan for k in ("AverageEpRet", "StdEpRet", "MaxEpRet", "MinEpRet", "EpLen")}
    r = np.asarray(returns, dtype=np.float64)
    return {"AverageEpRet": float(r.mean()), "StdEpRet": float(r.std()), "MaxEpRet": float(r.max()),
            "MinEpRet": float(r.min()), "EpLen": float(np.mean(lengths))}


def _format(value: Any) -> str:
    if value is None:  # not measured this epoch (an off-policy loss before the first gradient step)
        return "nan"
    if isinstance(value, float):
        return format(value, ".8g")
    return str(value)


class RunFolder:
    """One run's folder. ``path=None`` keeps everything in memory (no files).

    Files: ``config.json`` (``{"algo": ..., **settings, "run": {"threads": ...}}``),
    ``progress.csv`` (one row per epoch, appended and fsynced as it goes), the checkpoint
    (``checkpoint.json`` and its payload, see ``checkpoint.py``) and ``.lock``, which the
    process training in the folder holds (``acquire``) so that no second one can write to it.
    Write failures (a full disk, a read-only folder) are ``CheckpointError``s in one line.
    """

    def __init__(self, path: Optional[str | os.PathLike]) -> None:
        self.path = Path(path) if path is not None else None
        self.rows: List[Dict[str, Any]] = []
        self._columns: Optional[List[str]] = None
        self._lock: Optional[int] = None

    # -------------------------------------------------------------- ownership
    def acquire(self, create: bool) -> None:
        """Take the folder for this process: make it (``create``; else it must hold a run),
        lock it — ``CheckpointError`` if another process holds it — and remove what an
        interrupted write left behind."""
        if self.path is None:
            return
        if create:
            self._mkdir()
        elif not (self.path / CONFIG_FILE).is_file():
            raise CheckpointError(f"{self.path} is not a run folder (no {CONFIG_FILE})")
        self._lock = _lock(self.path)
        with _writing(self.path):
            remove_leftovers(self.path)

    def release(self) -> None:
        """Give the folder's lock back (the lock file stays)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def _mkdir(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise CheckpointError(f"--out {self.path} is a file, not a folder: choose another --out")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CheckpointError(f"cannot create the run folder {self.path} ({error.strerror or error}): "
                                  "choose another --out") from None

    # -------------------------------------------------------------- creation and resume
    def holds_run(self) -> bool:
        """Whether the folder already holds a run (a checkpoint or progress rows)."""
        return self.path is not None and (has_checkpoint(self.path) or (self.path / PROGRESS_FILE).exists())

    def create(self, algo: str, settings: Dict[str, Any], run: Optional[Dict[str, Any]] = None) -> None:
        """Start a fresh run; refuse to overwrite a folder that already holds one."""
        if self.path is None:
            return
        self._mkdir()
        if self.holds_run():
            raise CheckpointError(f"{self.path} already holds a run; resume it with --resume "
                                  f"{self.path} or choose another --out")
        self.write_config(algo, settings, run)

    def write_config(self, algo: str, settings: Dict[str, Any], run: Optional[Dict[str, Any]] = None) -> None:
        """(Re)write config.json atomically: the algorithm, its settings and the run options."""
        if self.path is None:
            return
        record = {"algo": algo, **settings, **({RUN_KEY: run} if run is not None else {})}
        _atomic_write(self.path / CONFIG_FILE, json.dumps(record, indent=2) + "\n")

    def check_resume(self, algo: str, settings: Dict[str, Any], length: str = "steps") -> None:
        """Check that config.json holds the same algorithm and settings (only the run's length,
        the setting named ``length``, may change, to extend or shorten the run)."""
        assert self.path is not None
        saved_algo, saved = read_config(self.path)
        if saved_algo != algo:
            raise CheckpointError(f"{self.path} holds a {saved_algo} run, not {algo}")
        changed = [f"{k}={settings.get(k)!r} (the run has {saved.get(k)!r})"
                   for k in sorted(set(saved) | set(settings)) if k != length and saved.get(k) != settings.get(k)]
        if changed:
            raise CheckpointError(f"cannot resume {self.path} with different settings: {'; '.join(changed)}")

    def reopen(self, epoch: int) -> None:
        """Continue a run whose checkpoint holds ``epoch`` epochs: drop later (or torn) rows;
        ``CheckpointError`` if a kept row holds something other than numbers."""
        assert self.path is not None
        file = self.path / PROGRESS_FILE
        kept = [row for row in read_progress(self.path) if 0 < _int(row.get("Epoch")) <= epoch]
        if len(kept) != epoch:
            raise CheckpointError(f"{file} has {len(kept)} rows up to epoch {epoch} of the checkpoint; "
                                  "the run folder is inconsistent")
        for number, row in enumerate(kept, 1):
            _check_numeric(row, number, file)
        self._columns = list(kept[0].keys()) if kept else None
        self.rows = kept
        text = io.StringIO()
        if kept:
            writer = csv.DictWriter(text, fieldnames=self._columns)
            writer.writeheader()
            writer.writerows(kept)
        _atomic_write(file, text.getvalue())

    # -------------------------------------------------------------- logging
    def log(self, row: Dict[str, Any]) -> None:
        """Append one epoch's row to progress.csv (the first row fixes the columns) and fsync it."""
        if self._columns is None:
            extras = [k for k in row if k not in COLUMNS and k != "Time"]
            self._columns = [*[c for c in COLUMNS if c in row], *extras, "Time"]
        missing = set(self._columns) ^ set(row)
        if missing:
            raise ValueError(f"progress row columns differ from the header: {sorted(missing)}")
        cells = {k: _format(row[k]) for k in self._columns}
        self.rows.append(cells)
        if self.path is None:
            return
        target = self.path / PROGRESS_FILE
        new = not target.exists() or target.stat().st_size == 0
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=self._columns)
        if new:
            writer.writeheader()
        writer.writerow(cells)
        with _writing(target), open(target, "a", newline="") as f:
            f.write(text.getvalue())  # one write per row: a kill tears at most the last line
            f.flush()
            os.fsync(f.fileno())
        if new:
            with _writing(self.path):
                fsync_dir(self.path)


def say(message: str) -> None:
    """One line for the user on stderr (what the command line prints for errors too)."""
    print(f"scgrad.rl: {message}", file=sys.stderr)


def read_config(path: str | os.PathLike) -> Tuple[str, Dict[str, Any]]:
    """(algorithm name, settings) from a run folder's config.json; ``CheckpointError`` if it is
    absent or not an object with a string ``algo``. The run options are left out
    (``read_run_options``); the settings are checked by the algorithm's config class."""
    algo, settings, _ = _read_config_file(path)
    return algo, settings


def read_run_options(path: str | os.PathLike) -> Dict[str, Any]:
    """The run options recorded in config.json (``{"threads": N}``; empty for older runs)."""
    return _read_config_file(path)[2]


def _read_config_file(path: str | os.PathLike) -> Tuple[str, Dict[str, Any], Dict[str, Any]]:
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise CheckpointError(f"{path} is not a run folder (no {CONFIG_FILE})")
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("algo"), str):
        raise CheckpointError(f"{file} is corrupt (expected a JSON object with an 'algo' name): "
                              "restore it or train a new run")
    run = data.pop(RUN_KEY, {})
    threads = run.get("threads", 1) if isinstance(run, dict) else None
    if not (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1):
        raise CheckpointError(f"{file} is corrupt ('{RUN_KEY}' must be an object with threads >= 1, "
                              f"got {_short(repr(run))}): restore it")
    return data.pop("algo"), data, run


def other_protocol(recorded: str, given: str) -> bool:
    """Whether ``given`` is ``recorded``'s Atari game under the other ALE protocol (v4/v5)."""
    from scgrad.rl.atari_ids import parse_atari_id

    a, b = parse_atari_id(recorded), parse_atari_id(given)
    return a is not None and b is not None and a[0] == b[0] and {a[1], b[1]} <= {"v4", "v5"}


def config_error(path: str | os.PathLike, error: ConfigError) -> ConfigError:
    """A settings error found in a run folder's config.json, naming the file and the fix."""
    return ConfigError(f"{Path(path) / CONFIG_FILE}: {error}; restore the file or train a new run")


def check_env_id(path: str | os.PathLike, recorded: str, given: Optional[str]) -> None:
    """Treat the environment id in a run folder as data: a ``module:Env`` id (which imports
    ``module``, possibly from the current folder) is used only if the user gives the same id
    (``--env``); a given id must equal the recorded one, or be the same Atari game under the
    other ALE protocol (``PongNoFrameskip-v4`` ↔ ``ALE/Pong-v5``: the same screens and actions,
    with or without sticky actions), to evaluate an agent under either."""
    if given is not None and given != recorded and not other_protocol(recorded, given):
        raise CheckpointError(f"--env {given} is not the environment of the run in {path} ({recorded})")
    if ":" in recorded and given != recorded:
        raise CheckpointError(f"{Path(path) / CONFIG_FILE} names the environment '{_short(recorded, 80)}', which "
                              f"imports a module: pass --env {_short(recorded, 80)} to allow it")


def read_progress(path: str | os.PathLike) -> List[Dict[str, str]]:
    """The complete rows of a run folder's progress.csv (a torn last line is dropped);
    ``CheckpointError`` if it is not a readable CSV text file."""
    file = Path(path) / PROGRESS_FILE
    if not file.is_file():
        return []
    try:
        with open(file, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as error:
        raise CheckpointError(f"{file} is not a readable CSV file ({type(error).__name__}): restore it "
                              "or train a new run") from None
    except OSError as error:
        raise CheckpointError(f"cannot read {file} ({error.strerror or error})") from None
    return [row for row in rows if None not in row.values() and None not in row]


def _check_numeric(row: Dict[str, str], number: int, file: Path) -> None:
    for column, cell in row.items():
        try:
            float(cell)
        except (TypeError, ValueError):
            raise CheckpointError(f"{file}, data row {number}: {column} is {_short(repr(cell))}, not a number; "
                                  "restore the file or train a new run") from None


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _int(text: Optional[str]) -> int:
    try:
        return int(text) if text is not None else -1
    except ValueError:
        return -1


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Turns an ``OSError`` while writing to ``path`` into a one-line ``CheckpointError``."""
    try:
        yield
    except OSError as error:
        raise CheckpointError(f"cannot write {path} ({error.strerror or error})") from None


def _atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: a temporary file, fsynced, renamed, then the folder fsynced."""
    tmp = path.with_name(f".{path.name}.tmp")
    with _writing(path):
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)


def _lock(path: Path) -> Optional[int]:
    """An exclusive lock on ``path/.lock`` (its file descriptor, holding our pid), or
    ``CheckpointError`` naming the process that holds it."""
    if fcntl is None:
        return None
    with _writing(path / LOCK_FILE):
        fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise CheckpointError(f"{path} is in use by another process (pid {holder}); wait for it to end "
                              "or stop it") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd
