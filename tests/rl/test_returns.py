"""Discounted returns and GAE against hand-computed values (incl. truncation bootstrap)."""
import pytest
import torch

from scgrad.rl.returns import discounted_returns, gae

F = torch.tensor([False, False, False])


def flags(*on, T=3):
    x = torch.zeros(T, dtype=torch.bool)
    x[list(on)] = True
    return x


class TestGAE:
    r = torch.tensor([1.0, 0.0, 2.0])
    v = torch.tensor([0.5, 1.0, 1.5])
    gamma, lam = 0.9, 0.8

    def test_no_episode_end(self):
        # δ = [1 + .9·1 − .5, 0 + .9·1.5 − 1, 2 + .9·3 − 1.5] = [1.4, .35, 3.2]; γλ = .72
        adv = gae(self.r, self.v, torch.tensor([1.0, 1.5, 3.0]), F, F, self.gamma, self.lam)
        torch.testing.assert_close(adv, torch.tensor([3.31088, 2.654, 3.2]))

    def test_truncation_bootstraps_from_final_observation_value(self):
        # step 1 hits the time limit; V(final obs) = 4 (not V(s_2), which starts a new episode)
        v_next = torch.tensor([1.0, 4.0, 3.0])
        adv = gae(self.r, self.v, v_next, F, flags(1), self.gamma, self.lam)
        # δ1 = .9·4 − 1 = 2.6, cut there; Â0 = 1.4 + .72·2.6
        torch.testing.assert_close(adv, torch.tensor([3.272, 2.6, 3.2]))

    def test_termination_never_bootstraps(self):
        v_next = torch.tensor([1.0, 123.0, 3.0])  # V(s'_1) must be ignored
        adv = gae(self.r, self.v, v_next, flags(1), F, self.gamma, self.lam)
        torch.testing.assert_close(adv, torch.tensor([0.68, -1.0, 3.2]))

    def test_terminated_and_truncated_together_is_terminal(self):
        v_next = torch.tensor([1.0, 123.0, 3.0])
        adv = gae(self.r, self.v, v_next, flags(1), flags(1), self.gamma, self.lam)
        torch.testing.assert_close(adv, torch.tensor([0.68, -1.0, 3.2]))

    def test_lambda_zero_is_td_error(self):
        v_next = torch.tensor([1.0, 1.5, 3.0])
        adv = gae(self.r, self.v, v_next, F, F, self.gamma, 0.0)
        torch.testing.assert_close(adv, torch.tensor([1.4, 0.35, 3.2]))

    def test_batch_columns_are_independent(self):
        torch.manual_seed(0)
        T, B = 7, 4
        r, v, vn = torch.randn(T, B), torch.randn(T, B), torch.randn(T, B)
        term, trunc = torch.rand(T, B) < 0.2, torch.rand(T, B) < 0.2
        adv = gae(r, v, vn, term, trunc, 0.97, 0.9)
        for b in range(B):
            col = gae(r[:, b], v[:, b], vn[:, b], term[:, b], trunc[:, b], 0.97, 0.9)
            torch.testing.assert_close(adv[:, b], col)


class TestDiscountedReturns:
    r = torch.tensor([1.0, 2.0, 3.0, 4.0])
    F4 = torch.zeros(4, dtype=torch.bool)

    def test_bootstrap_at_rollout_end(self):
        v_next = torch.tensor([0.0, 0.0, 0.0, 8.0])  # only the last entry is read
        ret = discounted_returns(self.r, v_next, self.F4, self.F4, 0.5)
        torch.testing.assert_close(ret, torch.tensor([3.75, 5.5, 7.0, 8.0]))

    def test_termination(self):
        v_next = torch.tensor([0.0, 99.0, 0.0, 8.0])
        ret = discounted_returns(self.r, v_next, flags(1, T=4), self.F4, 0.5)
        torch.testing.assert_close(ret, torch.tensor([2.0, 2.0, 7.0, 8.0]))

    def test_truncation_bootstrap(self):
        v_next = torch.tensor([0.0, 10.0, 0.0, 8.0])
        ret = discounted_returns(self.r, v_next, self.F4, flags(1, T=4), 0.5)
        torch.testing.assert_close(ret, torch.tensor([4.5, 7.0, 7.0, 8.0]))

    def test_equals_gae_lambda_one_plus_value(self):
        torch.manual_seed(1)
        T, B = 9, 3
        r, v = torch.randn(T, B), torch.randn(T, B)
        term, trunc = torch.rand(T, B) < 0.2, torch.rand(T, B) < 0.2
        v_last, v_final = torch.randn(B), torch.randn(T, B)
        # consistent successors: V(s_{t+1}) inside an episode, V(final obs) at its end
        v_next = torch.where(term | trunc, v_final, torch.cat([v[1:], v_last[None]]))
        ret = discounted_returns(r, v_next, term, trunc, 0.9)
        torch.testing.assert_close(ret, gae(r, v, v_next, term, trunc, 0.9, 1.0) + v)


@pytest.mark.parametrize("fn", ["gae", "returns"])
def test_bad_arguments(fn):
    x = torch.zeros(3)
    call = (lambda g, y: gae(x, x, y, F, F, g, 0.9)) if fn == "gae" else (
        lambda g, y: discounted_returns(x, y, F, F, g))
    with pytest.raises(ValueError, match="gamma"):
        call(1.5, x)
    with pytest.raises(ValueError, match="shape"):
        call(0.9, torch.zeros(4))
    if fn == "gae":
        with pytest.raises(ValueError, match="lam"):
            gae(x, x, x, F, F, 0.9, -0.1)
