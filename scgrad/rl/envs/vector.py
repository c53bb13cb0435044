"""A lean vector environment: N gymnasium environments stepped one after another in this
process, with same-step autoreset.

Gymnasium's ``SyncVectorEnv`` does the same job for any space, at a price paid on every step:
it iterates the action space generically, merges every sub-environment's ``info`` dict into a
batched one and concatenates observations through the space. With one small MuJoCo env that
overhead is about as long as the physics step itself. The RL toolkit needs none of it: its
observations are Boxes (``envs.check_spaces``), its actions an array indexed by environment,
and of the infos only the final observation of an episode that ended. So this class writes
each observation into one preallocated array and reports just that.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space


class SerialVectorEnv(gym.vector.VectorEnv):
    """``len(env_fns)`` environments in one process, autoreset on the step an episode ends.

    ``step`` returns ``(obs [N, *obs_shape], reward [N] float64, terminated [N] bool,
    truncated [N] bool, info)``. When environment i ends an episode, ``obs[i]`` is already the
    first observation of its next episode and the last one of the ended episode is in
    ``info["final_obs"][i]`` (an object array, ``None`` where nothing ended; ``info`` is empty
    when no episode ended) — gymnasium's SAME_STEP autoreset convention, so no step is spent on
    a reset and a time-limit truncation can be bootstrapped from its final observation.

    The returned ``obs`` array is reused by the next ``step`` or ``reset``: copy it to keep it.

    Args:
        env_fns: callables that each make one environment (all with the same spaces).
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]]) -> None:
        self.envs: List[gym.Env] = [make() for make in env_fns]
        self.num_envs = len(self.envs)
        first = self.envs[0]
        self.metadata = dict(first.metadata, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
        self.render_mode = first.render_mode
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._obs = np.zeros((self.num_envs, *self.single_observation_space.shape),
                             dtype=self.single_observation_space.dtype)

    def reset(self, *, seed: Optional[int] = None,
              options: Optional[Dict[str, Any]] = None) -> Tuple[np.ndarray, Dict[str, Any]]:
        """Reset every environment; environment i gets ``seed + i`` (if a seed is given)."""
        for i, env in enumerate(self.envs):
            self._obs[i], _ = env.reset(seed=None if seed is None else seed + i, options=options)
        return self._obs, {}

    def step(self, actions: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Dict[str, Any]]:
        """Step environment i with ``actions[i]``; see the class docstring for what returns."""
        n = self.num_envs
        reward = np.zeros(n)
        terminated, truncated = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        info: Dict[str, Any] = {}
        for i, env in enumerate(self.envs):
            obs, reward[i], terminated[i], truncated[i], _ = env.step(actions[i])
            if terminated[i] or truncated[i]:
                if not info:
                    info = {"final_obs": np.full(n, None, dtype=object), "_final_obs": np.zeros(n, dtype=bool)}
                info["final_obs"][i], info["_final_obs"][i] = obs, True
                obs, _ = env.reset()
            self._obs[i] = obs
        return self._obs, reward, terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()
