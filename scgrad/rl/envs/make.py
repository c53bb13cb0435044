"""Gymnasium environments for the RL toolkit: creation with clear errors, supported spaces and
Box action scaling (an environment's state for ``--resume`` is ``env_state``'s)."""
from __future__ import annotations

import functools
from typing import Optional

import gymnasium as gym
import numpy as np
from scgrad.rl.envs.atari import AtariEnv, parse_atari_id
from scgrad.rl.envs.vector import SerialVectorEnv
from scgrad.rl.errors import EnvError


def make_env(env_id: str, render_mode: Optional[str] = None) -> gym.Env:
    """One environment, or an ``EnvError`` in one line for an unknown id or a missing extra.
    Atari ids (``ALE/<Game>-v5``, ``<Game>NoFrameskip-v4``) give the preprocessed pixel game
    of ``envs.atari`` (observations [4, 84, 84] uint8)."""
    if parse_atari_id(env_id) is not None:
        return AtariEnv(env_id, render_mode)
    if env_id.startswith("ALE/"):
        register_ale()
    try:
        return gym.make(env_id, **({"render_mode": render_mode} if render_mode else {}))
    # NameNotFound, VersionNotFound, DependencyNotInstalled, ...; ModuleNotFoundError for the
    # module of a 'module:Env-v0' id
    except (gym.error.Error, ModuleNotFoundError) as error:
        message = " ".join(str(error).split())
        raise EnvError(f"cannot make environment '{env_id}': {message}") from None


def register_ale() -> None:
    """Register the Arcade Learning Environment's ``ALE/...`` ids with gymnasium, which since
    1.0 leaves that to the user (``gym.register_envs(ale_py)``); an ``EnvError`` naming the
    extra to install if ale-py is missing."""
    try:
        import ale_py
    except ImportError:
        raise EnvError("the ALE/ environments need ale-py: pip install 'scgrad[atari]'") from None
    gym.register_envs(ale_py)


def make_vector_env(env_id: str, num_envs: int) -> SerialVectorEnv:
    """``num_envs`` copies of ``env_id`` stepped in this process, spaces checked.

    Autoreset is SAME_STEP: the step that ends an episode returns the next episode's first
    observation and puts the ending one in ``info["final_obs"]`` — so no step is wasted on a
    reset, and the final observation is there to bootstrap from at a time-limit truncation.
    Seed it with ``reset(seed=seed)`` (sub-env i gets seed + i). The observation array it
    returns is reused by the next step (the runner copies it once, see rollout.EnvRunner).
    """
    if num_envs < 1:
        raise EnvError(f"num_envs must be >= 1, got {num_envs}")
    first = make_env(env_id)  # checked before the vector env allocates for its spaces
    try:
        check_spaces(first.observation_space, first.action_space, env_id)
    except EnvError:
        first.close()
        raise
    return SerialVectorEnv([lambda: first] + [functools.partial(make_env, env_id)] * (num_envs - 1))


def check_spaces(obs_space: gym.Space, act_space: gym.Space, env_id: str = "environment",
                 images: bool = True) -> None:
    """Accept a Box observation space — features, or (``images``) channel-first images
    [C, H, W] of at least 36×36 pixels, which the CNN policies take — and a Discrete or 1-D
    Box action space; else ``EnvError``."""
    if not isinstance(obs_space, gym.spaces.Box):
        raise EnvError(f"{env_id}: observation space {obs_space} is not supported "
                       "(the policies need a Box)")
    if is_image(obs_space):
        if not images:
            raise EnvError(f"{env_id}: observation space {obs_space} is an image, and these networks take "
                           "feature vectors (the CNN policies are on-policy: vpg, trpo, ppo)")
        if len(obs_space.shape) != 3 or min(obs_space.shape[1:]) < 36 or obs_space.shape[0] > 16:
            raise EnvError(f"{env_id}: image observations {obs_space.shape} are not channel-first [C, H, W] "
                           "of at least 36×36 pixels, as the CNN policies need (the Atari ids give [4, 84, 84])")
    if isinstance(act_space, gym.spaces.Discrete):
        return
    if isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1:
        return
    raise EnvError(f"{env_id}: action space {act_space} is not supported "
                   "(use Discrete or a 1-D Box)")


def is_image(space: gym.spaces.Box) -> bool:
    """Whether a Box holds images: uint8 pixels in [0, 255], laid out H×W or H×W×C (or C×H×W)."""
    return (space.dtype == np.uint8 and len(space.shape) in (2, 3)
            and bool(np.all(space.low == 0)) and bool(np.all(space.high == 255)))


class ActionAdapter:
    """Maps the policy's actions to the environment's.

    Discrete actions pass through. For a Box with finite bounds the policy acts in [−1, 1]
    (where a Gaussian starting at N(0, 1) explores sensibly): its action is clipped to [−1, 1]
    and rescaled affinely to [low, high]. Dimensions with an infinite bound pass through.
    The buffer keeps the unclipped sample, so log-probabilities stay those of the policy.
    """

    def __init__(self, act_space: gym.Space) -> None:
        self.discrete = isinstance(act_space, gym.spaces.Discrete)
        if self.discrete:
            return
        low, high = act_space.low.astype(np.float64), act_space.high.astype(np.float64)
        self.bounded = np.isfinite(low) & np.isfinite(high)
        low, high = np.where(self.bounded, low, -1.0), np.where(self.bounded, high, 1.0)
        self.dtype = act_space.dtype
        # in the env's dtype, so the affine map below yields it without a cast
        self.scale = np.where(self.bounded, (high - low) / 2.0, 1.0).astype(self.dtype)
        self.offset = np.where(self.bounded, (high + low) / 2.0, 0.0).astype(self.dtype)
        self.all_bounded = bool(self.bounded.all())

    def __call__(self, action: np.ndarray) -> np.ndarray:
        """[N] integers or [N, A] floats from the policy -> an action batch for the env."""
        if self.discrete:
            return action
        clipped = np.clip(action, -1.0, 1.0) if self.all_bounded else \
            np.where(self.bounded, np.clip(action, -1.0, 1.0), action)
        return (clipped * self.scale + self.offset).astype(self.dtype, copy=False)
