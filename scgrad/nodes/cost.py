"""The record of one cost of a graph."""
from __future__ import annotations

from dataclasses import dataclass
from typing import FrozenSet

import torch


@dataclass(frozen=True)
class CostNode:
    """A per-sample cost; the objective is the expectation of the sum of all costs.

    Attributes:
        name: unique within its graph.
        value: shape = the batch shape of the samples it depends on (scalars broadcast).
            Kept differentiable so that pathwise gradients flow through it.
        parents: names of the stochastic nodes the cost depends on directly.
    """

    name: str
    value: torch.Tensor
    parents: FrozenSet[str]
