"""One epoch's on-policy experience as a flat batch, with advantages and returns computed."""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from scgrad.rl import distributed
from scgrad.rl.data.rollout_buffer import RolloutBuffer
from scgrad.rl.returns import gae


@dataclasses.dataclass
class Batch:
    """One epoch's experience, flattened over time and environments (M = T·N samples).

    ====  =================  ==============================================
    obs   [M, *obs_shape]    s (images: uint8)
    act   [M] or [M, A]      a, as sampled
    logp  [M]                log π_old(a|s)
    adv   [M]                Â, GAE (normalised if enabled)
    ret   [M]                the critic's target: the λ-return Â_raw + V_old
    v     [M]                V_old(s)
    ====  =================  ==============================================
    """

    obs: torch.Tensor
    act: torch.Tensor
    logp: torch.Tensor
    adv: torch.Tensor
    ret: torch.Tensor
    v: torch.Tensor

    def __len__(self) -> int:
        return self.obs.shape[0]

    def __getitem__(self, index: torch.Tensor | slice) -> "Batch":
        return Batch(*(getattr(self, f.name)[index] for f in dataclasses.fields(self)))


def compute_batch(buffer: RolloutBuffer, policy: nn.Module, value: nn.Module, gamma: float, lam: float,
                  normalize_advantages: bool) -> Batch:
    """Behaviour log-probabilities, values, advantages and returns for a filled buffer, each
    network evaluated in batched calls (``policy`` is the policy that collected the rollout).

    The successor value V(s'_t) is V(s_{t+1}) inside an episode, V(s_T) at the rollout's end,
    and V(final observation) at a truncation (terminal steps do not bootstrap; ``gae`` ignores
    them).
    """
    T, N = buffer.steps, buffer.num_envs
    flat = lambda x: x.reshape(T * N, *x.shape[2:])  # noqa: E731
    with torch.no_grad():
        obs = flat(buffer.obs)  # one tensor for the value and the policy (a shared CNN body runs once)
        v_t = value(obs).reshape(T, N)
        v_next_t = torch.cat([v_t[1:], value(buffer.last_obs)[None]])
        cut = buffer.truncated.nonzero(as_tuple=True)
        if cut[0].numel():
            v_next_t[cut] = value(buffer.final_obs[cut])
        adv_t = gae(buffer.rew, v_t, v_next_t, buffer.terminated, buffer.truncated, gamma, lam)
        ret_t = adv_t + v_t
        if normalize_advantages:
            adv_t = standardize(adv_t)
        act = flat(buffer.act)
        logp = policy.distribution(obs).log_prob(act)
    return Batch(obs, act, logp, flat(adv_t), flat(ret_t), flat(v_t))


def standardize(x: torch.Tensor) -> torch.Tensor:
    """(x − mean) / (std + 1e-8) over all elements: advantages on a common scale. In a
    data-parallel run the elements of every process count (``distributed.standardize``)."""
    return distributed.standardize(x)
