"""``steps`` is exactly the number of environment steps trained (a short last epoch), and the
progress bar moves as the environments step, not once an epoch."""
import io
import itertools

import pytest

from scgrad.rl.run import progress
from scgrad.rl.errors import ConfigError
from scgrad.rl.algos.ppo import ppo
from scgrad.rl.algos.sac import sac

from .test_resume import progress_without_time

PPO = dict(steps=500, steps_per_epoch=200, num_envs=2, update_epochs=2, minibatch_size=100, progress=False)
SAC = dict(steps=300, steps_per_epoch=200, hidden_sizes=(16,), batch_size=16, start_steps=50, update_after=50,
           num_test_episodes=0, progress=False)


def interactions(result):
    return [int(row["TotalEnvInteracts"]) for row in result.progress]


def test_on_policy_trains_exactly_the_steps_asked_for(cpu_threads):
    result = ppo("CartPole-v1", **PPO)
    assert interactions(result) == [200, 400, 500] and result.config.epochs == 3


def test_off_policy_trains_exactly_the_steps_asked_for(cpu_threads):
    assert interactions(sac("Pendulum-v1", **SAC)) == [200, 300]


def test_steps_that_all_environments_cannot_take_together_are_refused():
    with pytest.raises(ConfigError, match=r"steps \(501\) must be a multiple of num_envs \(2\)"):
        ppo("CartPole-v1", **{**PPO, "steps": 501})


def test_a_short_last_epoch_resumes_exactly_and_can_be_extended(tmp_path, cpu_threads):
    ppo("CartPole-v1", tmp_path / "whole", **PPO)
    ppo("CartPole-v1", tmp_path / "part", stop_after=2, **PPO)
    ppo("CartPole-v1", tmp_path / "part", resume=True, **PPO)
    assert progress_without_time(tmp_path / "part") == progress_without_time(tmp_path / "whole")
    longer = ppo("CartPole-v1", tmp_path / "part", resume=True, **{**PPO, "steps": 900})
    assert interactions(longer) == [200, 400, 500, 700, 900]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_moves_within_an_epoch(monkeypatch, cpu_threads):
    clock = itertools.count(0.0, 0.06)  # every reading 60 ms later: a redraw every other step
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    ppo("CartPole-v1", **{**PPO, "steps": 200, "progress": True})  # one epoch
    drawn = [int(line.split()[2].split("/")[0]) for line in terminal.getvalue().split("\r") if "steps/s" in line]
    assert 0 < drawn[0] < 200 and len(set(drawn)) > 10 and drawn[-1] == 200


@pytest.mark.parametrize("stream, drawn", [(Terminal, True), (io.StringIO, False)])
def test_the_python_api_draws_the_bar_by_default_only_on_a_terminal(monkeypatch, stream, drawn, cpu_threads):
    err = stream()
    monkeypatch.setattr("sys.stderr", err)
    ppo("CartPole-v1", **{**PPO, "steps": 200, "progress": None})
    assert ("steps/s" in err.getvalue()) == drawn
