"""The RL toolkit's parts: environments, normaliser, networks, buffer/rollout, checkpoints,
run folders, settings, progress bar."""
import errno
import io
import os
from typing import Optional, Tuple

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from scgrad.rl.data.rollout_buffer import RolloutBuffer
from scgrad.rl.run.checkpoint import load_checkpoint, save_checkpoint
from scgrad.rl.config import field_help, parse_text
from scgrad.rl.envs import state as env_state
from scgrad.rl.envs.make import ActionAdapter, make_vector_env
from scgrad.rl.errors import CheckpointError, ConfigError, EnvError
from scgrad.rl.run.folder import RunFolder, episode_stats, read_progress
from scgrad.rl.nets.mlp import ACTIVATIONS, forward_fast, mlp, numpy_forward
from scgrad.rl.nets.actor_critic import ActorCritic
from scgrad.rl.envs.normalize import RunningNormalizer
from scgrad.rl.data.batch import compute_batch
from scgrad.rl.algos.ppo import PPOConfig
from scgrad.rl.run.progress import ProgressBar
from scgrad.rl.returns import gae
from scgrad.rl.data.runner import EnvRunner, collect_rollout


# ------------------------------------------------------------------ environments
def test_unknown_env_id_is_one_clear_line():
    with pytest.raises(EnvError, match="cannot make environment 'NoSuchEnv-v0'") as info:
        make_vector_env("NoSuchEnv-v0", 2)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("env_id", ["Blackjack-v1", "FrozenLake-v1"])
def test_unsupported_observation_space(env_id):
    with pytest.raises(EnvError, match="observation space .* is not supported"):
        make_vector_env(env_id, 1)


def test_unsupported_action_space():
    with pytest.raises(EnvError, match="action space .* is not supported"):
        ActorCritic(gym.spaces.Box(-1, 1, (3,)), gym.spaces.MultiDiscrete([2, 3]))


def test_box_actions_are_clipped_and_rescaled():
    adapt = ActionAdapter(gym.spaces.Box(np.array([-2.0, 0.0, -np.inf]), np.array([2.0, 1.0, np.inf]),
                                         dtype=np.float64))
    out = adapt(np.array([[0.5, 0.0, 7.0], [3.0, -5.0, -7.0]]))
    np.testing.assert_allclose(out, [[1.0, 0.5, 7.0], [2.0, 0.0, -7.0]])
    assert ActionAdapter(gym.spaces.Discrete(3))(np.array([2, 0])).tolist() == [2, 0]


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Dice-v0"])
def test_restored_env_continues_identically(env_id):
    env = make_vector_env(env_id, 2)
    env.reset(seed=3)
    action = np.stack([env.single_action_space.sample() for _ in range(2)])
    for _ in range(5):
        env.step(action)
    copy = make_vector_env(env_id, 2)
    env_state.restore(copy, env_state.capture(env))
    for _ in range(60):  # across episode ends too
        a, b = env.step(action), copy.step(action)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


# ------------------------------------------------------------------ normaliser
def test_normalizer_matches_full_data_statistics():
    x = torch.randn(1000, 3, dtype=torch.float64) * torch.tensor([1.0, 5.0, 0.1]) + 2.0
    norm = RunningNormalizer((3,))
    for chunk in x.split(77):
        norm.update(chunk)
    torch.testing.assert_close(norm.mean, x.mean(0))
    torch.testing.assert_close(norm.var, x.var(0, unbiased=False))
    y = norm(x.float())
    assert y.dtype == torch.float32 and y.abs().max() <= 10.0
    restored = RunningNormalizer((3,))
    restored.load_state_dict(norm.state_dict())
    torch.testing.assert_close(restored(x), norm(x))


