"""DDPG, TD3 and SAC keep part 1's contract: the command line (train, eval, plot, --resume),
run folders, and resume equal to an uninterrupted run. Tiny networks and step counts."""
import re

import pytest
import torch

from scgrad.rl.run.checkpoint import load_checkpoint
from scgrad.rl.algos.ddpg import ddpg
from scgrad.rl.run.folder import read_progress
NOT_MEASURED = "nan"  # progress.csv's cell for a loss not measured in an epoch
from scgrad.rl.algos.sac import sac
from scgrad.rl.algos.td3 import td3

from .test_cli import assert_one_line_error, cli  # noqa: F401  (cli is a fixture)
from .test_resume import assert_killed_run_resumes_to_the_same_progress, progress_without_time

ALGOS = {"ddpg": ddpg, "td3": td3, "sac": sac}
TINY = ["--env", "Pendulum-v1", "--steps", "400", "--steps_per_epoch", "200", "--hidden_sizes", "32,32",
        "--batch_size", "32", "--start_steps", "100", "--update_after", "100", "--update_every", "50",
        "--num_test_episodes", "2", "--no-progress"]
# a replay buffer smaller than the run (it wraps before the stop), TD3's delay across update
# rounds and epochs, two environments for SAC
RESUME = dict(steps=800, steps_per_epoch=200, hidden_sizes=(32, 32), batch_size=32, replay_size=300,
              start_steps=200, update_after=100, update_every=50, num_test_episodes=1)
RESUME_EXTRA = {"ddpg": {}, "td3": dict(policy_delay=3), "sac": dict(num_envs=2)}


@pytest.mark.parametrize("algo", list(ALGOS))
def test_train_eval_resume_and_plot_through_the_command_line(cli, tmp_path, algo):  # noqa: F811
    run = tmp_path / algo
    status, out, err = cli("train", algo, *TINY, "--out", run)
    assert status == 0, err
    assert out.strip().endswith(f"run folder: {run}")
    rows = read_progress(run)
    assert [r["TotalEnvInteracts"] for r in rows] == ["200", "400"]
    extras = {"sac": ["LogPi", "Alpha"]}.get(algo, [])
    assert list(rows[0])[:8] == ["Epoch", "TotalEnvInteracts", "AverageEpRet", "StdEpRet", "MaxEpRet", "MinEpRet",
                                 "EpLen", "LossPi"]
    assert list(rows[0])[8:] == ["LossQ", "QVals", *extras, "TestEpRet", "Time"]
    assert all(float(r["TestEpRet"]) < 0 for r in rows)  # Pendulum's returns are negative

    status, out, _ = cli("eval", run, "--episodes", "2")
    lines = out.strip().splitlines()
    assert status == 0 and len(lines) == 3 and re.fullmatch(r"mean_return=\S+ std_return=\S+ episodes=2", lines[-1])
    assert cli("eval", run, "--episodes", "1", "--stochastic")[0] == 0

    # extend the run: "--steps 600" as two tokens (the 600 is the flag's value, not an ALGO)
    status, _, err = cli("train", "--resume", run, "--steps", "600", "--no-progress")
    assert status == 0, err
    assert [r["Epoch"] for r in read_progress(run)] == ["1", "2", "3"]

    pytest.importorskip("matplotlib")
    png = tmp_path / "curve.png"
    assert cli("plot", run, "--out", png, "--value", "TestEpRet")[0] == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("name", list(ALGOS))
def test_stop_and_resume_equals_uninterrupted(name, tmp_path, cpu_threads):
    train, settings = ALGOS[name], {**RESUME, **RESUME_EXTRA[name]}
    whole = train("Pendulum-v1", tmp_path / "whole", **settings)
    part = train("Pendulum-v1", tmp_path / "part", stop_after=2, **settings)
    assert part.stopped_early and len(part.progress) == 2
    assert load_checkpoint(tmp_path / "part")["replay"]["size"] == 300  # full, wrapped
    resumed = train("Pendulum-v1", tmp_path / "part", resume=True, **settings)
    assert progress_without_time(tmp_path / "part") == progress_without_time(tmp_path / "whole")
    for (key, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)


def test_resume_without_the_buffer_refills_it(tmp_path, cpu_threads):
    settings = {**RESUME, "update_after": 300, "save_buffer": False}
    sac("Pendulum-v1", tmp_path, stop_after=2, **settings)
    assert load_checkpoint(tmp_path)["replay"]["data"] is None
    result = sac("Pendulum-v1", tmp_path, resume=True, **settings)
    losses = [row["LossQ"] for row in result.progress]
    # epoch 2 learned from a buffer of 400; after the resume the buffer restarts empty, so
    # epoch 3 (200 transitions < update_after) takes no gradient step
    assert losses[1] != NOT_MEASURED and losses[2] == NOT_MEASURED and losses[3] != NOT_MEASURED


def test_killed_cli_run_resumes_to_the_same_progress(tmp_path):
    flags = ["train", "sac", *TINY, "--steps", "2400", "--no-progress"]
    assert_killed_run_resumes_to_the_same_progress(tmp_path, flags, max_rows_at_kill=12)


@pytest.mark.parametrize("args, pattern", [
    (["train", "sac", "--env", "CartPole-v1"], "need a Box"),
    (["train", "td3", "--env", "Pendulum-v1", "--polyak", "1.5"], r"polyak must be in \[0, 1\]"),
    (["train", "ddpg", "--env", "Pendulum-v1", "--normalize_obs", "true"], "normalize_obs is not supported"),
    (["train", "sac", "--env", "Pendulum-v1", "--alpha", "-1"], "alpha must be > 0 or none"),
])
def test_bad_off_policy_input(cli, tmp_path, args, pattern):  # noqa: F811
    status, _, err = cli(*args, "--out", tmp_path / "run")
    assert_one_line_error(status, err, pattern)
    assert not (tmp_path / "run" / "checkpoint.json").exists()


def test_help_lists_the_off_policy_settings(cli):  # noqa: F811
    status, out, _ = cli("train", "sac", "--help")
    assert status == 0
    for flag in ("--alpha", "--target_entropy", "--alpha_lr", "--polyak", "--replay_size", "--save_buffer",
                 "--update_every", "--start_steps", "--num_test_episodes"):
        assert flag in out
    assert "entropy the policy should keep" in " ".join(out.split())
    assert "--policy_delay" in cli("train", "td3", "--help")[1]
