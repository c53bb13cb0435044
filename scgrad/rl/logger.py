"""The run folder: config.json, progress.csv (Spinning Up's columns) and the checkpoint path."""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import CheckpointError

#: Spinning Up's progress columns that apply to every algorithm, in order; an algorithm's extra
#: columns (ClipFrac, StopIter, ...) go between these and Time.
COLUMNS = ["Epoch", "TotalEnvInteracts", "AverageEpRet", "StdEpRet", "MaxEpRet", "MinEpRet",
           "EpLen", "LossPi", "LossV", "KL", "Entropy"]
CONFIG_FILE, PROGRESS_FILE, CHECKPOINT_FILE = "config.json", "progress.csv", "checkpoint.pt"


def episode_stats(returns: Sequence[float], lengths: Sequence[int]) -> Dict[str, float]:
    """Average/Std/Max/Min of the episode returns finished this epoch, and their mean length
    (NaN when no episode finished)."""
    if not returns:
        return {k: math.nan for k in ("AverageEpRet", "StdEpRet", "MaxEpRet", "MinEpRet", "EpLen")}
    r = np.asarray(returns, dtype=np.float64)
    return {"AverageEpRet": float(r.mean()), "StdEpRet": float(r.std()), "MaxEpRet": float(r.max()),
            "MinEpRet": float(r.min()), "EpLen": float(np.mean(lengths))}


def _format(value: Any) -> str:
    if isinstance(value, float):
        return format(value, ".8g")
    return str(value)


class RunFolder:
    """One run's folder. ``path=None`` keeps everything in memory (no files).

    Files: ``config.json`` (``{"algo": ..., **settings}``), ``progress.csv`` (one row per
    epoch, appended and flushed as it goes) and ``checkpoint.pt`` (see ``checkpoint.py``).
    """

    def __init__(self, path: Optional[str | os.PathLike]) -> None:
        self.path = Path(path) if path is not None else None
        self.rows: List[Dict[str, Any]] = []
        self._columns: Optional[List[str]] = None

    # -------------------------------------------------------------- creation and resume
    def create(self, algo: str, settings: Dict[str, Any]) -> None:
        """Start a fresh run; refuse to overwrite a folder that already holds one."""
        if self.path is None:
            return
        if (self.path / CHECKPOINT_FILE).exists() or (self.path / PROGRESS_FILE).exists():
            raise CheckpointError(f"{self.path} already holds a run; resume it with --resume "
                                  f"{self.path} or choose another --out")
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / CONFIG_FILE).write_text(json.dumps({"algo": algo, **settings}, indent=2) + "\n")

    def check_resume(self, algo: str, settings: Dict[str, Any]) -> None:
        """Check that the run in this folder has the same algorithm and settings (only
        ``steps`` may change, to extend or shorten it) and record the new ``steps``."""
        assert self.path is not None
        saved_algo, saved = read_config(self.path)
        if saved_algo != algo:
            raise CheckpointError(f"{self.path} holds a {saved_algo} run, not {algo}")
        changed = [f"{k}={settings.get(k)!r} (the run has {saved.get(k)!r})"
                   for k in sorted(set(saved) | set(settings)) if k != "steps" and saved.get(k) != settings.get(k)]
        if changed:
            raise CheckpointError(f"cannot resume {self.path} with different settings: {'; '.join(changed)}")
        _atomic_write(self.path / CONFIG_FILE, json.dumps({"algo": algo, **settings}, indent=2) + "\n")

    def reopen(self, epoch: int) -> None:
        """Continue a run whose checkpoint holds ``epoch`` epochs: drop later (or torn) rows."""
        assert self.path is not None
        kept = [row for row in read_progress(self.path) if 0 < _int(row.get("Epoch")) <= epoch]
        if len(kept) != epoch:
            raise CheckpointError(f"{self.path / PROGRESS_FILE} has {len(kept)} rows up to epoch "
                                  f"{epoch} of the checkpoint; the run folder is inconsistent")
        self._columns = list(kept[0].keys()) if kept else None
        self.rows = kept
        text = io.StringIO()
        if kept:
            writer = csv.DictWriter(text, fieldnames=self._columns)
            writer.writeheader()
            writer.writerows(kept)
        _atomic_write(self.path / PROGRESS_FILE, text.getvalue())

    @property
    def checkpoint_path(self) -> Optional[Path]:
        """Where the run's checkpoint lives; none for a run without a folder."""
        return None if self.path is None else self.path / CHECKPOINT_FILE

    # -------------------------------------------------------------- logging
    def log(self, row: Dict[str, Any]) -> None:
        """Append one epoch's row to progress.csv (the first row fixes the columns)."""
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
        with open(target, "a", newline="") as f:
            f.write(text.getvalue())  # one write per row: a kill tears at most the last line


def read_config(path: str | os.PathLike) -> Tuple[str, Dict[str, Any]]:
    """(algorithm name, settings) from a run folder's config.json; ``CheckpointError`` if absent."""
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise CheckpointError(f"{path} is not a run folder (no {CONFIG_FILE})")
    try:
        data = json.loads(file.read_text())
        return data.pop("algo"), data
    except (ValueError, KeyError, AttributeError, TypeError):
        raise CheckpointError(f"{file} is corrupt (expected a JSON object with an 'algo' key)") from None


def read_progress(path: str | os.PathLike) -> List[Dict[str, str]]:
    """The complete rows of a run folder's progress.csv (a torn last line is dropped)."""
    file = Path(path) / PROGRESS_FILE
    if not file.is_file():
        return []
    with open(file, newline="") as f:
        rows = list(csv.DictReader(f))
    return [row for row in rows if None not in row.values() and None not in row]


def _int(text: Optional[str]) -> int:
    try:
        return int(text) if text is not None else -1
    except ValueError:
        return -1


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
