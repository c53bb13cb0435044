"""Karpathy/Pong-v0 (envs.atari) and Karpathy's policy (nets.karpathy): the blog's game and
frames, and the network that eval plays on them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("ale_py")

from scgrad.rl.atari_ids import describe_protocol, parse_atari_id  # noqa: E402
from scgrad.rl.envs.atari import AtariEnv, karpathy_frame  # noqa: E402
from scgrad.rl.errors import EnvError  # noqa: E402
from scgrad.rl.nets.karpathy import DOWN, UP, KarpathyPolicy, difference  # noqa: E402


def test_the_id_names_pong_and_its_protocol_and_other_games_are_refused():
    assert parse_atari_id("Karpathy/Pong-v0") == ("pong", "karpathy")
    assert "frame skip 2-4" in describe_protocol("Karpathy/Pong-v0")
    assert describe_protocol("CartPole-v1") is None
    with pytest.raises(EnvError, match="Pong only"):
        AtariEnv("Karpathy/Breakout-v0")


def test_observations_are_the_last_two_preprocessed_screens():
    env = AtariEnv("Karpathy/Pong-v0")
    obs, _ = env.reset(seed=3)
    assert obs.shape == (2, 80, 80) and obs.dtype == np.uint8 and not obs[0].any()  # no frame before the first
    for _ in range(60):
        before = obs[1].copy()
        obs, *_ = env.step(UP)
        assert np.array_equal(obs[0], before)
        assert np.array_equal(obs[1] > 0, karpathy_frame(env.ale.getScreenRGB()))
        assert set(np.unique(obs)) <= {0, 255}
    assert env.metadata["render_fps"] == 20 and AtariEnv.metadata["render_fps"] == 15  # the class is untouched


def test_each_step_plays_two_to_four_frames_drawn_from_the_seed():
    def frames_per_step(seed):
        env = AtariEnv("Karpathy/Pong-v0")
        env.reset(seed=seed)
        counts = []
        for _ in range(300):
            start = env.ale.getEpisodeFrameNumber()
            env.step(DOWN)
            counts.append(env.ale.getEpisodeFrameNumber() - start)
        return counts

    counts = frames_per_step(4)
    assert set(counts) == {2, 3, 4} and counts == frames_per_step(4) and counts != frames_per_step(5)


def test_the_sparse_policy_is_the_dense_one_on_difference_frames():
    torch.manual_seed(0)
    policy = KarpathyPolicy(16)
    frames = (torch.rand(5, 2, 80, 80) < 0.05).to(torch.uint8) * 255
    x = difference(frames)
    assert x.dtype == torch.int8 and torch.equal(x, (frames[:, 1] > 0).flatten(1).to(torch.int8)
                                                  - (frames[:, 0] > 0).flatten(1).to(torch.int8))
    torch.testing.assert_close(policy.sparse(x), policy(x.float()))
    logits = policy(x.float())
    assert torch.equal(policy.pi.mode(frames), torch.where(logits > 0, UP, DOWN))
    actions, log_p = policy.pi.sample(frames)
    assert set(actions.tolist()) <= {UP, DOWN}
    up = torch.sigmoid(logits)
    torch.testing.assert_close(log_p.exp(), torch.where(actions == UP, up, 1 - up))
