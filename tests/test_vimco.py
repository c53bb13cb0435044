"""VIMCO: unbiased for a multi-sample bound against the exact gradient (all K-sample
configurations enumerated), its leave-one-out bounds against a loop, a negative control whose
baseline includes the sample itself, and clear errors.

Statistics: ``assert_unbiased`` at alpha = 1e-4 on N independent estimates, torch seeded.
"""
import itertools
import math

import pytest
import torch
from torch.distributions import Bernoulli, Independent

import scgrad as sg
from scgrad.errors import GraphError
from scgrad.estimators import VIMCO
from scgrad.estimators.vimco import leave_one_out_bounds
from scgrad.testing import UnbiasednessError, assert_unbiased, per_sample_derivatives

K, N = 3, 20_000


def log_weight(z: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """ℓ(z) for two bits z [..., 2], with a parameter θ of its own (a pathwise term)."""
    return theta * z[..., 0] - 2.0 * z[..., 1] * z[..., 0] + 0.3 * z[..., 1]


def exact_gradient(phi: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """∂/∂(φ, θ) of E[−log (1/K) Σ_k exp ℓ(z_k)], z_k ~ Bernoulli(σ(φ)) i.i.d., by enumeration."""
    phi, theta = phi.clone().requires_grad_(), theta.clone().requires_grad_()
    total = 0
    for zs in itertools.product(itertools.product([0.0, 1.0], repeat=2), repeat=K):
        z = torch.tensor(zs, dtype=torch.float64)                        # [K, 2]
        p = Bernoulli(logits=phi).log_prob(z).sum().exp()
        total = total + p * -(torch.logsumexp(log_weight(z, theta), 0) - math.log(K))
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(total, [phi, theta])])


def estimates(make_estimator, phi, theta, n=N):
    def surrogate(copies):
        estimator = make_estimator()
        with sg.Graph() as g:
            q = Independent(Bernoulli(logits=copies[0]), 1).expand((K, len(copies[0])))
            z = g.sample("z", q, estimator=estimator)                   # [K, n, 2]
            g.cost("negative_bound", estimator.objective(log_weight(z, copies[1])))
        return g.surrogate()
    return per_sample_derivatives(surrogate, [phi, theta], n).gradients


PHI, THETA = torch.tensor([0.3, -0.7], dtype=torch.float64), torch.tensor(1.5, dtype=torch.float64)


def test_vimco_is_unbiased_for_the_multi_sample_bound():
    torch.manual_seed(0)
    assert_unbiased(estimates(VIMCO, PHI, THETA), exact_gradient(PHI, THETA), 1e-4)


class OwnSampleBaseline(VIMCO):
    """Negative control: every sample baselined by the full bound L̂, which includes its own ℓ_k."""

    def terms(self, node, credit):
        terms = super().terms(node, credit)
        bound = -self.objective(self._log_weights).unsqueeze(0).expand(node.shape) * node.shape[0]
        return type(terms)(score=terms.score, baseline=bound)


def test_a_baseline_that_includes_the_sample_itself_is_caught():
    torch.manual_seed(0)
    with pytest.raises(UnbiasednessError):
        assert_unbiased(estimates(OwnSampleBaseline, PHI, THETA), exact_gradient(PHI, THETA), 1e-4)


def test_leave_one_out_bounds_match_a_loop():
    torch.manual_seed(3)
    log_weights = torch.randn(2, 4, 5, dtype=torch.float64)  # K = 4 along dim 1
    out = leave_one_out_bounds(log_weights, 1)
    for k in range(4):
        others = torch.cat([log_weights[:, :k], log_weights[:, k + 1:]], 1)
        swapped = torch.cat([others, others.mean(1, keepdim=True)], 1)
        assert torch.allclose(out[:, k], torch.logsumexp(swapped, 1) - math.log(4))


def test_clear_errors():
    q = Bernoulli(logits=torch.zeros(3, 5))
    with pytest.raises(GraphError, match="node 'z': VIMCO needs its multi-sample objective"):
        with sg.Graph() as g:
            z = g.sample("z", q, estimator=VIMCO(0))
            g.cost("c", z.sum(0))
        g.surrogate()
    with pytest.raises(GraphError, match="K >= 2"):
        VIMCO(0).objective(torch.zeros(1, 5))
    with pytest.raises(GraphError, match="one log-weight per sample"):
        estimator = VIMCO(0)
        with sg.Graph() as g:
            z = g.sample("z", q, estimator=estimator)
            g.cost("c", estimator.objective(z[:2]))
        g.surrogate()
