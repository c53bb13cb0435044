"""Baselines (control variates) for score-function estimators.

A baseline b_w is subtracted from a node's downstream cost Q_w in the score term,
∇log p(w)·(Q_w − b_w). The estimate stays unbiased as long as b_w does not depend on w's own
sample (nor on anything downstream of it); a good b_w ≈ E[Q_w] cuts the variance.

Each baseline is called as ``baseline(node, credit)`` with the node's ``scgrad.protocol.Credit``
(``credit.value``: its detached downstream cost, shape ``node.shape``) and returns a
:class:`BaselineValue`. A plain tensor can be
passed wherever a baseline is expected (see :func:`resolve`).
"""
from __future__ import annotations

import abc
import numbers
from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch import nn

from ._shapes import broadcast_shapes
from .errors import GraphError, ShapeError
from .nodes import StochasticNode
from .protocol import Credit


@dataclass(frozen=True)
class BaselineValue:
    """A baseline's output.

    Attributes:
        value: the baseline, detached, broadcastable to ``node.shape``.
        loss: a training loss for the baseline's own parameters (``Learned``), or ``None``.
    """

    value: torch.Tensor
    loss: Optional[torch.Tensor] = None


class Baseline(abc.ABC):
    """A control variate for the score function. Subclasses implement ``__call__``."""

    @abc.abstractmethod
    def __call__(self, node: StochasticNode, credit: Credit) -> BaselineValue:
        """The baseline for ``node`` given its ``credit`` (``credit.value``: the detached
        downstream cost)."""


class MovingAverage(Baseline):
    """Exponential moving average of the downstream cost over past calls. Unbiased.

    The baseline used at a call is the average of *earlier* calls (so it does not depend on the
    current samples); the average is then updated with the current batch mean. Bias-corrected
    as in Adam, so early values are not pulled towards zero. Create it once, outside the
    training loop, and reuse it: its state is the point. Use one instance per node: shared by
    two nodes, it would fold one node's current costs into the other's baseline (a bias of
    order 1/batch).

    Args:
        decay: weight of the past, in [0, 1).
    """

    def __init__(self, decay: float = 0.9) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"MovingAverage: decay must be in [0, 1), got {decay}")
        self.decay = decay
        self._average: Optional[torch.Tensor] = None  # biased running average, a 0-dim tensor
        self._steps = 0

    @property
    def value(self) -> Optional[torch.Tensor]:
        """The current bias-corrected average, or ``None`` before the first call."""
        if self._average is None:
            return None
        return self._average / (1.0 - self.decay**self._steps)

    def __call__(self, node: StochasticNode, given: Credit) -> BaselineValue:
        credit = given.value
        current = self.value
        baseline = torch.zeros((), dtype=credit.dtype, device=credit.device) if current is None else current
        batch_mean = credit.detach().mean()
        previous = torch.zeros_like(batch_mean) if self._average is None else self._average
        self._average = self.decay * previous + (1.0 - self.decay) * batch_mean
        self._steps += 1
        return BaselineValue(baseline)

    def __repr__(self) -> str:
        return f"MovingAverage(decay={self.decay})"


class LeaveOneOut(Baseline):
    """For several samples per input: baseline each with the mean cost of the others. Unbiased.

    b_i = (Σ_j Q_j − Q_i) / (n − 1) along ``dim``; sample i's own cost never enters its
    baseline, so the estimate stays unbiased when the n samples are drawn independently
    (Kool et al. 2019, "Buy 4 REINFORCE samples, get a baseline for free!").

    Args:
        dim: the dimension of ``node.shape`` that indexes the samples per input (size ≥ 2).
    """

    def __init__(self, dim: int = 0) -> None:
        self.dim = dim

    def __call__(self, node: StochasticNode, given: Credit) -> BaselineValue:
        credit = given.value
        if credit.dim() == 0 or not -credit.dim() <= self.dim < credit.dim():
            raise GraphError(
                f"LeaveOneOut(dim={self.dim}) on node '{node.name}': the node's shape "
                f"{tuple(credit.shape)} has no dimension {self.dim}"
            )
        n = credit.shape[self.dim]
        if n < 2:
            raise GraphError(
                f"LeaveOneOut(dim={self.dim}) on node '{node.name}': needs at least 2 samples "
                f"along dim {self.dim}, got shape {tuple(credit.shape)}"
            )
        if self.dim % credit.dim() in given.shared_dims:
            raise GraphError(
                f"LeaveOneOut(dim={self.dim}) on node '{node.name}': a cost downstream of it is "
                f"shared by the samples along dim {self.dim} (node shape {tuple(credit.shape)}), so "
                "the others' mean would include the sample's own effect; give each sample its own "
                "cost, or use another baseline")
        credit = credit.detach()
        total = credit.sum(self.dim, keepdim=True)
        return BaselineValue((total - credit) / (n - 1))

    def __repr__(self) -> str:
        return f"LeaveOneOut(dim={self.dim})"


