"""Running a saved policy: load a run folder, evaluate episodes, record a video."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch
from torch import nn

from . import algorithms
from .checkpoint import load_checkpoint
from .config import RunConfig
from .envs import ActionAdapter, make_env, make_vector_env
from .errors import EnvError, RLError
from .logger import CHECKPOINT_FILE, read_config
from .normalize import RunningNormalizer

MAX_PARALLEL = 16  # evaluation episodes stepped together


@dataclass
class Agent:
    """A trained policy with what it needs to act on raw observations."""

    algo: str
    config: RunConfig
    model: nn.Module
    normalizer: Optional[RunningNormalizer]

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Policy actions for raw observations [N, *obs_shape] (before ``ActionAdapter``)."""
        x = torch.from_numpy(np.asarray(obs, dtype=np.float32).reshape(len(obs), -1))
        if self.normalizer is not None:
            x = self.normalizer(x)
        with torch.no_grad():
            action = self.model.pi.mode(x) if deterministic else self.model.pi.sample(x)[0]
        return action.numpy()


def load_agent(run_dir: str | Path) -> Agent:
    """The policy saved in a run folder (config.json + checkpoint.pt)."""
    algo, settings = read_config(run_dir)
    algorithm = algorithms.get(algo)
    config = algorithm.config.from_dict(settings)
    state = load_checkpoint(Path(run_dir) / CHECKPOINT_FILE)
    env = make_env(config.env)
    try:
        model = algorithm.make_model(config, env.observation_space, env.action_space)
    finally:
        env.close()
    normalizer = None
    try:
        model.load_state_dict(state["model"])
        if state.get("normalizer") is not None:
            normalizer = RunningNormalizer(tuple(state["normalizer"]["mean"].shape))
            normalizer.load_state_dict(state["normalizer"])
    except (KeyError, RuntimeError, ValueError) as error:
        raise RLError(f"checkpoint in {run_dir} does not match its config.json "
                      f"({' '.join(str(error).split())[:200]})") from None
    model.eval()
    return Agent(algo, config, model, normalizer)


def evaluate(agent: Agent, episodes: int = 10, seed: int = 1000, deterministic: bool = True) -> List[float]:
    """Returns of ``episodes`` episodes; episode i starts from ``reset(seed=seed + i)``.

    Up to ``MAX_PARALLEL`` episodes run side by side in one vector env, the policy batched
    over them.
    """
    if episodes < 1:
        raise RLError(f"episodes must be >= 1, got {episodes}")
    returns: List[float] = []
    for first in range(0, episodes, MAX_PARALLEL):
        returns += _wave(agent, min(MAX_PARALLEL, episodes - first), seed + first, deterministic)
    return returns


def _wave(agent: Agent, n: int, seed: int, deterministic: bool) -> List[float]:
    """First-episode returns of ``n`` environments seeded ``seed, seed + 1, ...``."""
    env = make_vector_env(agent.config.env, n)
    adapt = ActionAdapter(env.single_action_space)
    try:
        obs, _ = env.reset(seed=seed)
        running, total = np.ones(n, dtype=bool), np.zeros(n)
        while running.any():
            obs, reward, terminated, truncated, _ = env.step(adapt(agent.act(obs, deterministic)))
            total += np.where(running, reward, 0.0)
            running &= ~(terminated | truncated)
    finally:
        env.close()
    return total.tolist()


def record_video(agent: Agent, path: str | Path, seed: int = 1000, deterministic: bool = True) -> int:
    """Render one episode (seed ``seed``) to an .mp4 file; returns the number of frames.

    Needs imageio with its ffmpeg plugin (``pip install imageio imageio-ffmpeg``) and whatever
    the environment needs to render (pygame for classic control, OpenGL for MuJoCo).
    """
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (the mp4 encoder)
    except ImportError:
        raise RLError("--video needs an mp4 encoder: pip install imageio imageio-ffmpeg") from None
    env = make_env(agent.config.env, render_mode="rgb_array")
    adapt = ActionAdapter(env.action_space)
    frames = []
    try:
        obs, _ = env.reset(seed=seed)
        frames.append(_render(env))
        done = False
        while not done:
            action = adapt(agent.act(np.asarray(obs)[None], deterministic))[0]
            obs, _, terminated, truncated, _ = env.step(action)
            frames.append(_render(env))
            done = terminated or truncated
    finally:
        env.close()
    fps = env.metadata.get("render_fps") or 30
    imageio.mimwrite(str(path), frames, fps=fps, macro_block_size=2)
    return len(frames)


def _render(env) -> np.ndarray:
    try:
        return env.render()
    except Exception as error:  # pygame or OpenGL missing: renderers raise many kinds
        message = " ".join(str(error).split())[:200]
        raise EnvError(f"cannot render {env.spec.id if env.spec else 'the environment'}: {message}") from None


def summary(returns: List[float]) -> str:
    """The last line ``eval`` prints."""
    return (f"mean_return={float(np.mean(returns)):.4f} std_return={float(np.std(returns)):.4f} "
            f"episodes={len(returns)}")
