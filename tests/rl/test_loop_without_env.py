"""The run machinery with no environment: a supervised loop gets the run folder, checkpoints,
exact resume and progress.csv (what the hard-attention example uses)."""
from __future__ import annotations

import dataclasses
import io

import pytest
import torch
from torch import nn

from scgrad.rl.errors import CheckpointError, TrainingDiverged
from scgrad.rl.run.folder import read_config, read_progress
from scgrad.rl.run.loop import Training, run
from scgrad.rl.run.progress import ProgressBar


@dataclasses.dataclass
class Settings:
    examples: int = 96
    batch: int = 32
    lr: float = 0.1
    checkpoint_every: int = 1

    def to_dict(self):
        return dataclasses.asdict(self)


def regression(s: Settings, lr_scale: float = 1.0) -> Training:
    """Fit y = 3x with SGD, one minibatch of fresh random data per epoch."""
    torch.manual_seed(0)
    model = nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=s.lr * lr_scale)

    def epoch(i, start, stop):
        x = torch.randn(stop - start, 1)
        loss = (model(x) - 3 * x).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"Loss": loss.item()}

    return Training("regression", s, s.examples, s.batch, model, {"model": model, "optimizer": optimizer},
                    epoch, count="Examples", length="examples")


def test_a_supervised_run_writes_its_folder_and_resumes_exactly(tmp_path, cpu_threads):
    whole_rows, _ = run(regression(Settings()), tmp_path / "whole")
    run(regression(Settings()), tmp_path / "cut", stop_after=1)
    torch.manual_seed(123)  # the checkpoint's random streams, not this, must drive the rest
    resumed_rows, stopped = run(regression(Settings()), tmp_path / "cut", resume=True)
    assert not stopped
    drop = lambda rows: [{k: v for k, v in r.items() if k != "Time"} for r in rows]  # noqa: E731
    assert drop(read_progress(tmp_path / "cut")) == drop(read_progress(tmp_path / "whole"))
    assert [r["Examples"] for r in read_progress(tmp_path / "cut")] == ["32", "64", "96"]
    assert "AverageEpRet" not in read_progress(tmp_path / "cut")[0]  # no episodes, no episode columns
    assert read_config(tmp_path / "cut") == ("regression", Settings().to_dict())


def test_a_resume_may_change_only_the_length_setting(tmp_path, cpu_threads):
    run(regression(Settings()), tmp_path, stop_after=1)
    rows, _ = run(regression(Settings(examples=128)), tmp_path, resume=True)
    assert rows[-1]["Examples"] == "128"
    with pytest.raises(CheckpointError, match="lr=0.2"):
        run(regression(Settings(examples=128, lr=0.2)), tmp_path, resume=True)


def test_a_diverging_supervised_run_keeps_its_last_checkpoint(tmp_path, cpu_threads):
    with pytest.raises(TrainingDiverged, match=r"became NaN or infinite.*last good checkpoint is kept"):
        run(regression(Settings(examples=3200), lr_scale=1e6), tmp_path)


def test_the_progress_bar_counts_the_runs_units():
    stream = io.StringIO()
    bar = ProgressBar(100, stream=stream, unit="Examples")
    bar.update(100)
    assert "100/100 examples" in stream.getvalue() and "examples/s" in stream.getvalue()


def test_a_run_stops_at_its_goal_with_that_epoch_checkpointed(tmp_path, cpu_threads):
    """``until``: checked after each epoch; the first epoch it holds is the last, checkpointed."""
    epochs = []
    training = regression(Settings(examples=320))
    inner = training.epoch
    training.epoch = lambda i, start, stop: (epochs.append(i), inner(i, start, stop))[1]
    rows, stopped = run(training, tmp_path, until=lambda: len(epochs) == 3)
    assert stopped and [r["Epoch"] for r in rows] == ["1", "2", "3"]
    from scgrad.rl.run.checkpoint import read_checkpoint
    assert read_checkpoint(tmp_path)[0]["epoch"] == 3
    rows, stopped = run(regression(Settings(examples=320)), tmp_path / "never", until=lambda: False)
    assert not stopped and len(rows) == 10
