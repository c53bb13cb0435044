"""Running a policy: evaluation episodes in parallel, a video of one episode (``Agent``)."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, MutableMapping, Optional

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from scgrad.rl.config import RunConfig
from scgrad.rl.envs.make import ActionAdapter, is_image, make_env, make_vector_env
from scgrad.rl.envs.normalize import RunningNormalizer
from scgrad.rl.errors import EnvError, RLError
from scgrad.rl.run.outputs import check_output_file

MAX_PARALLEL = 16  # evaluation episodes stepped together


@dataclass
class Agent:
    """A trained policy with what it needs to act on raw observations.

    ``act(obs)`` is the way to use it: one observation or a batch in, actions in the
    environment's own action space out. ``observation_space`` and ``action_space`` are the
    environment's; left out, they are read from a freshly made ``config.env``.
    """

    algo: str
    config: RunConfig
    model: nn.Module
    normalizer: Optional[RunningNormalizer]
    observation_space: Optional[gym.Space] = None
    action_space: Optional[gym.Space] = None

    def __post_init__(self) -> None:
        if self.observation_space is None or self.action_space is None:
            probe = make_env(self.config.env)
            self.observation_space, self.action_space = probe.observation_space, probe.action_space
            probe.close()
        self._adapt = ActionAdapter(self.action_space)
        self._images = is_image(self.observation_space)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Environment actions for one raw observation (``obs_shape``) or a batch
        (``[N, *obs_shape]``): an action of the environment's space (an integer for Discrete,
        ``[A]`` within the Box bounds), or ``[N]`` / ``[N, A]`` of them. ``deterministic``: the
        policy's mode, else a sample."""
        obs = np.asarray(obs, dtype=np.uint8 if self._images else np.float32)
        shape = tuple(self.observation_space.shape)
        single = obs.shape == shape
        if not single and obs.shape[1:] != shape:
            raise RLError(f"act: an observation of {self.config.env} has shape {shape}; got {tuple(obs.shape)}, "
                          f"which is neither that nor a batch [N, {', '.join(map(str, shape))}]")
        actions = self._adapt(self.policy_actions(obs[None] if single else obs, deterministic))
        return actions[0] if single else actions

    def policy_actions(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """The policy's own actions for raw observations [N, *obs_shape], before
        ``ActionAdapter`` (Box actions in [−1, 1] units, unclipped)."""
        if self._images:  # uint8 [N, C, H, W], scaled by the CNN
            x = torch.from_numpy(np.ascontiguousarray(obs, dtype=np.uint8))
        else:
            x = torch.from_numpy(np.asarray(obs, dtype=np.float32).reshape(len(obs), -1))
        if self.normalizer is not None:
            x = self.normalizer(x)
        with torch.no_grad():
            action = self.model.pi.mode(x) if deterministic else self.model.pi.sample(x)[0]
        return action.numpy()


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
            obs, reward, terminated, truncated, _ = env.step(adapt(agent.policy_actions(obs, deterministic)))
            total += np.where(running, reward, 0.0)
            running &= ~(terminated | truncated)
    finally:
        env.close()
    return total.tolist()


VIDEO_FORMATS = ("mp4", "gif")  # what imageio writes with the ffmpeg plugin and with pillow


def record_video(agent: Agent, path: str | Path, seed: int = 1000, deterministic: bool = True) -> int:
    """Render one episode (seed ``seed``) to an .mp4 or .gif file; returns the number of frames.

    The file name is checked (``check_video_path``) before the episode runs. Needs imageio
    (``pip install imageio``; .mp4 also needs ``imageio-ffmpeg``) and whatever the environment
    needs to render (pygame for classic control, OpenGL for MuJoCo).
    """
    path = check_video_path(path)
    imageio = _video_writer(path)
    env = make_env(agent.config.env, render_mode="rgb_array")
    if type(env.unwrapped).__module__.startswith("gymnasium.envs.mujoco"):  # no import of mujoco needed
        try:
            choose_mujoco_gl()
        except EnvError:
            env.close()
            raise
    adapt = ActionAdapter(env.action_space)
    frames = []
    try:
        obs, _ = env.reset(seed=seed)
        frames.append(_render(env))
        done = False
        while not done:
            action = adapt(agent.policy_actions(np.asarray(obs)[None], deterministic))[0]
            obs, _, terminated, truncated, _ = env.step(action)
            frames.append(_render(env))
            done = terminated or truncated
    finally:
        env.close()
    fps = env.metadata.get("render_fps") or 30
    # ffmpeg takes a frame rate; pillow's GIF writer a frame duration in ms (and loops)
    timing = dict(duration=1000 / fps, loop=0) if path.suffix.lower() == ".gif" else dict(fps=fps, macro_block_size=2)
    try:
        imageio.mimwrite(str(path), frames, **timing)
    except OSError as error:  # a full disk, a folder that turned read-only
        raise RLError(f"--video {path}: cannot write it ({error.strerror or error})") from None
    return len(frames)


def check_video_path(path: str | Path) -> Path:
    """``path`` as a ``Path`` if a video of one of ``VIDEO_FORMATS`` can be written there; an
    ``RLError`` naming ``--video`` and the fix otherwise (a missing folder, another extension)."""
    return check_output_file(path, VIDEO_FORMATS, "--video")


def _video_writer(path: Path):
    try:
        import imageio.v2 as imageio
        if path.suffix.lower() == ".mp4":
            import imageio_ffmpeg  # noqa: F401  (the mp4 encoder)
    except ImportError:
        raise RLError("--video needs an encoder: pip install imageio imageio-ffmpeg") from None
    return imageio


#: Headless OpenGL backends of MuJoCo, in the order they are tried.
HEADLESS_GL = ("egl", "osmesa")


def choose_mujoco_gl(environ: Optional[MutableMapping[str, str]] = None,
                     works: Optional[Callable[[str], bool]] = None) -> Optional[str]:
    """Pick MuJoCo's OpenGL backend on a machine without a display, before the first render.

    Left alone, gymnasium tries GLFW first, which fails without a display and leaves the
    process unable to render. So when neither ``MUJOCO_GL`` nor a display is set, the first
    of ``HEADLESS_GL`` that can create a context (tried in a subprocess, so a failed attempt
    leaves this process clean) is written into ``MUJOCO_GL`` and ``PYOPENGL_PLATFORM``.

    Args:
        environ: the environment variables to read and set (default ``os.environ``).
        works: ``works(backend) -> bool`` (default: try it in a subprocess).

    Returns:
        The backend in ``MUJOCO_GL`` afterwards (``None``: a display will be used).

    Raises:
        EnvError: no headless backend works; says which libraries and variable to set.
    """
    environ = os.environ if environ is None else environ
    if environ.get("MUJOCO_GL") or environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return environ.get("MUJOCO_GL")
    for backend in HEADLESS_GL:
        if (works or _gl_backend_works)(backend):
            environ["MUJOCO_GL"] = environ["PYOPENGL_PLATFORM"] = backend
            return backend
    raise EnvError("cannot render MuJoCo: no display and no headless OpenGL backend works here; install EGL "
                   "(Debian: libegl1) and set MUJOCO_GL=egl, or OSMesa (libosmesa6) and set MUJOCO_GL=osmesa")


def _gl_backend_works(backend: str) -> bool:
    """Whether MuJoCo can create an OpenGL context with ``backend``, tried in a fresh process."""
    code = f"from mujoco.{backend} import GLContext; GLContext(8, 8).free()"
    variables = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
    try:
        return subprocess.run([sys.executable, "-c", code], env=variables, capture_output=True,
                              timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


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