def test_normalizers_that_share_their_pending_batches_agree_with_one_that_saw_everything():
    """Two processes' normalisers (simulated): each sees its own batches, then both share; they
    equal each other bitwise and one normaliser fed every batch to float rounding, twice over."""
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(20, 3, generator=g, dtype=torch.float64) * (i + 1) + i for i in range(8)]
    a, b, whole = RunningNormalizer((3,)), RunningNormalizer((3,)), RunningNormalizer((3,))
    a.keep_pending = b.keep_pending = True  # as a run on several processes sets it
    assert not whole.keep_pending
    for round_ in range(2):
        for i, x in enumerate(batches[4 * round_:4 * round_ + 4]):
            (a if i % 2 == 0 else b).update(x)
            whole.update(x)
        assert not torch.equal(a.mean, b.mean)  # control: before sharing they differ
        pendings = [a.pending, b.pending]
        a.share(pendings)
        b.share(pendings)
        assert torch.equal(a.mean, b.mean) and torch.equal(a.var, b.var) and float(a.count) == 80 * (round_ + 1)
        torch.testing.assert_close(a.mean, whole.mean)
        torch.testing.assert_close(a.var, whole.var)
    restored = RunningNormalizer((3,))
    restored.load_state_dict(a.state_dict())
    assert float(restored.pending[0]) == 0 and torch.equal(restored.shared[1], a.mean)


# ------------------------------------------------------------------ networks
def test_mlp_shapes_and_activation():
    net = mlp([4, 8, 8, 2], nn.ReLU)
    assert [m.out_features for m in net if isinstance(m, nn.Linear)] == [8, 8, 2]
    assert sum(isinstance(m, nn.ReLU) for m in net) == 2
    with pytest.raises(ValueError, match="unknown activation"):
        ActorCritic(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2), activation="sigmoidish")


@pytest.mark.parametrize("act_space", [gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (2,))])
def test_fast_sample_log_prob_equals_distribution(act_space):
    torch.manual_seed(0)
    model = ActorCritic(gym.spaces.Box(-1, 1, (5,)), act_space, (16,))
    obs = torch.randn(64, 5)
    with torch.no_grad():
        action, logp = model.pi.sample(obs)
        dist = model.pi.distribution(obs)
        torch.testing.assert_close(logp, dist.log_prob(action))
        assert dist.batch_shape == (64,)
        assert model.v(obs).shape == (64,)
        assert model.pi.mode(obs).shape == action.shape


@pytest.mark.parametrize("act_space", [gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (2,))])
def test_distribution_is_a_snapshot_that_later_parameter_steps_leave_alone(act_space):
    """TRPO keeps π_old across in-place steps of the parameters: the distribution must hold
    copies, not the parameters themselves (the Gaussian's log σ is a parameter)."""
    torch.manual_seed(0)
    model = ActorCritic(gym.spaces.Box(-1, 1, (5,)), act_space, (16,))
    obs = torch.randn(8, 5)
    with torch.no_grad():
        old = model.pi.distribution(obs)
        action = old.sample()
        before = old.log_prob(action).clone()
        for p in model.pi.parameters():
            p.add_(0.5)
        torch.testing.assert_close(old.log_prob(action), before)
        assert not torch.allclose(model.pi.distribution(obs).log_prob(action), before)  # the step did move π


@pytest.mark.parametrize("act_space", [gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (2,))])
def test_act_draws_the_action_sample_draws(act_space):
    model = ActorCritic(gym.spaces.Box(-1, 1, (5,)), act_space, (16,))
    obs = torch.randn(64, 5)
    with torch.inference_mode():
        torch.manual_seed(3)
        fast = model.pi.act(obs)
        torch.manual_seed(3)
        action, _ = model.pi.sample(obs)
    torch.testing.assert_close(fast, action)