class Learned(Baseline):
    """A module that predicts the downstream cost, trained by regression onto it. Unbiased.

    The prediction ``module(inputs)`` is used detached as the baseline; the squared error
    against the downstream cost enters the surrogate as a zero-valued auxiliary loss, so one
    ``loss.backward()`` also trains the module. ``inputs`` must not depend on the node's sample
    (compute them before sampling, e.g. the features the policy sees).

    Args:
        module: maps ``inputs`` to shape ``node.shape`` or ``node.shape + (1,)``.
        inputs: the module's input for this node.
    """

    def __init__(self, module: nn.Module, inputs: torch.Tensor) -> None:
        self.module = module
        self.inputs = inputs

    def __call__(self, node: StochasticNode, given: Credit) -> BaselineValue:
        credit = given.value
        prediction = self.module(self.inputs)
        if prediction.shape == credit.shape + (1,):
            prediction = prediction.squeeze(-1)
        prediction = _check_broadcast(prediction, credit, node, "Learned baseline output")
        loss = (prediction - credit.detach()).pow(2).mean()
        return BaselineValue(prediction.detach(), loss)

    def __repr__(self) -> str:
        return f"Learned({type(self.module).__name__})"


class Constant(Baseline):
    """A user-supplied tensor (or number) used as the baseline. Unbiased if it does not depend
    on the node's sample; scgrad cannot check that, so compute it before sampling."""

    def __init__(self, value: Union[torch.Tensor, float]) -> None:
        self.tensor = torch.as_tensor(value).detach()

    def __call__(self, node: StochasticNode, given: Credit) -> BaselineValue:
        credit = given.value
        if self.tensor.device != credit.device or self.tensor.dtype != credit.dtype:
            self.tensor = self.tensor.to(credit.device, credit.dtype)
        return BaselineValue(_check_broadcast(self.tensor, credit, node, "baseline tensor"))

    def __repr__(self) -> str:
        return f"Constant(shape={tuple(self.tensor.shape)})"


BaselineLike = Union[Baseline, torch.Tensor, float, None]


def resolve(baseline: BaselineLike) -> Optional[Baseline]:
    """Turn what users pass as ``baseline=`` (a Baseline, a tensor, a number, None) into one."""
    if baseline is None or isinstance(baseline, Baseline):
        return baseline
    if isinstance(baseline, (torch.Tensor, numbers.Real)):
        return Constant(baseline)
    raise TypeError(
        f"baseline must be a scgrad.baselines.Baseline, a tensor, a number or None; "
        f"got {type(baseline).__name__}"
    )


def _check_broadcast(tensor: torch.Tensor, credit: torch.Tensor, node: StochasticNode, what: str) -> torch.Tensor:
    """``tensor`` expanded to the node's shape, or a ShapeError naming the node and shapes."""
    try:
        fits = broadcast_shapes(tensor.shape, credit.shape) == credit.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ShapeError(
            f"{what} for node '{node.name}' has shape {tuple(tensor.shape)}, which does not "
            f"broadcast to the node's shape {tuple(credit.shape)}"
        )
    return tensor if tensor.shape == credit.shape else tensor.expand(credit.shape)
