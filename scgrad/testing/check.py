"""Statistical check that independent gradient estimates average to the exact gradient.

``assert_unbiased(samples, exact)`` runs one z-test per component, with a Bonferroni
correction across components:

    z_j = (mean_j − exact_j) / (std_j / √n),    fail if any |z_j| > Φ⁻¹(1 − α / (2d)).

**False-failure rate.** For an unbiased estimator each z_j is approximately standard normal
(central limit theorem), so the probability that the check fails although the estimator is
unbiased is at most ≈ α (Bonferroni holds whatever the correlation between components). The
caveat is the CLT: the threshold lies far in the tail (≈ 4.4 for α = 1e-4, d = 1; ≈ 5.3 for
d = 100), where a skewed or heavy-tailed estimator (score functions of rare events, importance
weights) converges slowly. Use n ≥ 1,000 samples, more (≥ 10,000) for heavy-tailed estimates;
the check refuses n < 2 and cannot be trusted below ~100. Measured on scgrad's own property
tests: at n = 2,000, score-function Hessians of Normal nodes had |z| > 4 20–40× more often
than the normal tail; at n = 20,000, over 8,000 checks of random graphs, the rejection rate at
alpha = 1e-3 was the nominal one (9 rejections, 8 expected).
For small alphas prefer :func:`assert_unbiased_confirmed`, which needs the CLT only down to
√alpha.

**Zero-variance components** (std_j = 0: enumerated terms, parameters no cost depends on) are
deterministic and must equal the exact value to float precision: a difference above the
tolerance ``atol + rtol·(|exact_j| + max_k |exact_k|)`` fails; one below it never fails,
whatever its z (the same floor applies to every component, so round-off cannot fail the
check). Defaults, from the samples' dtype: rtol = eps^(1/2), atol = eps^(3/4), i.e.
1.5e-8 and 1.8e-12 for float64, 3.5e-4 and 6.4e-6 for float32.

Independent samples come from calling an estimator n times (:func:`gradient_samples`) or,
much faster, from one backward pass over n copies of the parameters
(:func:`per_sample_derivatives`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Callable, List, Mapping, NamedTuple, Optional, Sequence

import torch

from .exact import Params

#: Rows shown in a report's table.
MAX_ROWS = 20


@dataclass(frozen=True)
class UnbiasednessReport:
    """The numbers behind one :func:`assert_unbiased` check (all tensors float64, shape [d]).

    Attributes:
        name: what was checked (for messages).
        n: number of independent samples.
        alpha: family-wise false-failure rate.
        threshold: Φ⁻¹(1 − α/(2d)), the largest |z| allowed.
        estimate: the sample mean of each component.
        exact: the exact value of each component.
        standard_error: sample std / √n (0 for deterministic components).
        z: (estimate − exact) / standard_error (±inf where that is 0 and the values differ,
            0 where both are 0).
        tolerance: float tolerance below which a difference never fails.
        failed: bool [d], the components that fail.
        labels: a name per component.
    """

    name: str
    n: int
    alpha: float
    threshold: float
    estimate: torch.Tensor
    exact: torch.Tensor
    standard_error: torch.Tensor
    z: torch.Tensor
    tolerance: torch.Tensor
    failed: torch.Tensor
    labels: Sequence[str]

    @property
    def passed(self) -> bool:
        """True when no component fails."""
        return not bool(self.failed.any())

    @property
    def significant_z(self) -> torch.Tensor:
        """z where the difference exceeds the float tolerance, else 0: shape [d]."""
        return torch.where((self.estimate - self.exact).abs() > self.tolerance, self.z, torch.zeros_like(self.z))

    @property
    def max_abs_z(self) -> float:
        """The largest |z| over components that differ by more than the float tolerance."""
        return float(self.significant_z.abs().max())

    def table(self, max_rows: int = MAX_ROWS) -> str:
        """Failing components first, then by |z| (differences within tolerance last): one line each."""
        size = self.significant_z.abs().tolist()
        order = sorted(range(len(size)), key=lambda j: (not bool(self.failed[j]), -size[j]))
        shown = order[:max_rows]
        width = max([len("component")] + [len(self.labels[j]) for j in shown])
        header = f"{'component':>{width}} {'estimate':>12} {'exact':>12} {'std error':>11} {'z':>9} {'threshold':>9}"
        lines = [header]
        for j in shown:
            within = size[j] == 0 and float(self.z[j]) != 0  # z is round-off, not evidence
            mark = "  FAIL" if self.failed[j] else ("  (equal within float tolerance)" if within else "")
            lines.append(f"{self.labels[j]:>{width}} {float(self.estimate[j]):>+12.5g} {float(self.exact[j]):>+12.5g} "
                         f"{float(self.standard_error[j]):>11.3g} {float(self.z[j]):>+9.2f} {self.threshold:>9.2f}{mark}")
        if len(order) > max_rows:
            lines.append(f"... {len(order) - max_rows} more components")
        return "\n".join(lines)

    def __str__(self) -> str:
        verdict = "PASSED" if self.passed else f"FAILED ({int(self.failed.sum())} of {len(self.z)} components)"
        title = f"unbiasedness check{' of ' + self.name if self.name else ''}: {verdict}"
        return (f"{title}\n  n = {self.n} samples, d = {len(self.z)} components, alpha = {self.alpha:g}, "
                f"|z| threshold = {self.threshold:.2f}, max |z| = {self.max_abs_z:.2f}\n{self.table()}")


class UnbiasednessError(AssertionError):
    """The mean of the samples differs from the exact value by more than chance allows.

    Attributes:
        report: the :class:`UnbiasednessReport` with every component's numbers (for a
            two-stage check, the confirming stage's).
        first: the first stage's report in a two-stage check, else ``None``.
    """

    def __init__(self, report: UnbiasednessReport, first: Optional[UnbiasednessReport] = None) -> None:
        message = str(report)
        if first is not None:
            message = (f"failed twice, on two independent sets of samples (each at alpha = {report.alpha:.3g})\n"
                       f"--- first set ---\n{first}\n--- second set ---\n{report}")
        super().__init__(message)
        self.report = report
        self.first = first


def z_threshold(alpha: float, d: int) -> float:
    """Φ⁻¹(1 − α/(2d)): the two-sided Bonferroni bound on |z| for d components."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return -NormalDist().inv_cdf(alpha / (2 * d))  # the lower tail keeps precision for tiny α


