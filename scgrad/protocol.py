"""The extension protocol: how a stochastic node draws its value and enters the surrogate.

Estimator authors implement :class:`Estimator` with these types (users pick estimators from
``scgrad.estimators`` and never need this module).

A graph's surrogate (Loaded-DiCE form, with the any-order baseline of Mao et al. 2019) is

    L = Σ_c  exp(Σ_{w ∈ W_c} ℓ_w) · c
      + Σ_w  exp(Σ_{a ∈ A_w} ℓ_a) · ((1 − exp(ℓ_w)) · b_w + v_w)
      + Σ_w  (r_w − stop_grad(r_w))

where, for each stochastic node w, the estimator supplies

- ``score`` s_w and ``log_weight``: ℓ_w = (s_w − stop_grad(s_w)) + log_weight is the log of the
  multiplicative term put in front of every cost downstream of w (W_c: the nodes upstream of
  cost c; A_w: the nodes upstream of w). The score function gives ``score=log_prob`` (DiCE's
  magic box: value 1, gradient the score), which the graph sums over a whole sequence of nodes
  before boxing (one operation, not one per node); importance weights and enumeration give a
  ``log_weight``; pathwise estimators give neither;
- ``baseline`` b_w: a baseline that does not depend on w's sample; the term
  ``(1 − exp(ℓ_w)) · b_w`` has zero expected gradient of every order and cuts variance. The
  graph folds it into the costs' terms (exp(ℓ)·(c − b) + b), which saves work;
- ``control_variate`` v_w: any other additive term with zero expected gradient;
- ``aux_loss`` r_w: a loss that trains something the estimator owns (a learned baseline); it
  enters with value zero, so the surrogate's value stays the mean total cost.

Writing an estimator means subclassing :class:`Estimator` and implementing ``draw`` and, if it
adds score terms, ``terms``; see the README for a complete one in a few lines.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Callable, FrozenSet, Optional

import torch
from torch.distributions import Distribution

from .errors import ShapeError
from .nodes import Points, StochasticNode


@dataclass(frozen=True)
class DrawContext:
    """What a graph tells an estimator when it draws a node.

    Attributes:
        name: the node's name (for error messages).
        value: the observed value passed as ``value=``, or ``None`` to draw one.
        new_point_dim: ``new_point_dim(batch_rank)`` allocates a fresh dimension (a negative
            index, left of the sample dimensions) for an estimator that evaluates the node at
            several points (see ``scgrad.nodes.Points``).
    """

    name: str
    value: Optional[torch.Tensor]
    new_point_dim: Callable[[int], int]


@dataclass(frozen=True)
class Draw:
    """An estimator's draw: the value the user receives, its log-probability, its points.

    ``log_prob`` (batch-shaped, differentiable in the distribution's parameters) is needed by
    estimators with score terms and is used by the graph to find parameter dependencies;
    pathwise estimators may leave it ``None``. ``points``: where the value's several points lie
    and their weights, for an estimator that evaluates the node at more than one (allocate the
    dimension with ``ctx.new_point_dim``); the graph then weights and sums the costs downstream
    over the points, and each node's ``Credit`` keeps the dimension, so an estimator reads every
    point's downstream cost. ``noise``: the randomness the value was made from, when ``terms``
    needs it again (ARM's uniforms); kept on the node record.
    """

    value: torch.Tensor
    log_prob: Optional[torch.Tensor] = None
    points: Optional[Points] = None
    noise: Any = None


@dataclass(frozen=True)
class Terms:
    """An estimator's contribution to the surrogate (see the module docstring). Batch-shaped."""

    score: Optional[torch.Tensor] = None
    log_weight: Optional[torch.Tensor] = None
    baseline: Optional[torch.Tensor] = None
    control_variate: Optional[torch.Tensor] = None
    aux_loss: Optional[torch.Tensor] = None


@dataclass(frozen=True)
class Credit:
    """What a node's downstream costs amount to, for estimators and baselines that read it.

    Attributes:
        value: the sum of the costs downstream of the node, detached, in the node's shape
            (each cost scaled so that subtracting a baseline matches the surrogate's averaging
            of that cost over its own elements). It depends on the node's own sample, so a
            baseline built from it must not use element i to baseline element i.
        shared_dims: dimensions of the node's shape along which some downstream cost is shared
            by several samples (a cost [B] over samples [K, B]); a leave-one-out baseline is
            invalid along them.
        differentiable: the same sum not detached (``None`` unless the estimator sets
            ``needs_differentiable_credit``): for estimators that differentiate the cost with
            respect to the node's value at some of its points (REBAR).
    """

    value: torch.Tensor
    shared_dims: FrozenSet[int] = frozenset()
    differentiable: Optional[torch.Tensor] = None


class Estimator(abc.ABC):
    """Base class of gradient estimators; one instance decides one node (or many, if stateless).

    Subclasses set ``unbiased`` and implement :meth:`draw`; those that add score or
    control-variate terms also implement :meth:`terms`.
    """

    #: Whether the surrogate's gradient is an unbiased estimate of the true gradient.
    unbiased: bool = True
    #: Whether :meth:`terms` reads ``credit`` (the graph skips computing it otherwise).
    needs_credit: bool = False
    #: Whether :meth:`terms` reads ``credit.differentiable`` too.
    needs_differentiable_credit: bool = False

    @abc.abstractmethod
    def draw(self, dist: Distribution, ctx: DrawContext) -> Draw:
        """Draw (or take ``ctx.value``) the node's value; return it with its log-probability."""

    def terms(self, node: StochasticNode, credit: Optional[Credit]) -> Terms:
        """Surrogate terms for ``node``.

        Args:
            node: the recorded node (value, log_prob, dist, ...).
            credit: the node's downstream cost (see :class:`Credit`); ``None`` unless the
                estimator sets ``needs_credit``.
        """
        return Terms()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def observed_log_prob(dist: Distribution, ctx: DrawContext) -> Draw:
    """Score the observed ``ctx.value`` under ``dist``, checking its shape first."""
    value = ctx.value
    assert value is not None
    if not isinstance(value, torch.Tensor):
        value = torch.as_tensor(value)
    expected = dist.batch_shape + dist.event_shape
    tail = value.shape[value.dim() - len(expected):] if len(expected) else torch.Size()
    if value.dim() < len(expected) or tail != expected:
        raise ShapeError(
            f"node '{ctx.name}': value= has shape {tuple(value.shape)} but the distribution has "
            f"batch shape {tuple(dist.batch_shape)} and event shape {tuple(dist.event_shape)}; "
            "the value's trailing dimensions must equal batch_shape + event_shape"
        )
    value = value.detach()
    return Draw(value, dist.log_prob(value))