@pytest.mark.parametrize("activation", ["tanh", "relu", "elu"])
@pytest.mark.parametrize("act_space", [gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (2,))])
def test_numpy_actor_draws_the_actions_act_draws(act_space, activation):
    """The rollout's NumPy path: the same torch generator draws, the same actions (to float32
    rounding; Discrete: exactly, barring a near-tie), through in-place parameter steps too. ELU
    has no NumPy form and takes the torch path."""
    model = ActorCritic(gym.spaces.Box(-1, 1, (5,)), act_space, (16, 16), activation)
    actor = model.pi.numpy_actor()
    obs = torch.randn(64, 5)
    for _ in range(2):
        with torch.inference_mode():
            torch.manual_seed(3)
            expected = model.pi.act(obs)
        torch.manual_seed(3)
        drawn = actor(obs.numpy())
        assert isinstance(drawn, np.ndarray) and drawn.shape == tuple(expected.shape)
        if isinstance(act_space, gym.spaces.Discrete):
            assert (drawn == expected.numpy()).mean() > 0.95
        else:
            np.testing.assert_allclose(drawn, expected.numpy(), rtol=1e-5, atol=1e-6)
        with torch.no_grad():  # an optimiser's in-place step: the actor must see it
            for p in model.pi.parameters():
                p.add_(0.3 * torch.randn_like(p))


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_numpy_forward_equals_the_module_or_declines(activation):
    net = mlp([4, 8, 8, 2], ACTIVATIONS[activation])
    x = torch.randn(10, 4)
    forward = numpy_forward(net)
    if activation in ("tanh", "relu"):
        np.testing.assert_allclose(forward(x.numpy()), net(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    else:
        assert forward is None
    assert numpy_forward(mlp([4, 2]).double()) is None  # float64 weights: no float32 NumPy form


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_forward_fast_equals_the_module(activation):
    net = mlp([4, 8, 8, 2], ACTIVATIONS[activation], output_activation=nn.Tanh)
    x = torch.randn(10, 4)
    torch.testing.assert_close(forward_fast(net, x), net(x))


def test_categorical_sample_follows_the_probabilities():
    torch.manual_seed(0)
    model = ActorCritic(gym.spaces.Box(-1, 1, (1,)), gym.spaces.Discrete(3), (4,))
    with torch.no_grad():
        model.pi.logits[-2].bias.copy_(torch.tensor([0.0, 1.0, 2.0]))
        model.pi.logits[-2].weight.zero_()
        action, _ = model.pi.sample(torch.zeros(20000, 1))
    freq = torch.bincount(action, minlength=3).float() / 20000
    torch.testing.assert_close(freq, torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0), atol=0.015, rtol=0)


# ------------------------------------------------------------------ rollouts
def test_rollout_handles_truncation_and_episode_stats():
    env = make_vector_env("Countdown-v0", 2)  # truncated every 3 steps
    runner = EnvRunner(env, seed=0)
    model = ActorCritic(env.single_observation_space, env.single_action_space, (4,))
    buffer = RolloutBuffer(7, 2, 1, (), torch.int64)
    collect_rollout(runner, model.pi, buffer)
    assert buffer.obs[:, 0, 0].tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert buffer.truncated[:, 0].tolist() == [False, False, True, False, False, True, False]
    assert not buffer.terminated.any()
    assert buffer.final_obs[2, :, 0].tolist() == [3, 3] and buffer.final_obs[5, :, 0].tolist() == [3, 3]
    assert buffer.last_obs[:, 0].tolist() == [1, 1]
    assert runner.pop_episodes() == ([3.0] * 4, [3] * 4)
    assert runner.pop_episodes() == ([], [])

    # the critic V(s) = 10·s: at a truncation the bootstrap is V(final obs) = 30, not V(reset obs) = 0
    value = lambda obs: 10.0 * obs[..., 0]  # noqa: E731
    batch = compute_batch(buffer, model.pi, value, gamma=0.9, lam=0.8, normalize_advantages=False)
    v = 10.0 * buffer.obs[..., 0]
    v_next = torch.cat([v[1:], 10.0 * buffer.last_obs[None, :, 0]])
    v_next[2], v_next[5] = 30.0, 30.0
    expected = gae(buffer.rew, v, v_next, buffer.terminated, buffer.truncated, 0.9, 0.8)
    torch.testing.assert_close(batch.adv, expected.reshape(-1))
    torch.testing.assert_close(batch.ret, (expected + v).reshape(-1))
    assert batch.adv.reshape(7, 2)[2, 0].item() == pytest.approx(1.0 + 0.9 * 30.0 - 20.0)


def test_termination_does_not_bootstrap():
    env = make_vector_env("Terminator-v0", 1)  # terminates every 2 steps
    runner = EnvRunner(env, seed=0)
    model = ActorCritic(env.single_observation_space, env.single_action_space, (4,))
    buffer = RolloutBuffer(4, 1, 1, (), torch.int64)
    collect_rollout(runner, model.pi, buffer)
    assert buffer.terminated[:, 0].tolist() == [False, True, False, True]
    batch = compute_batch(buffer, model.pi, lambda obs: 10.0 * obs[..., 0], 0.9, 1.0, False)
    # last step of an episode: Â = r − V(s) = 1 − 10
    assert batch.adv[1].item() == pytest.approx(1.0 - 10.0)


# ------------------------------------------------------------------ checkpoints
INFO = {"algo": "ppo", "settings": {"env": "CartPole-v1"}, "run": {"threads": 1}}


def test_checkpoint_roundtrip_and_atomic_replace(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, {"epoch": 1, "x": torch.arange(3)}, {**INFO, "epoch": 1})
    assert load_checkpoint(tmp_path)["epoch"] == 1

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    save = torch.save
    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(CheckpointError, match=r"\(No space left on device\); the checkpoint of epoch 1 is kept"):
        save_checkpoint(tmp_path, {"epoch": 2}, {**INFO, "epoch": 2})
    assert load_checkpoint(tmp_path)["epoch"] == 1  # the previous checkpoint survives
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-000001.pt", "checkpoint.json"]  # no temporary file left
    monkeypatch.setattr(torch, "save", save)
    save_checkpoint(tmp_path, {"epoch": 2}, {**INFO, "epoch": 2})
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-000002.pt", "checkpoint.json"]  # the old payload went


def test_bad_checkpoints_raise_one_line(tmp_path):
    from .test_run_folder import payload, reseal

    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path)
    (tmp_path / "checkpoint.json").write_text("not a manifest at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path)
    save_checkpoint(tmp_path, {"epoch": 1, "w": torch.randn(1000)}, {**INFO, "epoch": 1})
    good = payload(tmp_path).read_bytes()
    payload(tmp_path).write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):  # its checksum differs
        load_checkpoint(tmp_path)
    reseal(tmp_path)  # a truncated file with matching checksums still does not load
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        load_checkpoint(tmp_path)
    torch.save({"weights": torch.zeros(2)}, payload(tmp_path))
    reseal(tmp_path)
    with pytest.raises(CheckpointError, match="not an scgrad.rl checkpoint"):
        load_checkpoint(tmp_path)


