"""SerialVectorEnv: gymnasium's SAME_STEP autoreset semantics without SyncVectorEnv's overhead."""
import functools

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from scgrad.rl.envs.make import make_env, make_vector_env
from scgrad.rl.errors import EnvError
from scgrad.rl.envs.vector import SerialVectorEnv


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Countdown-v0"])
def test_steps_equal_gymnasium_sync_vector_env(env_id):
    fns = [functools.partial(make_env, env_id)] * 3
    ours = SerialVectorEnv(fns)
    theirs = SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    np.testing.assert_array_equal(ours.reset(seed=7)[0], theirs.reset(seed=7)[0])
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(300):  # many episode ends
        action = rng.integers(0, ours.single_action_space.n, size=3)
        a, b = ours.step(action), theirs.step(action)
        for x, y in zip(a[:4], b[:4]):
            np.testing.assert_array_equal(x, y)
        done = a[2] | a[3]
        ended += int(done.sum())
        if done.any():
            np.testing.assert_array_equal(a[4]["_final_obs"], done)
            for i in np.flatnonzero(done):
                np.testing.assert_array_equal(a[4]["final_obs"][i], b[4]["final_obs"][i])
        else:
            assert a[4] == {}
    assert ended > 10
    ours.close()
    assert ours.closed


def test_spaces_are_batched():
    env = make_vector_env("Pendulum-v1", 2)
    assert env.num_envs == 2
    assert env.observation_space.shape == (2, 3) and env.action_space.shape == (2, 1)
    assert isinstance(env, gym.vector.VectorEnv)


def test_unsupported_space_is_rejected_before_allocation():
    with pytest.raises(EnvError, match="observation space"):
        make_vector_env("Blackjack-v1", 2)  # a Tuple observation space
