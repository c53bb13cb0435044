"""On-policy rollout storage: preallocated, time-major tensors for T steps of N environments."""
from __future__ import annotations

import copy
from typing import Tuple, Union

import torch


class RolloutBuffer:
    """T steps of N environments, written in place step by step, read whole after the rollout.

    ============  ======================  ==================================================
    field         shape                   meaning
    ============  ======================  ==================================================
    obs           [T, N, *obs_shape]      s_t as the policy saw it (normalised if enabled;
                                          images as uint8 [C, H, W])
    act           [T, N] or [T, N, A]     a_t as sampled (a Box action before clipping)
    rew           [T, N]                  r_t
    terminated    [T, N] bool             s'_t is terminal: nothing to bootstrap
    truncated     [T, N] bool             the episode was cut at s'_t: bootstrap V(s'_t)
    final_obs     [T, N, *obs_shape]      s'_t where an episode ended (else stale)
    last_obs      [N, *obs_shape]         s_T, to bootstrap the cut at the rollout's end
    ============  ======================  ==================================================

    Steps are written through NumPy views of the same memory: a per-step write then costs a
    memcpy, not a torch dispatch. The behaviour policy's log π_old(a_t|s_t) is not stored: the
    policy is fixed during a rollout, so ``onpolicy.compute_batch`` evaluates it for all T·N
    steps in one batched call, cheaper than T small ones.
    """

    def __init__(self, steps: int, num_envs: int, obs_shape: Union[int, Tuple[int, ...]], act_shape: Tuple[int, ...],
                 act_dtype: torch.dtype, obs_dtype: torch.dtype = torch.float32) -> None:
        T, N = steps, num_envs
        self.steps, self.num_envs = T, N
        shape = (obs_shape,) if isinstance(obs_shape, int) else tuple(obs_shape)
        self.obs = torch.zeros(T, N, *shape, dtype=obs_dtype)
        self.act = torch.zeros(T, N, *act_shape, dtype=act_dtype)
        self.rew = torch.zeros(T, N)
        self.terminated = torch.zeros(T, N, dtype=torch.bool)
        self.truncated = torch.zeros(T, N, dtype=torch.bool)
        self.final_obs = torch.zeros(T, N, *shape, dtype=obs_dtype)
        self.last_obs = torch.zeros(N, *shape, dtype=obs_dtype)
        self._np = {name: getattr(self, name).numpy() for name in
                    ("obs", "act", "rew", "terminated", "truncated", "final_obs")}

    def to(self, device: torch.device) -> "RolloutBuffer":
        """A copy on ``device`` (for networks on a GPU; steps are stored on the CPU)."""
        moved = copy.copy(self)
        for name in ("obs", "act", "rew", "terminated", "truncated", "final_obs", "last_obs"):
            setattr(moved, name, getattr(self, name).to(device))
        moved._np = {}
        return moved

    def store(self, t: int, obs, act, rew, terminated, truncated) -> None:
        """Write step ``t`` (arrays or CPU tensors of shape [N, ...])."""
        views = self._np
        views["obs"][t] = obs
        views["act"][t] = act
        views["rew"][t] = rew
        views["terminated"][t] = terminated
        views["truncated"][t] = truncated
