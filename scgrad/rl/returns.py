"""Discounted returns and generalised advantage estimation, as small pure functions.

Time-major layout: every ``*_t`` tensor has shape ``[T, *B]`` — T steps of B independent
environments, where step t is the transition (s_t, a_t, r_t, s'_t). ``v_next_t`` is V(s'_t), the
value of the *true* successor state: at an episode end that is the final observation of the
episode, not the first observation of the next one (gymnasium's vector envs reset in between).

Episode ends come in two kinds (gymnasium's API):

- ``terminated``: a true terminal state; nothing follows, so nothing is bootstrapped.
- ``truncated``: the episode was cut short (time limit); the future still exists, so its value
  is bootstrapped from V(s'_t).

The end of the rollout (t = T − 1, not done) is a cut of the same kind as a truncation.
"""
from __future__ import annotations

import torch


def _check(gamma: float, lam: float, **tensors: torch.Tensor) -> torch.Size:
    """Shared argument checks: equal shapes [T, *B] with T ≥ 1, γ and λ in [0, 1]."""
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    first = next(iter(tensors.values())).shape
    if len(first) == 0 or first[0] == 0 or any(t.shape != first for t in tensors.values()):
        raise ValueError(f"time-major inputs must share one shape [T, *B] with T >= 1; got {shapes}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    return first


def _flags(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A boolean (or 0/1) episode-end flag as a 0/1 float tensor of ``like``'s dtype."""
    return x.to(like.dtype)


def gae(r_t: torch.Tensor, v_t: torch.Tensor, v_next_t: torch.Tensor,
        terminated_t: torch.Tensor, truncated_t: torch.Tensor,
        gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage estimates Â_t (Schulman et al. 2016), cut at episode ends.

        δ_t = r_t + γ (1 − terminated_t) V(s'_t) − V(s_t)
        Â_t = δ_t + γ λ (1 − done_t) Â_{t+1},     done_t = terminated_t ∨ truncated_t,  Â_T = 0

    A truncated step bootstraps from V(s'_t) through δ_t; a terminated one does not; neither
    lets the next episode's advantages leak back (the (1 − done_t) factor).

    Args:
        r_t: rewards, [T, *B].
        v_t: V(s_t), [T, *B].
        v_next_t: V(s'_t), [T, *B]; read where not terminated (any finite value elsewhere).
        terminated_t, truncated_t: episode-end flags (bool or 0/1), [T, *B].
        gamma: discount γ in [0, 1].
        lam: GAE's λ in [0, 1]; λ = 1 gives Monte-Carlo returns minus V, λ = 0 one-step TD errors.

    Returns:
        Â_t, [T, *B], detached.
    """
    _check(gamma, lam, r_t=r_t, v_t=v_t, v_next_t=v_next_t, terminated_t=terminated_t,
           truncated_t=truncated_t)
    with torch.no_grad():
        terminated = _flags(terminated_t, r_t)
        done = torch.maximum(terminated, _flags(truncated_t, r_t))
        delta_t = r_t + gamma * (1.0 - terminated) * v_next_t - v_t
        carry_t = gamma * lam * (1.0 - done)
        adv_t = torch.empty_like(delta_t)
        next_adv = torch.zeros_like(delta_t[0])
        for t in range(delta_t.shape[0] - 1, -1, -1):  # a T-step recursion: cheap next to the env
            next_adv = torch.addcmul(delta_t[t], carry_t[t], next_adv)
            adv_t[t] = next_adv
    return adv_t


def discounted_returns(r_t: torch.Tensor, v_next_t: torch.Tensor,
                       terminated_t: torch.Tensor, truncated_t: torch.Tensor,
                       gamma: float) -> torch.Tensor:
    """Discounted reward-to-go G_t, cut at episode ends and bootstrapped where cut short.

        G_t = r_t + γ (1 − terminated_t) · { V(s'_t)   if truncated_t or t = T − 1
                                           { G_{t+1}   otherwise

    Equals ``gae(..., lam=1) + v_t`` when ``v_next_t[t] = v_t[t + 1]`` within episodes.

    Args:
        r_t: rewards, [T, *B].
        v_next_t: V(s'_t), [T, *B]; read only at truncations and at t = T − 1 (not terminated).
        terminated_t, truncated_t: episode-end flags (bool or 0/1), [T, *B].
        gamma: discount γ in [0, 1].

    Returns:
        G_t, [T, *B], detached.
    """
    _check(gamma, 0.0, r_t=r_t, v_next_t=v_next_t, terminated_t=terminated_t,
           truncated_t=truncated_t)
    with torch.no_grad():
        not_terminated = 1.0 - _flags(terminated_t, r_t)
        truncated = _flags(truncated_t, r_t).bool()
        ret_t = torch.empty_like(r_t)
        future = v_next_t[-1]
        for t in range(r_t.shape[0] - 1, -1, -1):
            future = torch.where(truncated[t], v_next_t[t], future)
            future = r_t[t] + gamma * not_terminated[t] * future
            ret_t[t] = future
    return ret_t
