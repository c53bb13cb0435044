"""Using a trained agent from Python: ``scgrad.rl.load(DIR).act(obs)`` takes one observation or a
batch and answers in the environment's own action space."""
import gymnasium as gym
import numpy as np
import pytest

import scgrad.rl
from scgrad.rl.errors import RLError
from scgrad.rl.algos.ppo import ppo


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("agents")
    tiny = dict(steps=64, steps_per_epoch=64, num_envs=1, update_epochs=1, hidden_sizes=(8,), progress=False)
    ppo("CartPole-v1", root / "discrete", **tiny)
    # MountainCarContinuous's Box is [-1, 1]; Pendulum's [-2, 2] shows the rescaling
    ppo("Pendulum-v1", root / "box", log_std_init=1.0, **tiny)
    return root


@pytest.mark.parametrize("kind, env_id", [("discrete", "CartPole-v1"), ("box", "Pendulum-v1")])
def test_act_takes_one_observation_or_a_batch_and_answers_in_the_env_space(runs, kind, env_id):
    agent = scgrad.rl.load(runs / kind)
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    action = agent.act(obs)
    assert env.action_space.contains(action if kind == "box" else int(action))
    env.step(action)  # the environment takes it as it is
    batch = np.stack([obs, obs, obs])
    actions = agent.act(batch)
    assert len(actions) == 3 and all(env.action_space.contains(a if kind == "box" else int(a)) for a in actions)
    np.testing.assert_array_equal(actions[0], action)  # deterministic: the mode


def test_box_actions_are_rescaled_to_the_bounds_not_left_in_unit_range(runs):
    agent = scgrad.rl.load(runs / "box")
    env = gym.make("Pendulum-v1")
    obs = np.stack([env.reset(seed=s)[0] for s in range(64)])
    actions = agent.act(obs, deterministic=False)  # σ = e ≈ 2.7 in [−1, 1] units: many clip to ±1
    assert np.abs(actions).max() == pytest.approx(2.0)  # ±1 mapped to Pendulum's ±2
    assert env.action_space.contains(actions[0])


def test_an_observation_of_the_wrong_shape_is_a_clear_error(runs):
    agent = scgrad.rl.load(runs / "discrete")
    with pytest.raises(RLError, match=r"has shape \(4,\); got \(3,\), which is neither"):
        agent.act(np.zeros(3))