def unbiasedness_report(samples: torch.Tensor, exact: torch.Tensor, alpha: float = 1e-4, name: str = "",
                        rtol: Optional[float] = None, atol: Optional[float] = None,
                        labels: Optional[Sequence[str]] = None) -> UnbiasednessReport:
    """The per-component z-test of :func:`assert_unbiased`, without raising. Same arguments."""
    samples, exact = _check_shapes(samples, exact)
    n, d = samples.shape
    # Round-off grows with the number of operations: allow well above eps, well below signal.
    eps = torch.finfo(samples.dtype).eps if samples.is_floating_point() else torch.finfo(torch.float64).eps
    rtol = eps**0.5 if rtol is None else rtol
    atol = eps**0.75 if atol is None else atol
    x, exact = samples.detach().double(), exact.detach().double().to(samples.device)
    estimate = x.mean(0)
    standard_error = x.std(0, correction=1) / math.sqrt(n)
    diff = estimate - exact
    z = torch.nan_to_num(diff / standard_error, nan=0.0, posinf=math.inf, neginf=-math.inf)
    tolerance = atol + rtol * (exact.abs() + exact.abs().max())
    threshold = z_threshold(alpha, d)
    failed = ((z.abs() > threshold) & (diff.abs() > tolerance)) | ~torch.isfinite(estimate)
    labels = list(labels) if labels is not None else [f"[{j}]" for j in range(d)]
    if len(labels) != d:
        raise ValueError(f"labels has {len(labels)} names for {d} components")
    return UnbiasednessReport(name, n, alpha, threshold, estimate, exact, standard_error, z, tolerance,
                              failed, labels)