# ------------------------------------------------------------------ run folder
def row(epoch, **extra):
    return {"Epoch": epoch, "TotalEnvInteracts": 10 * epoch, **episode_stats([1.0, 3.0], [5, 7]),
            "LossPi": 0.5, "LossV": 1.5, "KL": 0.01, "Entropy": 0.7, **extra, "Time": 0.1}


def test_progress_columns_and_reopen(tmp_path):
    folder = RunFolder(tmp_path)
    folder.create("ppo", {"env": "CartPole-v1"})
    for epoch in (1, 2, 3):
        folder.log(row(epoch, ClipFrac=0.1))
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    assert header == ["Epoch", "TotalEnvInteracts", "AverageEpRet", "StdEpRet", "MaxEpRet", "MinEpRet",
                      "EpLen", "LossPi", "LossV", "KL", "Entropy", "ClipFrac", "Time"]
    with open(tmp_path / "progress.csv", "a") as f:
        f.write("4,40,2.0")  # a row torn by a kill
    assert len(read_progress(tmp_path)) == 3
    again = RunFolder(tmp_path)
    again.reopen(2)  # the checkpoint holds 2 epochs: rows 3 and the torn 4 go
    again.log(row(3, ClipFrac=0.2))
    rows = read_progress(tmp_path)
    assert [r["Epoch"] for r in rows] == ["1", "2", "3"] and rows[2]["ClipFrac"] == "0.2"
    assert episode_stats([], [])["AverageEpRet"] != episode_stats([], [])["AverageEpRet"]  # NaN


