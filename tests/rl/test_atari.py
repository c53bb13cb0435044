"""Atari from pixels: the preprocessed games of envs.atari, their exact state, the CNN
actor-critic, uint8 rollouts, reward clipping and the command line (smoke runs of a few hundred
steps; learning is measured by benchmarks/pong.py, not here)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("ale_py")

from scgrad.rl.algos import registry as algorithms  # noqa: E402
from scgrad.rl.algos.onpolicy import OnPolicyLearner, device_of, make_model  # noqa: E402
from scgrad.rl.algos.ppo import PPO, PPOConfig  # noqa: E402
from scgrad.rl.atari_ids import parse_atari_id  # noqa: E402
from scgrad.rl.cli import main  # noqa: E402
from scgrad.rl.data.runner import EnvRunner  # noqa: E402
from scgrad.rl.envs import state as env_state  # noqa: E402
from scgrad.rl.envs.atari import AtariEnv, area_weights  # noqa: E402
from scgrad.rl.envs.make import make_vector_env  # noqa: E402
from scgrad.rl.errors import ConfigError  # noqa: E402
from scgrad.rl.nets.cnn import CNNActorCritic  # noqa: E402
from scgrad.rl.run.folder import read_progress  # noqa: E402

from . import toy_envs  # noqa: E402,F401  # registers Dice-v0

TINY = ["--steps", "256", "--num_envs", "2", "--steps_per_epoch", "128", "--minibatch_size", "64",
        "--update_epochs", "1", "--cnn", "small", "--checkpoint_every", "1", "--no-progress"]


def test_atari_ids_name_a_rom_and_a_protocol():
    assert parse_atari_id("ALE/Pong-v5") == ("pong", "v5")
    assert parse_atari_id("SpaceInvadersNoFrameskip-v4") == ("space_invaders", "v4")
    assert parse_atari_id("CartPole-v1") is None and parse_atari_id("ALE/Pong-v4") is None


def test_area_resize_averages_what_each_pixel_covers():
    rows, weights = area_weights(168, 84)  # an integer ratio: plain 2-sample means
    x = np.arange(168.0)
    np.testing.assert_allclose((x[rows] * weights).sum(0), x.reshape(84, 2).mean(1))
    rows, weights = area_weights(210, 84)  # 2.5 samples per output
    np.testing.assert_allclose(weights.sum(0), 1.0, rtol=1e-6)
    np.testing.assert_allclose((np.arange(210.0)[rows] * weights).sum(0)[:2], [0.8, 3.2], rtol=1e-6)  # (0+1+2/2)/2.5


def test_the_game_is_preprocessed_and_stacked():
    env = AtariEnv("ALE/Pong-v5")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8 and env.action_space.n == 6
    after, reward, terminated, truncated, _ = env.step(2)
    np.testing.assert_array_equal(after[:3], obs[1:])  # the stack moved by one frame
    assert 40 < after[-1].mean() < 120 and reward == 0.0 and not (terminated or truncated)


def test_v5_actions_are_sticky_and_v4_actions_are_not():
    def trace(env_id, seed):
        env = AtariEnv(env_id)
        env.reset(seed=0)
        env.np_random = np.random.default_rng(seed)  # only the sticky draws differ between seeds
        return [env.step(2 if t % 10 < 5 else 3)[0][-1].tobytes() for t in range(150)]

    assert trace("PongNoFrameskip-v4", 1) == trace("PongNoFrameskip-v4", 2)
    assert trace("ALE/Pong-v5", 1) != trace("ALE/Pong-v5", 2)


def test_a_saved_game_continues_exactly_in_a_fresh_emulator():
    a = make_vector_env("ALE/Pong-v5", 2)
    a.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(150):
        a.step(rng.integers(0, 6, 2))
    saved = env_state.capture(a)
    actions = rng.integers(0, 6, (300, 2))
    copied = lambda step: [np.copy(v) for v in step[:2]]  # noqa: E731  (the vector env reuses its arrays)
    expected = [copied(a.step(x)) for x in actions]
    b = make_vector_env("ALE/Pong-v5", 2)
    b.reset(seed=99)  # another game in progress, overwritten by the restore
    env_state.restore(b, saved)
    for (obs_a, rew_a), (obs_b, rew_b) in zip(expected, (copied(b.step(x)) for x in actions)):
        np.testing.assert_array_equal(obs_a, obs_b)
        np.testing.assert_array_equal(rew_a, rew_b)


def test_the_cnn_actor_critic_follows_the_contract_and_reuses_its_features():
    env = AtariEnv("ALE/Pong-v5")
    model = CNNActorCritic(env.observation_space, env.action_space, "small")
    obs = torch.randint(0, 256, (5, 4, 84, 84), dtype=torch.uint8)
    assert model.pi.distribution(obs).batch_shape == (5,) and model.v(obs).shape == (5,)
    calls, obs = [], obs.clone()  # a new batch
    model.body.register_forward_hook(lambda *_: calls.append(1))
    model.v(obs), model.pi.distribution(obs)
    assert len(calls) == 1  # the value and the policy of one batch share a body pass
    with torch.no_grad():
        for p in model.body.parameters():
            p.add_(0.1)  # new weights: the features are computed again
    model.v(obs)
    assert len(calls) == 2
    nature = CNNActorCritic(env.observation_space, env.action_space, "nature")
    assert sum(p.numel() for p in nature.parameters()) > 2 * sum(p.numel() for p in model.parameters())


def test_rollouts_of_images_are_uint8_and_ppo_trains_the_shared_body_with_one_optimiser():
    torch.manual_seed(0)
    config = PPOConfig(env="ALE/Pong-v5", num_envs=2, steps=128, steps_per_epoch=128, update_epochs=1,
                       minibatch_size=64, cnn="small", clip_rewards=True)
    runner = EnvRunner(make_vector_env(config.env, 2), 0)
    model = make_model(config, runner.env.single_observation_space, runner.env.single_action_space)
    learner = OnPolicyLearner(PPO, config, model, runner)
    assert isinstance(model, CNNActorCritic) and set(learner.optimizers) == {"model"}
    assert learner.buffer.obs.dtype == torch.uint8 and learner.buffer.obs.shape == (64, 2, 4, 84, 84)
    before = [p.clone() for p in model.parameters()]
    info = learner.epoch(1, 0, 128)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert np.isfinite(info["LossV"]) and info["StopIter"] == 2


def test_vpg_and_trpo_refuse_a_shared_body(tmp_path):
    for algo in ("vpg", "trpo"):
        with pytest.raises(ConfigError, match="share a body"):
            algorithms.train(algo, "ALE/Pong-v5", None, steps=8, steps_per_epoch=8, progress=False)


def test_clipped_rewards_train_while_the_reported_returns_stay_true():
    config = PPOConfig(env="Dice-v0", num_envs=2, steps=80, steps_per_epoch=80, update_epochs=1,
                       clip_rewards=True)
    runner = EnvRunner(make_vector_env(config.env, 2), 0)
    model = make_model(config, runner.env.single_observation_space, runner.env.single_action_space)
    learner = OnPolicyLearner(PPO, config, model, runner)
    learner.epoch(1, 0, 80)
    assert set(learner.buffer.rew.unique().tolist()) <= {-1.0, 0.0, 1.0}
    returns, _ = runner.pop_episodes()
    assert len(returns) == 4 and any(abs(r - round(r)) > 1e-3 for r in returns)  # the true, unclipped sums


def test_cuda_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="no CUDA device"):
        device_of(PPOConfig(device="cuda"))
    assert device_of(PPOConfig(device="auto")).type == "cpu"


def test_the_command_line_trains_resumes_exactly_and_records_a_whole_game(tmp_path, capsys):
    """Pong through the CLI with the atari preset: a run killed after its first epoch and
    resumed ends as the uninterrupted run does (emulators included); eval records a full game."""
    assert main(["train", "ppo", "--env", "ALE/Pong-v5", *TINY, "--out", str(tmp_path / "whole")]) == 0
    assert json.loads((tmp_path / "whole" / "config.json").read_text())["preset"] == "atari"
    from scgrad.rl.algos.ppo import ppo
    ppo("ALE/Pong-v5", str(tmp_path / "cut"), stop_after=1, steps=256, num_envs=2, steps_per_epoch=128,
        minibatch_size=64, update_epochs=1, cnn="small", checkpoint_every=1, progress=False)
    assert main(["train", "--resume", str(tmp_path / "cut"), "--no-progress"]) == 0
    drop = lambda rows: [{k: v for k, v in r.items() if k != "Time"} for r in rows]  # noqa: E731
    assert drop(read_progress(tmp_path / "cut")) == drop(read_progress(tmp_path / "whole"))
    video = tmp_path / "pong.gif"
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "whole"), "--episodes", "1", "--video", str(video)]) == 0
    out = capsys.readouterr().out
    assert video.stat().st_size > 10_000 and "episodes=1" in out
    assert float(out.split("return=")[1].split()[0]) in [float(-k) for k in range(22)] + [float(k) for k in range(22)]


def test_an_agent_evaluates_under_the_other_ale_protocol_of_its_game_only(tmp_path):
    """A run trained on PongNoFrameskip-v4 loads on ALE/Pong-v5 (the same screens and actions,
    sticky), to be evaluated under either protocol; another game is refused in one line."""
    from scgrad.rl.agents import load_agent
    from scgrad.rl.algos.ppo import ppo
    from scgrad.rl.errors import CheckpointError

    ppo("PongNoFrameskip-v4", str(tmp_path / "v4"), steps=128, num_envs=2, steps_per_epoch=128, minibatch_size=64,
        update_epochs=1, cnn="small", progress=False)
    agent = load_agent(tmp_path / "v4", env="ALE/Pong-v5")
    assert agent.config.env == "ALE/Pong-v5" and load_agent(tmp_path / "v4").config.env == "PongNoFrameskip-v4"
    with pytest.raises(CheckpointError, match="--env ALE/Breakout-v5 is not the environment of the run"):
        load_agent(tmp_path / "v4", env="ALE/Breakout-v5")
    with pytest.raises(CheckpointError, match="is not the environment of the run"):
        load_agent(tmp_path / "v4", env="Karpathy/Pong-v0")