def assert_unbiased(samples: torch.Tensor, exact: torch.Tensor, alpha: float = 1e-4, name: str = "",
                    rtol: Optional[float] = None, atol: Optional[float] = None,
                    labels: Optional[Sequence[str]] = None) -> UnbiasednessReport:
    """Check that independent estimates average to ``exact``; raise if they clearly do not.

    Args:
        samples: ``[n, d]``, n independent estimates (e.g. flattened gradients or Hessians).
        exact: ``[d]``, the exact value (e.g. from :func:`scgrad.testing.exact_gradient`).
        alpha: family-wise false-failure rate (see the module docstring for the CLT caveat).
        name: names the check in messages.
        rtol, atol: float tolerance: a difference below ``atol + rtol·(|exact_j| + max|exact|)``
            never fails. Defaults eps^(1/2) and eps^(3/4) of the samples' dtype (float64:
            1.5e-8 and 1.8e-12; float32: 3.5e-4 and 6.4e-6).
        labels: a name per component for the table (default ``[j]``).

    Returns:
        The :class:`UnbiasednessReport` (when the check passes).

    Raises:
        UnbiasednessError: some |z_j| exceeds Φ⁻¹(1 − α/(2d)) by more than float tolerance,
            a deterministic component is off, or the mean is not finite. Its message is a table
            of the failing components.
    """
    report = unbiasedness_report(samples, exact, alpha, name, rtol, atol, labels)
    if not report.passed:
        raise UnbiasednessError(report)
    return report


def assert_unbiased_confirmed(draw: Callable[[], torch.Tensor], exact: torch.Tensor, alpha: float = 1e-4,
                              name: str = "", rtol: Optional[float] = None, atol: Optional[float] = None,
                              labels: Optional[Sequence[str]] = None) -> UnbiasednessReport:
    """A two-stage :func:`assert_unbiased` that needs the CLT only down to √alpha.

    ``draw()`` returns a fresh ``[n, d]`` set of independent estimates. The first set is
    tested at √alpha; only if it fails is a second, independent set drawn and tested at
    √alpha, and only if that fails too is the error raised. The stages are independent, so
    the false-failure rate is ≤ √alpha · √alpha = alpha, while each stage works at a moderate
    tail (z ≈ 3–4 for alpha = 1e-4, where a single stage needs z ≈ 4.5–5.5). That matters for
    skewed estimates (score-function Hessians, importance weights), whose z-scores have
    heavier tails than the normal. Measured on scgrad's property tests (n = 20,000, 4,800
    checks of random graphs, stages at √alpha = 1.6e-3): 4 first stages failed (7.6
    expected), no second one. A real bias fails both stages: the power is about that of one
    stage at √alpha, squared.

    Returns the report of the stage that passed; raises :class:`UnbiasednessError` (with both
    reports) when both fail. Other arguments as :func:`assert_unbiased`.
    """
    stage_alpha = math.sqrt(alpha)
    first = unbiasedness_report(draw(), exact, stage_alpha, name, rtol, atol, labels)
    if first.passed:
        return first
    second = unbiasedness_report(draw(), exact, stage_alpha, name, rtol, atol, labels)
    if not second.passed:
        raise UnbiasednessError(second, first)
    return second


def gradient_samples(fn: Callable[[], torch.Tensor], n: int) -> torch.Tensor:
    """Call ``fn()`` n times and stack the results: shape ``[n, d]``.

    ``fn`` must return one independent estimate per call, a tensor of d elements (it is
    flattened and detached), e.g. a fresh graph's surrogate gradient.
    """
    if n < 2:
        raise ValueError(f"gradient_samples: need n >= 2 samples, got {n}")
    return torch.stack([fn().detach().reshape(-1) for _ in range(n)])