def test_run_folder_refuses_overwrite_and_changed_settings(tmp_path):
    folder = RunFolder(tmp_path)
    folder.create("ppo", {"env": "CartPole-v1", "steps": 10, "gamma": 0.99})
    folder.log(row(1))
    with pytest.raises(CheckpointError, match="already holds a run"):
        RunFolder(tmp_path).create("ppo", {"env": "CartPole-v1"})
    with pytest.raises(CheckpointError, match="gamma=0.9"):
        folder.check_resume("ppo", {"env": "CartPole-v1", "steps": 10, "gamma": 0.9})
    with pytest.raises(CheckpointError, match="holds a ppo run"):
        folder.check_resume("vpg", {"env": "CartPole-v1", "steps": 10, "gamma": 0.99})
    folder.check_resume("ppo", {"env": "CartPole-v1", "steps": 20, "gamma": 0.99})  # steps may change


# ------------------------------------------------------------------ settings
@pytest.mark.parametrize("bad, message", [
    ({"pi_lr": -1e-3}, "pi_lr must be > 0"), ({"vf_lr": 0.0}, "vf_lr must be > 0"),
    ({"gamma": 1.5}, r"gamma must be in \[0, 1\]"), ({"gamma": -0.1}, r"gamma must be in \[0, 1\]"),
    ({"lam": 2.0}, r"lam must be in \[0, 1\]"), ({"clip_ratio": 1.0}, r"clip_ratio must be in \(0, 1\)"),
    ({"num_envs": 3}, "multiple of num_envs"),
    ({"steps": 10, "num_envs": 4, "steps_per_epoch": 400}, r"steps \(10\) must be a multiple of num_envs \(4\)"),
    ({"steps": "many"}, "steps must be of type int"), ({"activation": "nope"}, "activation must be one of"),
])
def test_settings_are_validated(bad, message):
    with pytest.raises(ConfigError, match=message):
        PPOConfig(**bad)


def test_settings_coercion_and_parsing():
    config = PPOConfig(pi_lr=1, hidden_sizes=[32, 32], steps=8000.0)
    assert config.pi_lr == 1.0 and config.hidden_sizes == (32, 32) and config.steps == 8000
    assert PPOConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown setting"):
        PPOConfig.from_dict({"learning_rate": 1.0})
    assert parse_text("hidden_sizes", Tuple[int, ...], "64,32") == (64, 32)
    assert parse_text("normalize_obs", bool, "True") is True
    assert parse_text("target_kl", Optional[float], "none") is None
    with pytest.raises(ConfigError, match="--normalize_obs: expected true or false"):
        parse_text("normalize_obs", bool, "maybe")
    helps = field_help(PPOConfig)
    assert "clip_ratio" in helps and "gamma" in helps and "multiple of" in helps["steps_per_epoch"]


# ------------------------------------------------------------------ progress bar
def test_progress_bar_writes_deciles_to_a_file():
    stream = io.StringIO()
    bar = ProgressBar(1000, stream=stream)
    for done in range(0, 1001, 50):
        bar.update(done, "return 1.0")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10 and lines[-1].startswith("[" + "#" * 24 + "] 100%")
