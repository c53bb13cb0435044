"""Check that a gradient estimator is unbiased: exact derivatives and a statistical test.

Three steps, for a model ``model(g)`` that records its samples and costs on a graph::

    exact = exact_gradient(model, params)            # [d]: Enumerate + Gauss–Hermite quadrature
    samples = gradient_samples(one_estimate, n=2000)  # [n, d]: independent estimates
    assert_unbiased(samples, exact, alpha=1e-4)       # Bonferroni z-test; raises UnbiasednessError

- :mod:`~scgrad.testing.exact`: ``exact_objective``, ``exact_gradient``, ``exact_hessian``
  (every finite-support node enumerated, every Normal node integrated by quadrature).
- :mod:`~scgrad.testing.quadrature`: ``GaussHermite``, the quadrature estimator.
- :mod:`~scgrad.testing.check`: ``assert_unbiased`` (false-failure rate ≈ alpha), its
  two-stage variant ``assert_unbiased_confirmed`` (for small alphas and skewed estimates), the
  report, ``gradient_samples`` and ``per_sample_derivatives`` (n estimates in one backward pass).
- :mod:`~scgrad.testing.strategies`: Hypothesis strategies for random small graphs (needs
  ``hypothesis``; imported on demand, not here).
"""
from .check import (PerSampleDerivatives, UnbiasednessError, UnbiasednessReport, assert_unbiased,
                    assert_unbiased_confirmed, gradient_samples, per_sample_derivatives,
                    unbiasedness_report, z_threshold)
from .exact import (DEFAULT_QUADRATURE_ORDER, UnsupportedDistributionError, exact_estimators,
                    exact_gradient, exact_hessian, exact_objective)
from .quadrature import GaussHermite

__all__ = [
    "DEFAULT_QUADRATURE_ORDER", "GaussHermite", "PerSampleDerivatives", "UnbiasednessError",
    "UnbiasednessReport", "UnsupportedDistributionError", "assert_unbiased",
    "assert_unbiased_confirmed", "exact_estimators",
    "exact_gradient", "exact_hessian", "exact_objective", "gradient_samples",
    "per_sample_derivatives", "unbiasedness_report", "z_threshold",
]