class PerSampleDerivatives(NamedTuple):
    """Per-copy derivatives from :func:`per_sample_derivatives`.

    gradients: ``[n, d]``; hessians: ``[n, d, d]`` or ``None`` when not asked for.
    """

    gradients: torch.Tensor
    hessians: Optional[torch.Tensor]


def per_sample_derivatives(surrogate: Callable[[Params], torch.Tensor], params: Params, n: int,
                           hessian: bool = False) -> PerSampleDerivatives:
    """n independent gradient (and Hessian) estimates from one forward and backward pass.

    Each estimate gets its own copy of the parameters: ``params`` (tensors of shapes s_i) are
    detached and repeated into leaves of shape ``[n, *s_i]``, passed to ``surrogate`` (a list,
    or a dict with the same keys, like ``params``). ``surrogate(copies)`` must return the
    **mean over i** of n independent surrogates, the i-th computed from ``copies[...][i]``
    only: e.g. a graph whose first batch dimension has size n, with every parameter indexed
    by it. Then n · ∂L/∂copies[i] is the i-th gradient estimate. Baselines are fine as long
    as they are detached (all of ``scgrad.baselines`` are). Rows are flattened in the order of
    ``params``, as :func:`scgrad.testing.exact_gradient` does.

    Returns:
        ``PerSampleDerivatives(gradients [n, d], hessians [n, d, d] or None)``; the Hessians
        take d extra backward passes.
    """
    keys = list(params.keys()) if isinstance(params, Mapping) else None
    values = list(params.values()) if keys is not None else list(params)
    copies = [p.detach().unsqueeze(0).expand(n, *p.shape).clone().requires_grad_(True) for p in values]
    loss = surrogate(dict(zip(keys, copies)) if keys is not None else copies)
    gradients = _per_copy(n * loss, copies, create_graph=hessian)  # [n, d]
    if not hessian:
        return PerSampleDerivatives(gradients.detach(), None)
    # Row a of copy i only depends on copy i, so the gradient of Σ_i g[i, a] gives each
    # copy's own second derivatives at once: d backward passes, not n·d.
    columns = [_per_copy(gradients[:, a].sum(), copies, retain_graph=True) if gradients.requires_grad
               else torch.zeros_like(gradients) for a in range(gradients.shape[1])]
    return PerSampleDerivatives(gradients.detach(), torch.stack(columns, dim=1).detach())


def _per_copy(loss: torch.Tensor, copies: List[torch.Tensor], create_graph: bool = False,
              retain_graph: Optional[bool] = None) -> torch.Tensor:
    """∂loss/∂copies as ``[n, d]``, copy i's parameters flattened in row i (zeros if unused)."""
    grads = torch.autograd.grad(loss, copies, create_graph=create_graph, retain_graph=retain_graph,
                                allow_unused=True)
    return torch.cat([(torch.zeros_like(c) if g is None else g).reshape(c.shape[0], -1)
                      for g, c in zip(grads, copies)], dim=1)


def _check_shapes(samples: torch.Tensor, exact: torch.Tensor):
    samples, exact = torch.as_tensor(samples), torch.as_tensor(exact)
    if samples.dim() != 2:
        raise ValueError(f"samples must have shape [n, d], got {tuple(samples.shape)}")
    if exact.shape != samples.shape[1:]:
        raise ValueError(f"exact must have shape [d] = [{samples.shape[1]}], got {tuple(exact.shape)}")
    if samples.shape[1] == 0:
        raise ValueError("samples has no components (shape [n, 0])")
    if samples.shape[0] < 2:
        raise ValueError(f"need n >= 2 independent samples to estimate a standard error, got {samples.shape[0]}")
    if not torch.isfinite(exact).all():
        raise ValueError("exact contains NaN or inf")
    return samples, exact
