"""Learning curves from run folders: mean ± std over the runs (seeds) of each algorithm and
environment."""
from __future__ import annotations

import os
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .errors import CheckpointError, RLError
from .logger import PROGRESS_FILE, read_config, read_progress


def find_runs(paths: Sequence[str | os.PathLike]) -> List[Path]:
    """Run folders (holding progress.csv) at or below each path; ``CheckpointError`` for a
    path without any."""
    runs: List[Path] = []
    for path in map(Path, paths):
        found = sorted(p.parent for p in path.rglob(PROGRESS_FILE)) if path.is_dir() else []
        if not found:
            raise CheckpointError(f"{path} holds no run (no {PROGRESS_FILE} in it or below it)")
        runs += found
    return runs


def curves(runs: Sequence[Path], x: str = "TotalEnvInteracts",
           y: str = "AverageEpRet") -> Dict[str, Tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """label ("algo env") -> (x [E], mean of y over runs [E], std [E], number of runs).

    Runs of one label are cut to the shortest; epochs where no episode ended (NaN) are
    skipped in the mean.
    """
    grouped: Dict[str, List[List[Dict[str, str]]]] = defaultdict(list)
    for run in runs:
        algo, settings = read_config(run)
        rows = read_progress(run)
        if rows and (x not in rows[0] or y not in rows[0]):
            raise RLError(f"{run / PROGRESS_FILE} has no column '{x}' or '{y}'")
        if rows:
            grouped[f"{algo} {settings.get('env', '?')}"].append(rows)
    result = {}
    for label, group in grouped.items():
        length = min(len(rows) for rows in group)
        xs = np.array([float(r[x]) for r in group[0][:length]])
        ys = np.array([[float(r[y]) for r in rows[:length]] for rows in group])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an epoch where no run ended an episode
            result[label] = (xs, np.nanmean(ys, 0), np.nanstd(ys, 0), len(group))
    return result


def plot(paths: Sequence[str | os.PathLike], out: str | os.PathLike = "learning_curves.png",
         y: str = "AverageEpRet") -> Path:
    """Draw each algorithm/environment's mean ± std curve over its runs into ``out``."""
    try:
        import matplotlib
        matplotlib.use("Agg")  # files only; no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise RLError("plot needs matplotlib: pip install matplotlib") from None
    data = curves(find_runs(paths), y=y)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, (xs, mean, std, n) in sorted(data.items()):
        ax.plot(xs, mean, label=f"{label} ({n} run{'s' if n > 1 else ''})")
        ax.fill_between(xs, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("environment interactions")
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return Path(out)

