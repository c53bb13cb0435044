"""Tuned settings per algorithm and environment family, applied by default (as RL Baselines3
Zoo does per environment), so ``train ALGO --env ENV --steps N`` learns without flags.

The settings dataclasses keep each algorithm's published defaults (Spinning Up's); a preset
fills every field the user did not set. ``preset="auto"`` (the default of the command line and
of ``ppo()``, ``sac()``, ...) picks the preset of the environment's family, ``"none"`` keeps
the algorithm's own defaults, and a family name forces that family's values. The preset used
is recorded in config.json (field ``preset``) together with every value it filled in.

An environment's family is read from its gymnasium registration (the package its entry point
lives in), without importing it: ``classic_control`` for CartPole, Acrobot, MountainCar,
Pendulum; ``mujoco`` for HalfCheetah, Hopper, ... An id with no family, or a family without a
preset for the algorithm, runs with the algorithm's defaults (``preset="none"``).

Where the values come from (each measured on this project's shared 2-core CPU; the learning
tests re-check them on every CI run):

- on-policy, ``classic_control``: eight environments, GAE λ = 0.95, larger learning rates
  than Spinning Up's (VPG takes one policy step per epoch), minibatched and annealed PPO.
  CartPole-v1 at 100k steps, 20 deterministic episodes: PPO 500 (seeds 0–2), VPG ≥ 480,
  TRPO ≥ 494 (seeds 0–3) — ``tests/rl/test_learning.py``.
- off-policy, ``classic_control``: 64-64 networks and 1000 random steps instead of 256-256
  and 10000 (a tenth of a 15k budget instead of two thirds), 1000-step epochs. Pendulum-v1 at
  15k steps, 10 deterministic episodes: DDPG −171…−183, TD3 −172…−181, SAC −172…−175 (seeds
  0–2) — ``tests/rl/test_learning.py``.
- PPO, ``mujoco``: Stable-Baselines3's PPO defaults (one environment, 2048-step rollouts,
  10 epochs of 64-sample minibatches, lr 3e-4, gradient clipping 0.5, log σ starting at 0),
  which ``benchmarks/rl_onpolicy.py`` matched against SB3 (HalfCheetah-v5 1096 ± 59 and
  Hopper-v5 2199 ± 653 at 300k steps). VPG and TRPO on MuJoCo, and the off-policy algorithms
  there, keep Spinning Up's defaults, which were chosen for MuJoCo.
- PPO, ``atari`` (the ``ALE/<Game>-v5`` and ``<Game>NoFrameskip-v4`` ids of ``envs.atari``):
  CleanRL's ppo_atari settings (8 environments × 128 steps, 4 epochs of 4 minibatches, lr
  2.5e-4 annealed, clip 0.1, entropy 0.01, value weight 0.5, gradient clipping 0.5, GAE λ 0.95,
  rewards clipped for training, the Nature CNN); ``benchmarks/pong.py`` measures it on Pong.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

from scgrad.rl.atari_ids import parse_atari_id
from scgrad.rl.errors import ConfigError

AUTO, NONE = "auto", "none"

_ON_POLICY_CLASSIC = dict(num_envs=8, lam=0.95)
_OFF_POLICY_CLASSIC = dict(hidden_sizes=(64, 64), start_steps=1000, update_after=1000, steps_per_epoch=1000)

#: (algorithm, family) -> settings. Every key must be a field of the algorithm's settings.
PRESETS: Dict[Tuple[str, str], Dict[str, Any]] = {
    ("ppo", "classic_control"): dict(**_ON_POLICY_CLASSIC, steps_per_epoch=1024, update_epochs=10,
                                     minibatch_size=256, pi_lr=1e-3, vf_lr=1e-3, anneal_lr=True,
                                     target_kl=None),
    ("vpg", "classic_control"): dict(**_ON_POLICY_CLASSIC, steps_per_epoch=2000, pi_lr=5e-3, train_v_iters=40),
    ("trpo", "classic_control"): dict(**_ON_POLICY_CLASSIC, steps_per_epoch=2000, train_v_iters=40),
    ("ddpg", "classic_control"): dict(_OFF_POLICY_CLASSIC),
    ("td3", "classic_control"): dict(_OFF_POLICY_CLASSIC),
    ("sac", "classic_control"): dict(_OFF_POLICY_CLASSIC),
    ("ppo", "mujoco"): dict(num_envs=1, steps_per_epoch=2048, update_epochs=10, minibatch_size=64, pi_lr=3e-4,
                            vf_lr=3e-4, lam=0.95, target_kl=None, max_grad_norm=0.5, log_std_init=0.0,
                            vf_coef=0.5, adam_eps=1e-5, normalize_minibatch_advantages=True),
    ("ppo", "atari"): dict(num_envs=8, steps_per_epoch=1024, update_epochs=4, minibatch_size=256, pi_lr=2.5e-4,
                           anneal_lr=True, clip_ratio=0.1, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
                           lam=0.95, target_kl=None, adam_eps=1e-5, normalize_minibatch_advantages=True,
                           clip_rewards=True, checkpoint_every=10),
}

#: Gymnasium packages whose environments form a family, by the entry point's module prefix.
_FAMILIES = {"gymnasium.envs.classic_control": "classic_control", "gymnasium.envs.mujoco": "mujoco"}


def families() -> Tuple[str, ...]:
    """Every family name a preset can be asked for by (besides ``auto`` and ``none``)."""
    return tuple(sorted({family for _, family in PRESETS}))


def env_family(env_id: str) -> Optional[str]:
    """The family of a registered environment id, or ``None`` (unknown id, or a
    ``module:Env`` id, which is never imported here)."""
    if ":" in env_id:
        return None
    if parse_atari_id(env_id) is not None:
        return "atari"
    import gymnasium as gym

    try:
        entry = gym.spec(env_id).entry_point
    except gym.error.Error:  # unknown id: make_env reports it, with suggestions
        return None
    module = entry if isinstance(entry, str) else getattr(entry, "__module__", "")
    return next((family for prefix, family in _FAMILIES.items() if module.startswith(prefix)), None)


def resolve(algo: str, env_id: str, preset: str = AUTO) -> str:
    """The preset that ``preset`` means for ``algo`` on ``env_id``: a family name or ``none``."""
    if preset == AUTO:
        family = env_family(env_id)
        return family if (algo, family) in PRESETS else NONE
    if preset != NONE and preset not in families():
        raise ConfigError(f"unknown preset '{preset}'; choose auto, none or one of {', '.join(families())}")
    if preset != NONE and (algo, preset) not in PRESETS:
        have = [family for name, family in PRESETS if name == algo]
        raise ConfigError(f"{algo} has no '{preset}' preset; it has: {', '.join(have) or 'none'}")
    return preset


def apply(algo: str, settings: Mapping[str, Any], default_env: str) -> Dict[str, Any]:
    """``settings`` completed by the preset they ask for (``settings["preset"]``, default
    ``auto``): values given win, the preset fills the rest, and ``preset`` names what was used.

    Args:
        algo: the algorithm's name (``ppo``, ...).
        settings: the fields the user gave (any subset of the algorithm's settings).
        default_env: the environment the settings class defaults to (used when ``env`` is absent).
    """
    name = resolve(algo, settings.get("env", default_env), settings.get("preset", AUTO))
    return {**PRESETS.get((algo, name), {}), **settings, "preset": name}
