"""Resume: a run stopped (or killed) after some epochs and resumed equals an uninterrupted one;
a NaN stops training and keeps the last good checkpoint."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from scgrad.rl.run.checkpoint import load_checkpoint
from scgrad.rl.errors import CheckpointError, TrainingDiverged
from scgrad.rl.algos.ppo import ppo
from scgrad.rl.algos.trpo import trpo
from scgrad.rl.algos.vpg import vpg

HERE = Path(__file__).parent
SMALL = {
    # random minibatches, Discrete actions
    "ppo": (ppo, "CartPole-v1", dict(steps=2000, steps_per_epoch=400, num_envs=4, update_epochs=3,
                                     minibatch_size=100, anneal_lr=True)),
    # Box actions, observation normaliser, environment RNG (Pendulum's initial states)
    "vpg": (vpg, "Pendulum-v1", dict(steps=1000, steps_per_epoch=200, num_envs=2, normalize_obs=True,
                                     train_v_iters=5)),
    "trpo": (trpo, "CartPole-v1", dict(steps=1200, steps_per_epoch=300, num_envs=3, train_v_iters=5)),
}


def progress_without_time(path):
    with open(Path(path) / "progress.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "Time"} for row in csv.DictReader(f)]


@pytest.mark.parametrize("name", list(SMALL))
def test_stop_and_resume_equals_uninterrupted(name, tmp_path, cpu_threads):
    train, env, settings = SMALL[name]
    whole = train(env, tmp_path / "whole", **settings)
    part = train(env, tmp_path / "part", stop_after=2, **settings)
    assert part.stopped_early and len(part.progress) == 2
    resumed = train(env, tmp_path / "part", resume=True, **settings)
    assert progress_without_time(tmp_path / "part") == progress_without_time(tmp_path / "whole")
    for a, b in zip(whole.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_resume_refuses_changed_settings(tmp_path):
    train, env, settings = SMALL["trpo"]
    train(env, tmp_path / "run", stop_after=1, **settings)
    with pytest.raises(CheckpointError, match="different settings: delta"):
        train(env, tmp_path / "run", resume=True, **{**settings, "delta": 0.05})


def test_nan_stops_training_and_keeps_last_good_checkpoint(tmp_path):
    # NaNAfter-v0 rewards NaN from its 301st step: epoch 4 (100 steps each) sees it
    with pytest.raises(TrainingDiverged, match="epoch 4: .*last good checkpoint is kept"):
        ppo("NaNAfter-v0", tmp_path, steps=1000, steps_per_epoch=100, update_epochs=2)
    assert load_checkpoint(tmp_path)["epoch"] == 3
    assert len(progress_without_time(tmp_path)) == 3


def run_cli(*args, **kwargs):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "scgrad.rl", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def assert_killed_run_resumes_to_the_same_progress(tmp_path, flags, max_rows_at_kill):
    """Train ``flags`` (a ``train`` command line) whole, and again SIGKILLed after three epochs
    and resumed: the two progress.csv files must agree (Time aside)."""
    whole = run_cli(*flags, "--out", tmp_path / "whole")
    assert whole.wait(timeout=300) == 0, whole.stderr.read()
    killed = run_cli(*flags, "--out", tmp_path / "killed")
    progress = tmp_path / "killed" / "progress.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not progress.exists() or len(progress.read_text().splitlines()) < 4):
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    rows_at_kill = len(progress.read_text().splitlines()) - 1
    assert 3 <= rows_at_kill < max_rows_at_kill, "the run should have been killed midway"
    resumed = run_cli("train", "--resume", tmp_path / "killed", "--no-progress")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert progress_without_time(tmp_path / "killed") == progress_without_time(tmp_path / "whole")


def test_killed_cli_run_resumes_to_the_same_progress(tmp_path):
    flags = ["train", "ppo", "--env", "CartPole-v1", "--steps", "6000", "--steps_per_epoch", "300",
             "--num_envs", "3", "--update_epochs", "4", "--minibatch_size", "100", "--no-progress"]
    assert_killed_run_resumes_to_the_same_progress(tmp_path, flags, max_rows_at_kill=20)
