"""Twin Delayed DDPG (Fujimoto et al. 2018), on ``scgrad``.

DDPG's graph and gradient step (``ddpg.py``) with the paper's three changes against the
critic's overestimation:

- twin critics, evaluated together (``EnsembleQ``), bootstrapping from the smaller target;
- target policy smoothing: a′ = clip(μ_targ(s′) + clip(σ·ε, −c, c), −1, 1), ε ~ N(0, I);
- delayed actor steps: the actor and both targets move once per ``policy_delay`` critic steps.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import torch

from scgrad.rl.algos import offpolicy, registry as algorithms
from scgrad.rl.algos.base import RunResult
from scgrad.rl.algos.ddpg import DDPG, DDPGConfig
from scgrad.rl.config import require




@dataclasses.dataclass
class TD3Config(DDPGConfig):
    """TD3 settings; defaults are Spinning Up's (noise in the policy's [−1, 1] action units).

    Attributes:
        target_noise: σ, the standard deviation of the smoothing noise on the target action.
        noise_clip: c, the bound on the smoothing noise's magnitude.
        policy_delay: critic steps per actor step (and per polyak update of the targets).
    """

    target_noise: float = 0.2
    noise_clip: float = 0.5
    policy_delay: int = 2

    def validate(self) -> None:
        super().validate()
        require(self.target_noise >= 0, f"target_noise must be >= 0, got {self.target_noise}")
        require(self.noise_clip >= 0, f"noise_clip must be >= 0, got {self.noise_clip}")
        require(self.policy_delay >= 1, f"policy_delay must be >= 1, got {self.policy_delay}")


class TD3(DDPG):
    """TD3's gradient step: DDPG's with twin critics, smoothed targets and delayed actor steps."""

    name = "td3"
    Config = TD3Config
    n_critics = 2

    @property
    def policy_delay(self) -> int:
        return self.config.policy_delay

    def target_action(self, next_obs: torch.Tensor) -> torch.Tensor:
        """clip(μ_targ(s′) + clip(σ·ε, −c, c), −1, 1), [B, A]."""
        mu = self.model.pi_targ(next_obs)
        c = self.config
        noise = (torch.randn_like(mu) * c.target_noise).clamp_(-c.noise_clip, c.noise_clip)
        return (mu + noise).clamp_(-1.0, 1.0)


def td3(env: str, out_dir: Optional[str] = None, **options: Any) -> RunResult:
    """Train TD3 on gymnasium environment ``env``.

    Args:
        env: environment id (a bounded 1-D Box action space, Box observations).
        out_dir: run folder (config.json, progress.csv, checkpoint); ``None``: no files.
        **options: ``resume``, ``progress``, ``threads``, ``stop_after``, ``actor_critic`` (as in
            ``registry.train``; tuned presets fill the settings not given) and
            any field of :class:`TD3Config` (and the shared ``OffPolicyConfig`` and
            ``RunConfig``): seed, steps, steps_per_epoch, hidden_sizes, batch_size, replay_size,
            start_steps, update_after, update_every, polyak, gamma, pi_lr, q_lr, act_noise,
            target_noise, noise_clip, policy_delay, ...

    Returns:
        A ``RunResult`` with the trained model (``model.pi.mode(obs)`` acts) and the progress rows.
    """
    return algorithms.train("td3", env, out_dir, **options)


ALGORITHM = offpolicy.algorithm("td3", TD3Config, TD3)
