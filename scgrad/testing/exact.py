"""Exact expectations of a model's total cost, and their first and second derivatives.

A *model* is a function ``model(g: scgrad.Graph) -> None`` that records samples and costs on
``g``, using parameters it closes over::

    def model(g):
        k = g.sample("k", Categorical(logits=logits))          # logits: a leaf tensor
        g.cost("loss", table[k])

    exact_gradient(model, [logits])                             # d/dlogits E[table[k]], shape [4]

The model is run with every node's estimator replaced: finite supports (Bernoulli,
Categorical, …) by ``Enumerate`` and Normal nodes by ``GaussHermite`` quadrature. The
surrogate is then the expected total cost itself, differentiable to any order, so its
gradient and Hessian are the exact ones (exact for Normal nodes when costs are polynomials of
degree < 2·``quadrature_order`` in them; see :class:`GaussHermite`).
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence, Union

import torch
from torch.distributions import Distribution, Normal

from ..errors import GraphError
from ..estimators import Enumerate
from ..protocol import Estimator
from ..graph import Graph
from .quadrature import GaussHermite

Model = Callable[[Graph], None]
Params = Union[Sequence[torch.Tensor], Mapping[str, torch.Tensor]]

#: Gauss–Hermite points per Normal node: exact for polynomial costs of degree ≤ 19. The work
#: grows as order ** (number of Normal nodes), so lower it for models with many of them.
DEFAULT_QUADRATURE_ORDER = 10


class UnsupportedDistributionError(GraphError):
    """A node's distribution can be neither enumerated nor integrated by quadrature."""


class _ExactEnumerate(Enumerate):
    """``Enumerate`` with an error message that explains the exact pass."""

    def draw(self, dist, ctx):
        if ctx.value is not None:
            raise GraphError(
                f"node '{ctx.name}': exact expectations sum over every value of the node and "
                "cannot score a given value (value=); run the model without value= for the exact pass"
            )
        return super().draw(dist, ctx)

    def __repr__(self) -> str:
        return "Enumerate()"


def exact_estimators(quadrature_order: int = DEFAULT_QUADRATURE_ORDER) -> Callable[[str, Distribution, Estimator], Estimator]:
    """The ``Graph(override_estimator=...)`` that makes a graph's surrogate exact.

    Finite supports get ``Enumerate``, Normal nodes ``GaussHermite(quadrature_order)``; any
    other distribution raises :class:`UnsupportedDistributionError`.
    """
    enumerate_ = _ExactEnumerate()
    quadrature = GaussHermite(quadrature_order)

    def override(name: str, dist: Distribution, requested: Estimator) -> Estimator:
        if dist.has_enumerate_support:
            return enumerate_
        if type(dist) is Normal:
            return quadrature
        raise UnsupportedDistributionError(
            f"node '{name}': exact expectations need a finite support (Bernoulli, Categorical, "
            f"...) or a Normal, not {type(dist).__name__}; compare against a closed form instead"
        )

    return override


def exact_objective(model: Model, batch_ndim: int | None = None,
                    quadrature_order: int = DEFAULT_QUADRATURE_ORDER) -> torch.Tensor:
    """E[total cost] of ``model``, computed exactly and differentiable to any order.

    Args:
        model: records the graph on the ``Graph`` it is given (inside ``with g:``).
        batch_ndim: number of sample dimensions of the model's tensors (see ``Graph``);
            inferred from the first node when ``None``.
        quadrature_order: Gauss–Hermite points per Normal node.

    Returns:
        A scalar: the mean over the model's batch of the expected summed costs — the
        expectation of the value of the model's Monte-Carlo surrogate.
    """
    g = Graph(batch_ndim=batch_ndim, override_estimator=exact_estimators(quadrature_order))
    with g:
        model(g)
    return g.surrogate()


def exact_gradient(model: Model, params: Params, batch_ndim: int | None = None,
                   quadrature_order: int = DEFAULT_QUADRATURE_ORDER) -> torch.Tensor:
    """∇_θ E[total cost], flattened: shape ``[d]``, d = total number of elements of ``params``.

    ``params`` (a sequence or a mapping of tensors requiring grad, in the order that fixes the
    flattening) are the tensors ``model`` closes over. Unused parameters get zeros.
    """
    params = _as_list(params)
    return flat_gradient(exact_objective(model, batch_ndim, quadrature_order), params).detach()


def exact_hessian(model: Model, params: Params, batch_ndim: int | None = None,
                  quadrature_order: int = DEFAULT_QUADRATURE_ORDER) -> torch.Tensor:
    """∇²_θ E[total cost] by double backpropagation: shape ``[d, d]``, flattened as
    :func:`exact_gradient`."""
    params = _as_list(params)
    gradient = flat_gradient(exact_objective(model, batch_ndim, quadrature_order), params, create_graph=True)
    return jacobian_rows(gradient, params).detach()


def flat_gradient(loss: torch.Tensor, params: Sequence[torch.Tensor], create_graph: bool = False) -> torch.Tensor:
    """∂loss/∂params concatenated into one vector (zeros for parameters ``loss`` does not use).

    Args:
        loss: a scalar.
        params: tensors of shapes s_1, …, s_m.
    Returns:
        shape ``[Σ_i numel(s_i)]``.
    """
    grads = torch.autograd.grad(loss, params, create_graph=create_graph, allow_unused=True)
    return torch.cat([_or_zeros(grad, p).reshape(-1) for grad, p in zip(grads, params)])


def jacobian_rows(vector: torch.Tensor, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Row i = ∂vector[i]/∂params, flattened: shape ``[len(vector), Σ numel(p)]``.

    One backward pass per element of ``vector`` (built with ``create_graph=True``); elements
    that do not depend on the parameters give zero rows.
    """
    rows = []
    for element in vector:
        if element.requires_grad:
            grads = torch.autograd.grad(element, params, retain_graph=True, allow_unused=True)
            rows.append(torch.cat([_or_zeros(grad, p).reshape(-1) for grad, p in zip(grads, params)]))
        else:
            rows.append(torch.zeros(sum(p.numel() for p in params), dtype=vector.dtype, device=vector.device))
    return torch.stack(rows)


def _or_zeros(grad: torch.Tensor | None, param: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(param) if grad is None else grad


def _as_list(params: Params) -> list:
    values = list(params.values()) if isinstance(params, Mapping) else list(params)
    if not values:
        raise ValueError("params is empty: pass the tensors the model closes over")
    for i, p in enumerate(values):
        if not (isinstance(p, torch.Tensor) and p.requires_grad):
            raise ValueError(f"params[{i}] must be a tensor with requires_grad=True")
    return values
