"""TRPO's numerical pieces as small pure functions: flat parameter vectors, conjugate
gradient, Fisher-vector products by double backprop, and the backtracking line search."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import torch


def flat_grad(y: torch.Tensor, params: Sequence[torch.Tensor], create_graph: bool = False,
              retain_graph: Optional[bool] = None) -> torch.Tensor:
    """∇_θ y for scalar y, concatenated into one vector [P] (zeros for unused parameters)."""
    grads = torch.autograd.grad(y, params, create_graph=create_graph, retain_graph=retain_graph,
                                allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params)])


def flat_params(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """The parameters as one detached vector [P]."""
    return torch.cat([p.detach().reshape(-1) for p in params])


def set_flat_params(params: Sequence[torch.Tensor], flat: torch.Tensor) -> None:
    """Write a vector [P] back into the parameters, in place."""
    offset = 0
    with torch.no_grad():
        for p in params:
            p.copy_(flat[offset:offset + p.numel()].view_as(p))
            offset += p.numel()


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                       iters: int = 10, tol: float = 1e-10) -> torch.Tensor:
    """Approximately solve A x = b for symmetric positive-definite A, given only x ↦ A x.

    Exact after dim(b) iterations in exact arithmetic; TRPO stops at ~10 (Schulman et al. 2015,
    appendix C). Stops early once the squared residual is below ``tol``.

    Args:
        matvec: v [P] -> A v [P].
        b: right-hand side [P].
        iters: maximum iterations.
    Returns:
        x [P].
    """
    x = torch.zeros_like(b)
    r = b.clone()  # residual b − A x, with x = 0
    p = r.clone()
    rr = r.dot(r)
    for _ in range(iters):
        if rr <= tol:
            break
        Ap = matvec(p)
        alpha = rr / p.dot(Ap)
        x += alpha * p
        r -= alpha * Ap
        rr_new = r.dot(r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def fisher_vector_product(kl_grad: torch.Tensor, params: Sequence[torch.Tensor], v: torch.Tensor,
                          damping: float = 0.0) -> torch.Tensor:
    """(F + damping·I) v, with F the Hessian of KL(π_old ‖ π_θ) at θ = θ_old.

    At θ_old that Hessian is the Fisher information matrix of π (averaged over states), so
    F v = ∇_θ (∇_θ KL · v): double backprop, never forming F (Schulman et al. 2015).

    Args:
        kl_grad: ∇_θ KL [P], computed with ``create_graph=True`` (reused across calls).
        params: θ, the parameters ``kl_grad`` was taken with respect to.
        v: [P].
        damping: Tikhonov damping, keeps the CG system well conditioned.
    Returns:
        (F + damping·I) v, [P].
    """
    return flat_grad(kl_grad.dot(v), params, retain_graph=True) + damping * v


@dataclass(frozen=True)
class LineSearchResult:
    """Outcome of :func:`backtracking_line_search`.

    Attributes:
        step: the accepted step [P], or ``None`` if every candidate was rejected.
        backtracks: how many times the step was shrunk before acceptance (or the maximum + 1).
        loss, kl: at the accepted step (at the last candidate if none).
    """

    step: Optional[torch.Tensor]
    backtracks: int
    loss: float
    kl: float


def backtracking_line_search(evaluate: Callable[[torch.Tensor], Tuple[float, float]],
                             full_step: torch.Tensor, loss_old: float, max_kl: float,
                             backtrack_coef: float = 0.8, max_backtracks: int = 10) -> LineSearchResult:
    """Try steps full_step·coefʲ, j = 0, 1, …; accept the first with KL ≤ δ and a lower loss.

    Args:
        evaluate: step [P] -> (loss, KL(π_old ‖ π_{θ_old + step})); must not keep the step.
        full_step: the natural-gradient step scaled to the trust region's edge [P].
        loss_old: the loss at θ_old (the surrogate must improve on it).
        max_kl: δ.
        backtrack_coef: shrink factor in (0, 1).
        max_backtracks: candidates after the full step.
    """
    loss, kl = float("nan"), float("nan")
    for j in range(max_backtracks + 1):
        candidate = full_step * backtrack_coef**j
        loss, kl = evaluate(candidate)
        if kl <= max_kl and loss < loss_old:
            return LineSearchResult(candidate, j, loss, kl)
    return LineSearchResult(None, max_backtracks + 1, loss, kl)
