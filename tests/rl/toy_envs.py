"""Tiny environments for the RL tests, registered on import (also usable from the command line
as ``--env toy_envs:Countdown-v0`` with this folder on PYTHONPATH)."""
import gymnasium as gym
import numpy as np


class Counter(gym.Env):
    """Observation [k] = steps since reset; reward 1 per step; never terminates by itself
    (a TimeLimit truncates it). Terminates instead when ``terminate_at`` is reached."""

    def __init__(self, terminate_at=None, nan_after=None):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.terminate_at, self.nan_after = terminate_at, nan_after
        self.k, self.total = 0, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k = 0
        return np.array([self.k], np.float32), {}

    def step(self, action):
        self.k += 1
        self.total += 1
        reward = float("nan") if self.nan_after is not None and self.total > self.nan_after else 1.0
        terminated = self.terminate_at is not None and self.k >= self.terminate_at
        return np.array([self.k], np.float32), reward, terminated, False, {}


class Dice(gym.Env):
    """Observation uniform noise from the env's RNG; reward = action·noise; Box actions in
    [−2, 2]. Its state lives in its np_random: a resume test for environment RNG streams."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.np_random.uniform(-1, 1, 2).astype(np.float32), {}

    def step(self, action):
        obs = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return obs, float(action[0] * obs[0]), False, False, {}


for env_id, kwargs, limit in [("Countdown-v0", {}, 3), ("Terminator-v0", {"terminate_at": 2}, 5),
                              ("NaNAfter-v0", {"nan_after": 300}, 50)]:
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=Counter, kwargs=kwargs, max_episode_steps=limit)
if "Dice-v0" not in gym.registry:
    gym.register("Dice-v0", entry_point=Dice, max_episode_steps=20)
