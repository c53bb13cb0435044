"""Distributions for action nodes, following ``torch.distributions``.

- ``Delta``: a point mass. A deterministic policy's action μ(s) recorded as a stochastic node
  (``g.sample("action", Delta(mu), estimator=Reparam())``): ``rsample`` returns μ itself, so
  the cost's gradient flows back through it (DDPG's deterministic policy gradient).
- ``DiagNormal``: a diagonal Gaussian parameterised by its log standard deviation (the
  on-policy Gaussian policies).
- ``TanhNormal``: a diagonal Gaussian squashed by tanh into (−1, 1), with the exact
  log-density of the squashed variable (SAC's policy).

Shapes follow torch's rule: a sample is ``sample_shape + batch_shape + event_shape``.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch.distributions import Distribution, Normal, constraints, register_kl

_LOG_2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class Delta(Distribution):
    """The point mass at ``loc``.

    ``rsample`` returns ``loc`` (expanded to the sample shape) without detaching, so a
    ``Reparam`` node holding a ``Delta`` passes pathwise gradients to whatever computed
    ``loc``. ``log_prob`` is 0 at ``loc`` and −inf elsewhere (a density with respect to the
    counting measure).

    Args:
        loc: the value, shape ``batch_shape + event_shape``.
        event_dim: how many rightmost dimensions of ``loc`` form one event (1 for an action
            vector [B, A]: batch shape [B], event shape [A]).
        validate_args: as in ``torch.distributions``.
    """

    has_rsample = True

    def __init__(self, loc: torch.Tensor, event_dim: int = 0, validate_args: Optional[bool] = None) -> None:
        if not 0 <= event_dim <= loc.dim():
            raise ValueError(f"Delta: event_dim must be in [0, {loc.dim()}] for loc of shape "
                             f"{tuple(loc.shape)}, got {event_dim}")
        self.loc, self.event_dim = loc, event_dim
        split = loc.dim() - event_dim
        super().__init__(loc.shape[:split], loc.shape[split:], validate_args=validate_args)

    @property
    def arg_constraints(self):  # type: ignore[override]
        return {"loc": constraints.independent(constraints.real, self.event_dim)}

    @property
    def support(self):  # type: ignore[override]
        return constraints.independent(constraints.real, self.event_dim)

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def mode(self) -> torch.Tensor:
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        return torch.zeros_like(self.loc)

    def expand(self, batch_shape, _instance=None) -> "Delta":
        new = self._get_checked_instance(Delta, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc, new.event_dim = self.loc.expand(batch_shape + self.event_shape), self.event_dim
        super(Delta, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        """``loc`` expanded to ``sample_shape + batch_shape + event_shape``, still attached to
        the graph that computed it."""
        return self.loc.expand(self._extended_shape(sample_shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """0 where ``value`` equals ``loc`` (in every event entry), −inf elsewhere; shape
        ``value.shape`` less the event dimensions."""
        if self._validate_args:
            self._validate_sample(value)
        equal = value == self.loc
        if self.event_dim:
            equal = equal.flatten(-self.event_dim).all(-1)
        return torch.zeros(equal.shape, dtype=self.loc.dtype, device=self.loc.device).masked_fill(~equal, -math.inf)

    def entropy(self) -> torch.Tensor:
        """0: a point mass carries no uncertainty."""
        return torch.zeros(self.batch_shape, dtype=self.loc.dtype, device=self.loc.device)


class DiagNormal(Distribution):
    """N(loc, diag(exp(log_scale)²)) over the last dimension, parameterised by the log standard
    deviation: the same distribution as ``Independent(Normal(loc, log_scale.exp()), 1)``.

    A Gaussian policy learns log σ; taking it directly saves ``Normal``'s exp, log and power in
    every ``log_prob`` and their backward nodes (log_prob below is four elementwise operations
    and a sum), which is a measurable share of a PPO minibatch step on 64-wide networks.

    Args:
        loc: means, shape ``batch_shape + [A]``.
        log_scale: log standard deviations, broadcastable to ``loc`` (e.g. [A], shared by the batch).
        validate_args: as in ``torch.distributions``.

    Shapes: batch shape ``loc.shape[:-1]``, event shape ``[A]``; ``log_prob`` and ``entropy``
    return the batch shape.
    """

    arg_constraints = {"loc": constraints.real_vector, "log_scale": constraints.real_vector}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc: torch.Tensor, log_scale: torch.Tensor, validate_args: Optional[bool] = None) -> None:
        if loc.dim() < 1:
            raise ValueError("DiagNormal: loc needs at least one dimension (the event dimension)")
        try:
            fits = torch.broadcast_shapes(loc.shape, log_scale.shape) == loc.shape
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(f"DiagNormal: log_scale {tuple(log_scale.shape)} must broadcast to loc {tuple(loc.shape)}")
        self.loc, self.log_scale = loc, log_scale
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=validate_args)

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def mode(self) -> torch.Tensor:
        return self.loc

    @property
    def stddev(self) -> torch.Tensor:
        return self.log_scale.exp().expand(self.loc.shape)

    @property
    def variance(self) -> torch.Tensor:
        return (2.0 * self.log_scale).exp().expand(self.loc.shape)

    def expand(self, batch_shape, _instance=None) -> "DiagNormal":
        new = self._get_checked_instance(DiagNormal, _instance)
        shape = torch.Size(batch_shape) + self.event_shape
        new.loc, new.log_scale = self.loc.expand(shape), self.log_scale.expand(shape)
        super(DiagNormal, new).__init__(torch.Size(batch_shape), self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        """loc + ε·exp(log_scale), ε ~ N(0, I): shape ``sample_shape + batch_shape + [A]``."""
        eps = torch.randn(self._extended_shape(sample_shape), dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + eps * self.log_scale.exp()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Σ_i −(z_i²/2 + log σ_i + log √(2π)), z = (value − loc)/σ: shape ``value.shape[:-1]``."""
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) * torch.exp(-self.log_scale)
        return -(0.5 * z.square() + self.log_scale + _HALF_LOG_2PI).sum(-1)

    def entropy(self) -> torch.Tensor:
        """Σ_i (1/2 + log √(2π) + log σ_i): the batch shape."""
        per_dim = (0.5 + _HALF_LOG_2PI + self.log_scale).expand(self.loc.shape)
        return per_dim.sum(-1)


