"""Learning curves from run folders: mean ± std over the runs (seeds) of each algorithm and
environment."""
from __future__ import annotations

import os
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from scgrad.rl.errors import CheckpointError, RLError
from scgrad.rl.run.folder import PROGRESS_FILE, read_config, read_progress
from scgrad.rl.run.outputs import check_output_file


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
    skipped in the mean. A progress.csv that is not text, lacks ``x`` or ``y`` or holds a
    cell that is not a number is an ``RLError`` naming the file.
    """
    grouped: Dict[str, List[Tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for run in runs:
        algo, settings = read_config(run)
        rows = read_progress(run)  # CheckpointError for a file that is not CSV text
        if rows:
            grouped[f"{algo} {settings['env']}" if "env" in settings else algo].append(
                (_column(rows, x, run / PROGRESS_FILE), _column(rows, y, run / PROGRESS_FILE)))
    result = {}
    for label, group in grouped.items():
        length = min(len(xs) for xs, _ in group)
        ys = np.stack([ys[:length] for _, ys in group])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an epoch where no run ended an episode
            result[label] = (group[0][0][:length], np.nanmean(ys, 0), np.nanstd(ys, 0), len(group))
    return result


def _column(rows: List[Dict[str, str]], name: str, file: Path) -> np.ndarray:
    if name not in rows[0]:
        raise RLError(f"{file} has no column '{name}'; its columns: {_shorten(', '.join(rows[0]))}")
    values = []
    for number, row in enumerate(rows, 1):
        try:
            values.append(float(row[name]))
        except ValueError:
            raise RLError(f"{file}, data row {number}: {name} is {_shorten(repr(row[name]))}, "
                          "not a number") from None
    return np.array(values)


def _shorten(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def plot(paths: Sequence[str | os.PathLike], out: str | os.PathLike = "learning_curves.png",
         y: str = "AverageEpRet", x: str = "TotalEnvInteracts") -> Path:
    """Draw each algorithm/environment's mean ± std curve over its runs into ``out``, a file
    whose extension names a format matplotlib writes (.png, .pdf, .svg, ...). The file name is
    checked before the runs are read. ``x`` and ``y`` are progress.csv columns (``x``: e.g.
    Episodes for a run that counts games)."""
    try:
        import matplotlib
        matplotlib.use("Agg")  # files only; no display needed
        import matplotlib.pyplot as plt
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise RLError("plot needs matplotlib: pip install matplotlib") from None
    out = check_output_file(out, FigureCanvasBase.get_supported_filetypes(), "--out")
    data = curves(find_runs(paths), x=x, y=y)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, (xs, mean, std, n) in sorted(data.items()):
        ended = np.isfinite(mean)  # epochs in which no episode ended are stepped over, not gaps
        xs, mean, std = xs[ended], mean[ended], std[ended]
        ax.plot(xs, mean, label=f"{label} ({n} run{'s' if n > 1 else ''})")
        ax.fill_between(xs, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("environment interactions" if x == "TotalEnvInteracts" else x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        fig.savefig(out, dpi=120)
    except OSError as error:  # a full disk, a folder that turned read-only
        raise RLError(f"--out {out}: cannot write it ({error.strerror or error})") from None
    finally:
        plt.close(fig)
    return out
