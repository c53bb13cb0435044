"""Stepping a vector environment with a batched policy: observations, episode bookkeeping,
and the state needed to resume exactly. Shared by on- and off-policy algorithms."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import gymnasium as gym
import numpy as np
import torch

from scgrad.rl.data.rollout_buffer import RolloutBuffer
from scgrad.rl.envs import state as env_state
from scgrad.rl.envs.make import ActionAdapter, is_image
from scgrad.rl.errors import ConfigError
from scgrad.rl.envs.normalize import RunningNormalizer
from scgrad.rl.nets.mlp import torch_actor


@dataclass
class Step:
    """What one vector step returns (N environments; k of them ended an episode).

    Attributes:
        reward: [N] float32.
        terminated, truncated: [N] bool.
        ended: indices [k] of the environments whose episode ended at this step.
        final_obs: [k, obs_dim] their last observations (normalised like ``obs``), or ``None``.
    """

    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    ended: np.ndarray
    final_obs: Optional[torch.Tensor]


class EnvRunner:
    """Owns a vector env, its current observation and the episode returns being accumulated.

    Args:
        env: a vector env with SAME_STEP autoreset (``envs.make_vector_env``).
        seed: resets sub-env i with ``seed + i`` and seeds the action space.
        normalizer: optional; updated with every observation batch, applied to all of them.
    """

    def __init__(self, env: gym.vector.VectorEnv, seed: int,
                 normalizer: Optional[RunningNormalizer] = None) -> None:
        self.env, self.normalizer = env, normalizer
        self.adapt = ActionAdapter(env.single_action_space)
        self.images = is_image(env.single_observation_space)
        if self.images and normalizer is not None:
            raise ConfigError("normalize_obs is for feature vectors; image observations are scaled by the CNN")
        self.num_envs = env.num_envs
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        self.obs = self._observe(obs, update=True)
        self.ep_ret = np.zeros(self.num_envs)
        self.ep_len = np.zeros(self.num_envs, dtype=np.int64)
        self.finished: List[Tuple[float, int]] = []
        #: called with the number of environment steps after each vector step (a progress bar)
        self.on_step: Optional[Callable[[int], None]] = None

    def _observe(self, raw: Any, update: bool) -> torch.Tensor:
        # a copy: the vector env (copy=False) overwrites its observation array on the next step
        if self.images:  # kept as they are, uint8 [N, C, H, W]: the CNN scales them
            return torch.from_numpy(np.array(raw, dtype=np.uint8))
        obs = torch.from_numpy(np.array(raw, dtype=np.float32).reshape(len(raw), -1))
        if self.normalizer is None:
            return obs
        if update:
            self.normalizer.update(obs)
        return self.normalizer(obs)

    def step(self, action: np.ndarray) -> Step:
        """Step every environment with the policy's ``action`` batch ([N] or [N, A]);
        ``self.obs`` becomes the next observation ([N, obs_dim], float32)."""
        obs, reward, terminated, truncated, info = self.env.step(self.adapt(action))
        if self.on_step is not None:
            self.on_step(self.num_envs)
        reward = np.asarray(reward, dtype=np.float32)
        self.ep_ret += reward
        self.ep_len += 1
        ended = np.flatnonzero(terminated | truncated)
        final = None
        self.obs = self._observe(obs, update=True)
        if ended.size:
            final = self._observe(np.stack(info["final_obs"][ended]), update=False)
            self.finished += zip(self.ep_ret[ended].tolist(), self.ep_len[ended].tolist())
            self.ep_ret[ended] = 0.0
            self.ep_len[ended] = 0
        return Step(reward, terminated, truncated, ended, final)

    def pop_episodes(self) -> Tuple[List[float], List[int]]:
        """Returns and lengths of the episodes finished since the last call."""
        done, self.finished = self.finished, []
        return [r for r, _ in done], [n for _, n in done]

    # -------------------------------------------------------------- resume
    def state_dict(self) -> Dict[str, Any]:
        """Everything needed to continue exactly, as plain data: the env (physics, RNGs, time
        limits; ``env_state.capture``), the current observation and the partial episodes."""
        return {"env": env_state.capture(self.env), "obs": self.obs.clone(), "ep_ret": self.ep_ret.copy(),
                "ep_len": self.ep_len.copy(), "finished": list(self.finished)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Continue from ``state_dict``'s output, written onto this runner's env (made afresh
        for the same id); a ``ValueError`` if the state's shapes are not this runner's, a
        ``CheckpointError`` if its env state does not fit the env."""
        obs, ep_ret, ep_len = state["obs"], state["ep_ret"], state["ep_len"]
        if not (isinstance(obs, torch.Tensor) and obs.shape == self.obs.shape and obs.dtype == self.obs.dtype
                and isinstance(ep_ret, np.ndarray) and ep_ret.shape == self.ep_ret.shape
                and isinstance(ep_len, np.ndarray) and ep_len.shape == self.ep_len.shape):
            raise ValueError(f"the runner state is not one of {self.num_envs} environments with observations "
                             f"of shape {tuple(self.obs.shape[1:])}")
        env_state.restore(self.env, state["env"])
        self.obs = obs.clone()
        self.ep_ret, self.ep_len = ep_ret.astype(np.float64), ep_len.astype(np.int64)
        self.finished = [(float(r), int(n)) for r, n in state["finished"]]


def collect_rollout(runner: EnvRunner, policy: torch.nn.Module, buffer: RolloutBuffer,
                    device: torch.device = torch.device("cpu")) -> None:
    """Fill ``buffer`` with ``buffer.steps`` vector steps of ``policy``.

    One batched policy call per vector step, through the policy's ``numpy_actor`` where it has
    one (else its ``act``); everything else is NumPy writes into the preallocated buffer.
    """
    on_cpu = device.type == "cpu"
    actor = policy.numpy_actor() if on_cpu and hasattr(policy, "numpy_actor") else torch_actor(policy, device)
    with torch.inference_mode():
        for t in range(buffer.steps):
            obs = runner.obs.numpy()
            action = actor(obs)
            step = runner.step(action)
            buffer.store(t, obs, action, step.reward, step.terminated, step.truncated)
            if step.final_obs is not None:
                buffer.final_obs[t, torch.from_numpy(step.ended)] = step.final_obs
        buffer.last_obs.copy_(runner.obs)
