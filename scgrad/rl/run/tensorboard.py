"""TensorBoard event files beside progress.csv, under the names CleanRL and SB3 users know.

Optional: written when the ``tensorboard`` package is installed (``torch.utils.tensorboard``
needs it) and the run's settings ask for it; otherwise nothing happens. progress.csv stays the
run's record (resume, plots); the events are a view of the same rows.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, Optional

#: progress.csv column -> TensorBoard tag; other numeric columns go under progress/<Column>
TAGS = {"AverageEpRet": "charts/episodic_return", "EpLen": "charts/episodic_length",
        "TestEpRet": "charts/test_episodic_return", "RunningReward": "charts/running_reward",
        "LossPi": "losses/policy_loss", "LossV": "losses/value_loss", "LossQ": "losses/qf_loss",
        "KL": "losses/approx_kl", "Entropy": "losses/entropy", "ClipFrac": "losses/clipfrac"}
_SKIP = {"Epoch", "Time", "StdEpRet", "MaxEpRet", "MinEpRet"}


def available() -> bool:
    """Whether TensorBoard event files can be written (the ``tensorboard`` package is installed)."""
    try:
        import torch.utils.tensorboard  # noqa: F401  (raises ImportError without the package)
    except ImportError:
        return False
    return True


class TensorBoardLog:
    """Writes each progress row as scalars at step ``row[count]`` into ``folder/tensorboard``.

    Args:
        folder: the run folder (event files go into its ``tensorboard`` folder, which
            ``tensorboard --logdir`` finds from any folder above it).
        count: the progress.csv column of the run's units (the x axis), e.g. TotalEnvInteracts.
    """

    def __init__(self, folder: Path, count: str) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer, self.count = SummaryWriter(log_dir=str(Path(folder) / "tensorboard")), count
        self._last: Optional[tuple] = None  # (units, seconds) of the previous row, for the rate

    def log(self, row: Dict[str, Any]) -> None:
        """Add one epoch's row (plus ``charts/SPS``, units per second since the last row)."""
        step = int(row[self.count])
        for column, value in row.items():
            if column in _SKIP or column == self.count or not isinstance(value, (int, float)):
                continue
            if isinstance(value, float) and not math.isfinite(value):
                continue  # not measured this epoch
            self.writer.add_scalar(TAGS.get(column, f"progress/{column}"), value, step)
        if self._last is not None and row["Time"] > self._last[1]:
            self.writer.add_scalar("charts/SPS", (step - self._last[0]) / (row["Time"] - self._last[1]), step)
        self._last = (step, row["Time"])
        self.writer.flush()

    def close(self) -> None:
        """Close the event file."""
        self.writer.close()
