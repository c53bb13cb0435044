"""TRPO's pieces: conjugate gradient, Fisher-vector products, the backtracking line search."""
import torch
from torch import nn
from torch.distributions import kl_divergence

from scgrad.rl.nets.actor_critic import CategoricalPolicy, GaussianPolicy
from scgrad.rl.algos.trust_region import (backtracking_line_search, conjugate_gradient, fisher_vector_product,
                                    flat_grad, flat_params, set_flat_params)


def test_conjugate_gradient_solves_spd_system():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, generator=g, dtype=torch.float64)
    a = m @ m.T + 0.5 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, generator=g, dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, iters=6)  # exact after n iterations
    torch.testing.assert_close(x, torch.linalg.solve(a, b))


def test_conjugate_gradient_stops_at_zero_residual():
    calls = []
    x = conjugate_gradient(lambda v: calls.append(1) or 2.0 * v, torch.ones(4), iters=10)
    torch.testing.assert_close(x, torch.full((4,), 0.5))
    assert len(calls) == 1  # A = 2I: one step, then the residual is zero


def explicit_fisher(policy, obs, params, log_probs_and_weights):
    """(1/K) Σ_s E_a[∇log π ∇log πᵀ], the expectation taken exactly."""
    fisher = 0.0
    for s in range(obs.shape[0]):
        for log_p, weight in log_probs_and_weights(policy, obs[s:s + 1]):
            g = flat_grad(log_p, params, retain_graph=True)
            fisher = fisher + weight * torch.outer(g, g)
    return fisher / obs.shape[0]


def categorical_terms(policy, obs):
    dist = policy.distribution(obs)
    for a in range(dist.probs.shape[-1]):
        log_p = dist.log_prob(torch.tensor([a]))[0]
        yield log_p, log_p.exp().detach()


def fvp_of(policy, obs, v, damping=0.0):
    params = list(policy.parameters())
    with torch.no_grad():
        old = policy.distribution(obs)
    kl = kl_divergence(old, policy.distribution(obs)).mean()
    kl_grad = flat_grad(kl, params, create_graph=True)
    return fisher_vector_product(kl_grad, params, v, damping), params


def test_fvp_equals_explicit_fisher_categorical():
    torch.manual_seed(0)
    policy = CategoricalPolicy(3, 4, (5,), nn.Tanh).double()
    for p in policy.parameters():  # move away from the near-uniform initialisation
        nn.init.normal_(p, std=0.7)
    obs = torch.randn(6, 3, dtype=torch.float64)
    params = list(policy.parameters())
    v = torch.randn(sum(p.numel() for p in params), dtype=torch.float64)
    fvp, _ = fvp_of(policy, obs, v, damping=0.1)
    fisher = explicit_fisher(policy, obs, params, categorical_terms)
    torch.testing.assert_close(fvp, fisher @ v + 0.1 * v)


def test_fvp_equals_explicit_fisher_gaussian():
    """Normal(μ(s), σ): its Fisher matrix in (μ, log σ) is diag(1/σ², 2); pull it back by the
    Jacobian J of (μ(s), log σ) with respect to θ: F = mean_s Jᵀ diag(1/σ², 2) J."""
    torch.manual_seed(1)
    policy = GaussianPolicy(3, 2, (4,), nn.Tanh, log_std=-0.3).double()
    for p in policy.mean.parameters():
        nn.init.normal_(p, std=0.7)
    obs = torch.randn(5, 3, dtype=torch.float64)
    names, params = zip(*policy.named_parameters())
    theta = flat_params(params)

    def coords(flat, s):
        tensors = {n: t.view_as(p) for n, t, p in zip(names, flat.split([p.numel() for p in params]), params)}
        mean_params = {n[len("mean."):]: t for n, t in tensors.items() if n.startswith("mean.")}
        return torch.cat([torch.func.functional_call(policy.mean, mean_params, (s,))[0], tensors["log_std"]])

    metric = torch.diag(torch.cat([torch.exp(-2 * policy.log_std.detach()), torch.full((2,), 2.0).double()]))
    fisher = torch.zeros(theta.numel(), theta.numel(), dtype=torch.float64)
    for s in obs.split(1):
        jac = torch.autograd.functional.jacobian(lambda f, s=s: coords(f, s), theta)
        fisher += jac.T @ metric @ jac / obs.shape[0]
    v = torch.randn(theta.numel(), dtype=torch.float64)
    fvp, _ = fvp_of(policy, obs, v)
    torch.testing.assert_close(fvp, fisher @ v)


class TestLineSearch:
    """Quadratic toy: KL(step) = ½|step|², loss(step) = −Σ step (improves along +1)."""

    @staticmethod
    def evaluate(step):
        return -float(step.sum()), 0.5 * float(step.dot(step))

    def test_rejects_steps_that_break_the_kl_bound(self):
        full = torch.full((4,), 1.0)  # KL = 2 at the full step
        result = backtracking_line_search(self.evaluate, full, loss_old=0.0, max_kl=0.5, backtrack_coef=0.8)
        # the full step improves the loss but breaks KL ≤ 0.5; |0.8ʲ·full|² / 2 ≤ 0.5 first at j = 4
        assert result.backtracks == 4
        assert result.kl <= 0.5 and result.loss < 0.0
        torch.testing.assert_close(result.step, full * 0.8**4)

    def test_accepts_the_full_step_inside_the_region(self):
        full = torch.full((4,), 0.1)
        result = backtracking_line_search(self.evaluate, full, loss_old=0.0, max_kl=0.5)
        assert result.backtracks == 0
        torch.testing.assert_close(result.step, full)

    def test_rejects_everything_when_the_loss_never_improves(self):
        full = torch.full((4,), -0.1)  # inside the region, but uphill
        result = backtracking_line_search(self.evaluate, full, loss_old=0.0, max_kl=0.5, max_backtracks=5)
        assert result.step is None and result.backtracks == 6


def test_flat_params_roundtrip():
    net = nn.Linear(3, 2)
    flat = flat_params(net.parameters())
    set_flat_params(list(net.parameters()), flat * 2)
    torch.testing.assert_close(flat_params(net.parameters()), flat * 2)