@register_kl(DiagNormal, DiagNormal)
def _kl_diag_normal(p: DiagNormal, q: DiagNormal) -> torch.Tensor:
    """KL(p ‖ q) = Σ_i [log σ_q,i − log σ_p,i + (σ_p,i² + (μ_p,i − μ_q,i)²) / (2 σ_q,i²) − 1/2]: the
    batch shape (TRPO's trust region)."""
    var_ratio = (2.0 * (p.log_scale - q.log_scale)).exp()
    t = ((p.loc - q.loc) * torch.exp(-q.log_scale)).square()
    return (0.5 * (var_ratio + t - 1.0) - (p.log_scale - q.log_scale)).sum(-1)


class TanhNormal(Distribution):
    """a = tanh(x), x ~ N(loc, diag(scale²)): a diagonal Gaussian squashed into (−1, 1)^A.

    The log-density is the Gaussian's minus the log-Jacobian of tanh, summed over the action
    dimensions (Haarnoja et al. 2018, appendix C)::

        log π(a) = Σ_i [ log N(x_i; loc_i, scale_i) − log(1 − tanh²(x_i)) ],
        log(1 − tanh²(x)) = 2 (log 2 − x − softplus(−2x)),

    the right-hand form being exact and finite for every x, where ``1 − a²`` rounds to 0 once
    |x| passes about 9 in float32. ``rsample`` remembers its last pre-tanh sample, so
    ``log_prob`` of that very sample (checked by identity) uses x directly and never computes
    atanh(a), which is infinite at a = ±1; any other value goes through a clamped atanh.

    Args:
        loc: Gaussian means, shape ``batch_shape + [A]``.
        scale: Gaussian standard deviations (> 0), broadcastable to ``loc``.
        validate_args: as in ``torch.distributions``.

    Shapes: batch shape ``loc.shape[:-1]``, event shape ``[A]``; ``log_prob`` returns the batch
    shape. ``mode`` is tanh(loc) (the squashed Gaussian mode, the usual deterministic action;
    the squashed density's own mode can differ). No closed-form mean or entropy.
    """

    arg_constraints = {"loc": constraints.real_vector, "scale": constraints.independent(constraints.positive, 1)}
    support = constraints.independent(constraints.interval(-1.0, 1.0), 1)
    has_rsample = True

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, validate_args: Optional[bool] = None) -> None:
        if loc.dim() < 1:
            raise ValueError("TanhNormal: loc needs at least one dimension (the action dimension)")
        self.loc, self.scale = torch.broadcast_tensors(loc, scale)
        self._cache: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None  # (a, x, ε)
        super().__init__(self.loc.shape[:-1], self.loc.shape[-1:], validate_args=validate_args)

    @property
    def mode(self) -> torch.Tensor:
        return torch.tanh(self.loc)

    @property
    def base(self) -> Normal:
        """The Gaussian before the squashing (batch shape ``loc.shape``, no event dims)."""
        return Normal(self.loc, self.scale, validate_args=False)

    def expand(self, batch_shape, _instance=None) -> "TanhNormal":
        new = self._get_checked_instance(TanhNormal, _instance)
        shape = torch.Size(batch_shape) + self.event_shape
        new.loc, new.scale, new._cache = self.loc.expand(shape), self.scale.expand(shape), None
        super(TanhNormal, new).__init__(torch.Size(batch_shape), self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        """tanh(loc + ε·scale), ε ~ N(0, I): shape ``sample_shape + batch_shape + [A]``,
        differentiable in loc and scale."""
        eps = torch.randn(self._extended_shape(sample_shape), dtype=self.loc.dtype, device=self.loc.device)
        x = self.loc + eps * self.scale
        a = torch.tanh(x)
        self._cache = (a, x, eps)
        return a

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log π(value), summed over the action dimension: shape ``value.shape[:-1]``."""
        if self._validate_args:
            self._validate_sample(value)
        if self._cache is not None and value is self._cache[0]:
            _, x, eps = self._cache
            log_normal = -0.5 * eps.square() - self.scale.log() - _HALF_LOG_2PI
        else:
            # a tanh sample can round to exactly ±1 in float32: clamp so atanh stays finite
            tiny = torch.finfo(value.dtype).eps
            x = torch.atanh(value.clamp(-1.0 + tiny, 1.0 - tiny))
            log_normal = self.base.log_prob(x)
        return (log_normal - tanh_log_abs_det_jacobian(x)).sum(-1)


def tanh_log_abs_det_jacobian(x: torch.Tensor) -> torch.Tensor:
    """log |d tanh(x)/dx| = log(1 − tanh²(x)) = 2 (log 2 − x − softplus(−2x)), elementwise;
    finite for every finite x."""
    return 2.0 * (_LOG_2 - x - F.softplus(-2.0 * x))
