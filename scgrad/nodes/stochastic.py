"""The record of one sampling point of a graph."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, FrozenSet, Optional

import torch
from torch.distributions import Distribution


@dataclass(frozen=True)
class Points:
    """A node evaluated at several points at once, laid along one dimension of its own.

    Enumeration lays out a finite support, quadrature its nodes, ARM and DisARM an antithetic
    pair: everything computed from the value is vectorised over the points, and the surrogate
    sums over that dimension with weights exp(``log_weight``) (an expectation over the points).

    Attributes:
        dim: the (negative) dimension holding the points, left of the graph's sample dimensions.
        log_weight: the points' log-weights, broadcastable to the node's shape (p(value) for an
            enumerated support, differentiable; log ½ for an antithetic pair, constant).
    """

    dim: int
    log_weight: torch.Tensor


@dataclass(frozen=True)
class StochasticNode:
    """A sampled (or observed) value and the estimator that turns it into surrogate terms.

    Attributes:
        name: unique within its graph.
        dist: the distribution the value was drawn from (or is scored under).
        value: what the user received; shape ``sample_shape + batch_shape + event_shape``.
        log_prob: ``dist.log_prob(value)``, differentiable in the distribution's parameters;
            shape ``value.shape`` less the event dimensions. ``None`` for pathwise estimators,
            which never need it.
        estimator: the ``scgrad.protocol.Estimator`` that turns the node into surrogate terms
            (typed ``Any`` here: records know nothing of estimators, which import them).
        parents: names of the stochastic nodes this node's distribution or value depends on
            directly (found by tracking, or all earlier nodes, plus ``depends_on``).
        observed: the value was given (``value=``) rather than drawn.
        points: for a node evaluated at several points (enumeration, quadrature, antithetic
            pairs), where they lie and their weights; ``None`` for a single sample.
        noise: what the estimator made the value from, if it needs it again (ARM's uniforms,
            RELAX's relaxed samples); ``None`` otherwise.
    """

    name: str
    dist: Distribution
    value: torch.Tensor
    log_prob: Optional[torch.Tensor]
    estimator: Any
    parents: FrozenSet[str]
    observed: bool = False
    points: Optional[Points] = None
    noise: Any = None

    @property
    def shape(self) -> torch.Size:
        """The node's batch shape: ``log_prob``'s shape, or the value's less its event dims."""
        if self.log_prob is not None:
            return self.log_prob.shape
        event = len(self.dist.event_shape)
        return self.value.shape[: self.value.dim() - event]
