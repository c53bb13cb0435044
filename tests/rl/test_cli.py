"""The command line: train, eval, plot, and one clear line (no traceback) for bad input."""
import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scgrad.rl.run.checkpoint import load_checkpoint
from scgrad.rl.cli import main

HERE = Path(__file__).parent
TINY = ["--steps", "800", "--steps_per_epoch", "400", "--num_envs", "2", "--update_epochs", "2", "--no-progress"]


@pytest.fixture
def cli(capsys, cpu_threads):
    """Run the command line in-process: (exit status, stdout, stderr)."""
    def run(*args):
        status = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return status, out, err
    return run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tiny PPO run folders (two seeds, for plotting), shared by the tests below."""
    import torch
    root, threads = tmp_path_factory.mktemp("runs"), torch.get_num_threads()
    for seed in (0, 1):
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["train", "ppo", "--env", "CartPole-v1", "--seed", str(seed), "--out",
                         str(root / f"s{seed}"), "--threads", "1", *TINY]) == 0
    torch.set_num_threads(threads)
    return root


def assert_one_line_error(status, err, pattern):
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.search(pattern, lines[0]), lines[0]


@pytest.mark.parametrize("args, pattern", [
    (["train", "ppo", "--env", "NoSuchEnv-v0"], "cannot make environment 'NoSuchEnv-v0'"),
    (["train", "ppo", "--env", "Blackjack-v1"], "observation space .* not supported"),
    (["train", "ppo", "--env", "toy_envs:Missing-v0"], "cannot make environment"),
    (["train", "ppo", "--pi_lr", "-0.001"], "pi_lr must be > 0"),
    (["train", "trpo", "--vf-lr", "-1"], "vf_lr must be > 0"),
    (["train", "vpg", "--gamma", "1.5"], r"gamma must be in \[0, 1\]"),
    (["train", "ppo", "--gamma", "-0.1"], r"gamma must be in \[0, 1\]"),
    (["train", "ppo", "--pi_lr", "fast"], "--pi_lr: expected a number"),
    (["train", "a2c"], "unknown algorithm 'a2c'"),
    (["train"], "train needs an algorithm"),
])
def test_bad_training_input(cli, tmp_path, args, pattern):
    status, _, err = cli(*args, "--out", tmp_path / "run")
    assert_one_line_error(status, err, pattern)
    assert not (tmp_path / "run" / "checkpoint.json").exists()


def test_missing_and_corrupt_checkpoints(cli, trained, tmp_path):
    assert_one_line_error(*cli("eval", tmp_path / "nowhere")[::2], "not a run folder")
    assert_one_line_error(*cli("train", "--resume", tmp_path / "nowhere")[::2], "not a run folder")
    run = tmp_path / "copy"
    run.mkdir()
    (run / "config.json").write_text((trained / "s0" / "config.json").read_text())
    assert_one_line_error(*cli("eval", run)[::2], "no checkpoint")
    (run / "checkpoint.json").write_bytes(b"\x00garbage")
    assert_one_line_error(*cli("eval", run)[::2], "corrupt")
    (run / "progress.csv").write_text((trained / "s0" / "progress.csv").read_text())
    assert_one_line_error(*cli("train", "--resume", run)[::2], "corrupt")
    (run / "config.json").write_text("{not json")
    assert_one_line_error(*cli("eval", run)[::2], "config.json is corrupt")


def test_existing_run_is_not_overwritten(cli, trained):
    assert_one_line_error(*cli("train", "ppo", "--out", trained / "s0", *TINY)[::2], "already holds a run")


def test_nan_loss_stops_with_a_message_and_keeps_the_checkpoint(cli, tmp_path):
    status, _, err = cli("train", "ppo", "--env", "toy_envs:NaNAfter-v0", "--out", tmp_path, "--steps", "1000",
                         "--steps_per_epoch", "100", "--update_epochs", "2", "--no-progress")
    assert_one_line_error(status, err, "epoch 4: .*NaN.*last good checkpoint is kept")
    assert load_checkpoint(tmp_path)["epoch"] == 3


def test_eval_prints_returns_and_summary(cli, trained):
    status, out, _ = cli("eval", trained / "s0", "--episodes", "3")
    lines = out.strip().splitlines()
    assert status == 0 and len(lines) == 4
    assert all(re.fullmatch(r"episode \d: return=\d+\.\d+", line) for line in lines[:3])
    match = re.fullmatch(r"mean_return=(\S+) std_return=(\S+) episodes=(\d+)", lines[-1])
    assert match and int(match.group(3)) == 3
    returns = [float(line.split("=")[1]) for line in lines[:3]]
    assert float(match.group(1)) == pytest.approx(sum(returns) / 3, abs=1e-3)
    # deterministic by default: the same episodes again give the same returns
    assert cli("eval", trained / "s0", "--episodes", "3")[1] == out


def test_eval_video(cli, trained, tmp_path):
    video = tmp_path / "episode.mp4"
    status, out, err = cli("eval", trained / "s0", "--episodes", "1", "--video", video)
    try:
        import imageio_ffmpeg  # noqa: F401
        import pygame  # noqa: F401
    except ImportError:
        assert_one_line_error(status, err, "--video needs|cannot render")
        return
    assert status == 0 and video.stat().st_size > 1000, err
    assert out.strip().splitlines()[-1].endswith("episodes=1")


def test_plot_draws_mean_and_std_over_seeds(cli, trained, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    status, out, _ = cli("plot", trained, "--out", png)  # a folder of runs: found recursively
    assert status == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from scgrad.rl.run.plot import curves, find_runs
    data = curves(find_runs([trained]))
    (label, (xs, mean, std, n)), = data.items()
    assert label == "ppo CartPole-v1" and n == 2 and list(xs) == [400.0, 800.0]
    assert_one_line_error(*cli("plot", tmp_path / "empty-nothing")[::2], "holds no run")


def test_plot_takes_another_x_column(cli, trained, tmp_path):
    pytest.importorskip("matplotlib")
    status, _, err = cli("plot", trained, "--x", "Epoch", "--value", "LossV", "--out", tmp_path / "c.png")
    assert status == 0, err
    from scgrad.rl.run.plot import curves, find_runs
    (xs, _, _, _), = curves(find_runs([trained]), x="Epoch", y="LossV").values()
    assert list(xs) == [1.0, 2.0]
    assert_one_line_error(*cli("plot", trained, "--x", "Episodes")[::2], "has no column 'Episodes'")


def test_help_lists_every_setting(cli):
    status, out, _ = cli("train", "ppo", "--help")
    assert status == 0
    for flag in ("--clip_ratio", "--target-kl", "--steps_per_epoch", "--gamma", "--hidden_sizes"):
        assert flag in out


def test_help_survives_a_percent_sign_in_a_docstring(monkeypatch):
    from scgrad.rl import cli as cli_module
    from scgrad.rl.algos.ppo import PPOConfig

    monkeypatch.setattr(cli_module, "field_help", lambda cls: {"clip_ratio": "ε, e.g. 20% of the ratio"})
    assert "20% of the ratio" in cli_module.settings_parser(PPOConfig, "ppo").format_help()


def test_entry_point_runs_without_traceback(tmp_path):
    """The real ``python -m scgrad.rl``: a bad input exits 2 with one line on stderr."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "scgrad.rl", "train", "ppo", "--env", "NoSuchEnv-v0",
                           "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_plot_steps_over_epochs_in_which_no_episode_ended(tmp_path, monkeypatch):
    """A long-episode run (Pong) has many NaN rows; the curve joins the epochs that have a
    return instead of breaking into dots."""
    pytest.importorskip("matplotlib")
    import matplotlib.axes

    from scgrad.rl.run.plot import plot
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"algo": "ppo", "env": "ALE/Pong-v5"}')
    (run / "progress.csv").write_text("Epoch,TotalEnvInteracts,AverageEpRet\n1,10,nan\n2,20,-21\n3,30,nan\n"
                                      "4,40,nan\n5,50,-19\n6,60,nan\n")
    drawn = []
    original = matplotlib.axes.Axes.plot
    monkeypatch.setattr(matplotlib.axes.Axes, "plot",
                        lambda self, *args, **kw: drawn.append(args) or original(self, *args, **kw))
    plot([run], tmp_path / "c.png")
    (xs, ys), = drawn
    assert list(xs) == [20.0, 50.0] and list(ys) == [-21.0, -19.0]
