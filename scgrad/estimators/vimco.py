"""VIMCO (Mnih & Rezende 2016): score-function gradients of a multi-sample objective with
per-sample leave-one-out learning signals.

K samples z_1..z_K of one node (along dimension ``dim``) enter a multi-sample bound

    L̂ = log (1/K) Σ_k exp(ℓ_k)        (ℓ_k, e.g. log p(x, z_k) − log q(z_k | x): IWAE's bound)

and the cost to minimise is −L̂. The score function alone would credit every sample with the
whole −L̂; VIMCO subtracts from sample k's signal what the bound would be without it,

    L̂_{−k} = log (1/K) (Σ_{j≠k} exp(ℓ_j) + exp(mean_{j≠k} ℓ_j)),

a baseline that does not depend on z_k, so the gradient stays unbiased:
Σ_k (L̂_{−k} − L̂)·∇log q(z_k) + ∇(−L̂), the last term by backprop through the ℓ_k.

Declaring the objective: draw the node with ``vimco = VIMCO(dim)`` (K samples along ``dim``,
e.g. ``q.expand((K, *q.batch_shape))``) and record the cost ``vimco.objective(log_weights)``,
which returns −L̂ (shape: ``log_weights`` without ``dim``) and keeps the ℓ_k for the baselines.
One ``VIMCO`` per node and per graph.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ..errors import GraphError
from ..nodes import StochasticNode
from ..protocol import Credit, Terms
from .score_function import ScoreFunction


def leave_one_out_bounds(log_weights: torch.Tensor, dim: int) -> torch.Tensor:
    """L̂_{−k} for every k (same shape as ``log_weights`` [..., K, ...]): the bound with sample
    k replaced by the geometric mean of the others' weights (in log space: their mean ℓ)."""
    k = log_weights.shape[dim]
    others_mean = (log_weights.sum(dim, keepdim=True) - log_weights) / (k - 1)
    # Σ_{j≠k} exp(ℓ_j) + exp(mean_{j≠k} ℓ_j), stably: swap ℓ_k for the others' mean and logsumexp
    expanded = log_weights.unsqueeze(0).expand(k, *log_weights.shape)          # [k', ..., K, ...]
    eye = torch.eye(k, dtype=torch.bool, device=log_weights.device)
    shape = [k] + [1] * log_weights.dim()
    shape[dim % log_weights.dim() + 1] = k
    swapped = torch.where(eye.reshape(shape), others_mean.unsqueeze(0), expanded)
    bound = torch.logsumexp(swapped, dim % log_weights.dim() + 1) - math.log(k)  # [k', ...]
    return bound.movedim(0, dim % log_weights.dim())


class VIMCO(ScoreFunction):
    """Multi-sample score function with VIMCO's leave-one-out baselines. Unbiased (first
    derivative). Any distribution with ``log_prob``; K ≥ 2 samples along ``dim`` of the node.

    Args:
        dim: the dimension of the node's shape that holds the K samples.
    """

    def __init__(self, dim: int = 0) -> None:
        super().__init__()
        self.dim = dim
        self.needs_credit = True
        self._log_weights: Optional[torch.Tensor] = None

    def objective(self, log_weights: torch.Tensor) -> torch.Tensor:
        """The cost −L̂ = −log (1/K) Σ_k exp(ℓ_k) of ``log_weights`` [..., K, ...] (K along ``dim``),
        differentiable; record it with ``g.cost``. Keeps the ℓ_k (detached) for the baselines."""
        if log_weights.dim() == 0 or log_weights.shape[self.dim] < 2:
            raise GraphError(f"VIMCO(dim={self.dim}): the objective needs K >= 2 log-weights along dim "
                             f"{self.dim}, got shape {tuple(log_weights.shape)}")
        self._log_weights = log_weights.detach()
        return -(torch.logsumexp(log_weights, self.dim) - math.log(log_weights.shape[self.dim]))

    def terms(self, node: StochasticNode, credit: Credit) -> Terms:
        if self._log_weights is None:
            raise GraphError(f"node '{node.name}': VIMCO needs its multi-sample objective; record it as "
                             "g.cost(name, estimator.objective(log_weights)) with this node's estimator")
        if self._log_weights.shape != node.shape:
            raise GraphError(f"node '{node.name}': VIMCO's log-weights have shape {tuple(self._log_weights.shape)}, "
                             f"the node's samples {tuple(node.shape)}; give one log-weight per sample")
        # Sample k's signal is −L̂ − (−L̂_{−k}): the cost less the baseline −L̂_{−k}, which is in the
        # credit's units once multiplied by K (the objective, one value per K samples, is spread
        # over them; see ``scgrad.protocol.Credit``).
        baseline = -leave_one_out_bounds(self._log_weights, self.dim) * node.shape[self.dim]
        return Terms(score=node.log_prob, baseline=baseline)

    def __repr__(self) -> str:
        return f"VIMCO(dim={self.dim})"
