"""The record of one sampling point of a graph."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, FrozenSet, Optional

import torch
from torch.distributions import Distribution

if TYPE_CHECKING:
    from ..estimators.base import Estimator


@dataclass
class StochasticNode:
    """A sampled (or observed) value and the estimator that turns it into surrogate terms.

    Attributes:
        name: unique within its graph.
        dist: the distribution the value was drawn from (or is scored under).
        value: what the user received; shape ``sample_shape + batch_shape + event_shape``.
        log_prob: ``dist.log_prob(value)``, differentiable in the distribution's parameters;
            shape ``value.shape`` less the event dimensions. ``None`` for pathwise estimators,
            which never need it.
        estimator: turns the node into surrogate terms (see ``scgrad.estimators.Estimator``).
        parents: names of the stochastic nodes this node's distribution or value depends on
            directly (found by tracking, or all earlier nodes, plus ``depends_on``).
        observed: the value was given (``value=``) rather than drawn.
        enum_dim: for enumerated nodes, the (negative) batch dimension that holds the support.
        shared_credit_dims: dimensions of ``shape`` along which some downstream cost is shared
            by the samples (a cost of shape [B] over samples [K, B]); set by ``surrogate()``.
            Leave-one-out baselines are invalid along them.
    """

    name: str
    dist: Distribution
    value: torch.Tensor
    log_prob: Optional[torch.Tensor]
    estimator: "Estimator"
    parents: FrozenSet[str]
    observed: bool = False
    enum_dim: Optional[int] = None
    shared_credit_dims: FrozenSet[int] = frozenset()

    @property
    def shape(self) -> torch.Size:
        """The node's batch shape: ``log_prob``'s shape, or the value's less its event dims."""
        if self.log_prob is not None:
            return self.log_prob.shape
        event = len(self.dist.event_shape)
        return self.value.shape[: self.value.dim() - event]
