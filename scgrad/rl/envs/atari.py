"""Atari games from pixels, preprocessed as the DQN/PPO literature does, with an exact state.

``make_env("ALE/Pong-v5")`` (and every ``ALE/<Game>-v5`` or ``<Game>NoFrameskip-v4`` id) gives
an ``AtariEnv``: one emulator (ale-py's ``ALEInterface``) behind the standard preprocessing —
each agent step holds the action for 4 frames and observes the pixel-wise maximum of the last
two (flicker), in grayscale, area-averaged to 84×84, the last 4 such frames stacked
(observations [4, 84, 84] uint8); an episode starts with 1–30 no-op steps and FIRE (the games
that need it to start), and is one full game (no end at a lost life).

The evaluation protocol is the id's, and is stated with every result:

- ``-v5`` (Machado et al. 2018): sticky actions — at every frame the emulator repeats its
  previous action with probability 0.25 — and a cap of 108,000 frames (30 minutes) per game;
- ``NoFrameskip-v4``: the same without sticky actions (the older protocol; its scores are
  higher and not comparable with v5's).

``Karpathy/Pong-v0`` is the protocol of Karpathy's "Pong from Pixels" (2016): gym's old
``Pong-v0`` — each agent step holds the action for 2, 3 or 4 frames (uniform), sticky actions
0.25 — with the blog's preprocessing: rows 35–194 of the red channel, every second pixel, the
background erased and all else set to 255, the last 2 such frames stacked (observations
[2, 80, 80] uint8, of 0 or 255; the blog's policy sees their difference); no no-ops or FIRE;
the 108,000-frame cap. It exists for Pong only (the erased colours are Pong's background).

Rewards are the game's own: an episode's return is its full, unclipped score. Training may clip
them (``clip_rewards``); what is reported never is.

Why not ale-py's native ``AtariVectorEnv`` (C++ preprocessing, threads)? It cannot save or
restore its emulators, and exact resume needs both: here sticky actions, no-ops and frame
counts come from the env's own ``np_random`` and attributes, and the emulator's state is the
``ALEState`` bytes (``envs.state.AleEmulator``), so a checkpoint holds the whole game. On this
2-core machine the two step about equally fast per core (``benchmarks/pong.py`` measures both).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import gymnasium as gym
import numpy as np

from scgrad.rl.atari_ids import parse_atari_id
from scgrad.rl.errors import EnvError

PROTOCOLS = {"v5": dict(sticky=0.25, max_frames=108_000), "v4": dict(sticky=0.0, max_frames=108_000),
             "karpathy": dict(sticky=0.25, max_frames=108_000)}
SIZE, STACK, SKIP, NOOP_MAX = 84, 4, 4, 30
KARPATHY_SIZE, KARPATHY_STACK, KARPATHY_SKIPS = 80, 2, (2, 3, 4)
PONG_BACKGROUND = (144, 109)  # red values of Pong's two background colours, erased by karpathy_frame


def karpathy_frame(rgb: np.ndarray) -> np.ndarray:
    """Karpathy's Pong preprocessing: a 210×160×3 screen → [80, 80] bool, True where something
    other than the background is (paddles, ball): rows 35–194, every second pixel of each second
    row, of the red channel."""
    red = rgb[35:195:2, ::2, 0]
    return (red != PONG_BACKGROUND[0]) & (red != PONG_BACKGROUND[1])


def area_weights(n_in: int, n_out: int) -> Tuple[np.ndarray, np.ndarray]:
    """Taps of a 1-D area-average resize from ``n_in`` to ``n_out`` samples: (indices [K, n_out],
    weights [K, n_out]) with out[j] = Σ_k weights[k, j] · in[indices[k, j]]; each output averages
    the stretch of input it covers (partly covered samples weighted by their overlap)."""
    scale = n_in / n_out
    taps = int(np.ceil(scale)) + 1
    indices, weights = np.zeros((taps, n_out), np.int64), np.zeros((taps, n_out), np.float32)
    for j in range(n_out):
        lo, hi = j * scale, (j + 1) * scale
        for k, i in enumerate(range(int(np.floor(lo)), min(int(np.ceil(hi)), n_in))):
            indices[k, j], weights[k, j] = i, (min(hi, i + 1) - max(lo, i)) / scale
    return indices, weights


class AtariEnv(gym.Env):
    """One Atari game, preprocessed (see the module docstring).

    Args:
        env_id: ``ALE/<Game>-v5``, ``<Game>NoFrameskip-v4`` or ``Karpathy/Pong-v0``.
        render_mode: ``"rgb_array"``: ``render()`` returns the current 210×160×3 screen.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 60 // SKIP}

    def __init__(self, env_id: str, render_mode: Optional[str] = None) -> None:
        parsed = parse_atari_id(env_id)
        if parsed is None:
            raise EnvError(f"{env_id} is not an Atari id scgrad makes (ALE/<Game>-v5, <Game>NoFrameskip-v4 "
                           "or Karpathy/Pong-v0)")
        try:
            from ale_py import ALEInterface, LoggerMode, roms
        except ImportError:
            raise EnvError("the Atari environments need ale-py: pip install 'scgrad[atari]'") from None
        game, self.protocol = parsed
        if self.protocol == "karpathy" and game != "pong":
            raise EnvError(f"{env_id}: Karpathy's preprocessing is defined for Pong only (Karpathy/Pong-v0)")
        try:
            rom = roms.get_rom_path(game)
        except Exception:  # ale-py raises its own error types across versions
            rom = None
        if rom is None:
            raise EnvError(f"{env_id}: ale-py has no ROM named '{game}'")
        ALEInterface.setLoggerMode(LoggerMode.Error)
        self.ale = ALEInterface()
        self.ale.setFloat("repeat_action_probability", 0.0)  # sticky actions are drawn here, from np_random
        self.ale.loadROM(rom)
        self.actions = list(self.ale.getMinimalActionSet())
        self.sticky, self.max_frames = PROTOCOLS[self.protocol]["sticky"], PROTOCOLS[self.protocol]["max_frames"]
        self.render_mode = render_mode
        self.action_space = gym.spaces.Discrete(len(self.actions))
        height, width = self.ale.getScreenDims()
        if self.protocol == "karpathy":
            shape = (KARPATHY_STACK, KARPATHY_SIZE, KARPATHY_SIZE)
            self.metadata = {**self.metadata, "render_fps": 60 // 3}  # 3 frames per step on average
            self._rgb = np.zeros((height, width, 3), np.uint8)
        else:
            shape = (STACK, SIZE, SIZE)
            self._rows, self._cols = area_weights(height, SIZE), area_weights(width, SIZE)
            self._screens = np.zeros((2, height, width), np.uint8)
        self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        self.frames = np.zeros(shape, np.uint8)  # the observation (plain data: saved)
        self.held = 0  # the index of the action the emulator holds (sticky actions repeat it)

    # -------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: Optional[int] = None, options: Optional[Dict[str, Any]] = None):
        """A new game: 1–30 no-op steps, then FIRE where the game has it (``Karpathy/Pong-v0``:
        neither); returns (obs, {})."""
        super().reset(seed=seed)
        self.ale.reset_game()
        self.held = 0
        self.frames[:] = 0
        if self.protocol == "karpathy":
            self._push_karpathy_frame()
            return self.frames.copy(), {}
        for _ in range(int(self.np_random.integers(1, NOOP_MAX + 1))):
            self._advance(0)
        fire = self._fire_index()
        if fire is not None:
            self._advance(fire)
        return self.frames.copy(), {}

    def step(self, action: int):
        """Hold ``action`` for 4 frames; returns (obs, reward, terminated, truncated, {})."""
        reward = self._advance(int(action))
        terminated = self.ale.game_over()
        truncated = not terminated and self.ale.getEpisodeFrameNumber() >= self.max_frames
        return self.frames.copy(), reward, terminated, truncated, {}

    def render(self) -> Optional[np.ndarray]:
        """The current screen, 210×160×3 uint8 (``render_mode="rgb_array"``)."""
        return self.ale.getScreenRGB() if self.render_mode == "rgb_array" else None

    # -------------------------------------------------------------- the frames
    def _fire_index(self) -> Optional[int]:
        from ale_py import Action

        return self.actions.index(Action.FIRE) if Action.FIRE in self.actions else None

    def _advance(self, action: int) -> float:
        """Play 4 frames with sticky actions, push the max of the last two onto the stack
        (``Karpathy/Pong-v0``: 2–4 frames, push the last)."""
        if self.protocol == "karpathy":
            return self._advance_karpathy(action)
        reward = 0.0
        for frame in range(SKIP):
            if self.sticky == 0.0 or self.np_random.random() >= self.sticky:
                self.held = action
            reward += self.ale.act(self.actions[self.held])
            if frame >= SKIP - 2:
                self.ale.getScreenGrayscale(self._screens[frame - (SKIP - 2)])
        self.frames[:-1] = self.frames[1:]
        self.frames[-1] = self._shrink(np.maximum(self._screens[0], self._screens[1]))
        return reward

    def _shrink(self, screen: np.ndarray) -> np.ndarray:
        """210×160 → 84×84 by area averaging (separable: rows, then columns), rounded to uint8."""
        (ri, rw), (ci, cw) = self._rows, self._cols
        rows = (screen[ri].astype(np.float32) * rw[:, :, None]).sum(0)          # [84, 160]
        return np.rint((rows[:, ci] * cw[None]).sum(1)).astype(np.uint8)  # [84, 84]

    def _advance_karpathy(self, action: int) -> float:
        reward = 0.0
        for _ in range(int(self.np_random.integers(KARPATHY_SKIPS[0], KARPATHY_SKIPS[-1] + 1))):
            if self.np_random.random() >= self.sticky:
                self.held = action
            reward += self.ale.act(self.actions[self.held])
        self._push_karpathy_frame()
        return reward

    def _push_karpathy_frame(self) -> None:
        self.ale.getScreenRGB(self._rgb)
        self.frames[:-1] = self.frames[1:]
        self.frames[-1] = karpathy_frame(self._rgb) * np.uint8(255)
