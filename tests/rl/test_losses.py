"""The policy losses built as sg.Graphs equal the textbook formulas, in value and gradient."""
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.distributions import Categorical

from scgrad.rl.data.batch import Batch
from scgrad.rl.losses import approx_kl
from scgrad.rl.algos.ppo import PPO, PPOConfig
from scgrad.rl.algos.trpo import TRPO, TRPOConfig
from scgrad.rl.algos.vpg import VPG, VPGConfig

ADV = torch.tensor([1.0, -1.0, 2.0, -2.0, 1.0, -1.0, -1.0, 0.5])
RATIO = torch.tensor([0.5, 0.9, 1.0, 1.1, 1.5, 0.5, 1.5, 1.25])  # inside and outside [0.8, 1.2]


class StubPolicy(nn.Module):
    """π(a) = Categorical(logits) per sample, independent of the observation."""

    def __init__(self, logits):
        super().__init__()
        self.logits = nn.Parameter(logits)

    def distribution(self, obs):
        return Categorical(logits=self.logits)


def setup():
    torch.manual_seed(0)
    policy = StubPolicy(torch.randn(8, 3))
    act = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    with torch.no_grad():
        logp = policy.distribution(None).log_prob(act)
    batch = Batch(obs=torch.zeros(8, 1), act=act, logp=logp - RATIO.log(), adv=ADV, ret=torch.zeros(8),
                  v=torch.linspace(-1.0, 2.0, 8))  # π_old chosen so that π/π_old = RATIO
    return SimpleNamespace(pi=policy), batch


def grads(loss, model):
    (g,) = torch.autograd.grad(loss, [model.pi.logits])
    return g


def textbook(model, batch, objective):
    logp = model.pi.distribution(None).log_prob(batch.act)
    return objective(logp)


def check(ours, model, batch, objective):
    expected = textbook(model, batch, objective)
    assert ours.value == pytest.approx(expected.item(), abs=1e-6)
    torch.testing.assert_close(ours.loss.item(), expected.item() - batch.v.mean().item())  # baseline's part
    torch.testing.assert_close(grads(ours.loss, model), grads(expected, model))


def test_ppo_clipped_loss_is_the_textbook_formula():
    model, batch = setup()
    eps = 0.2

    def clipped(logp):
        ratio = torch.exp(logp - batch.logp)
        return -torch.min(ratio * batch.adv, ratio.clamp(1 - eps, 1 + eps) * batch.adv).mean()

    check(PPO(PPOConfig(clip_ratio=eps)).loss_pi(model, batch), model, batch, clipped)


def test_ppo_clipped_gradient_vanishes_where_clipped():
    model, batch = setup()
    g = grads(PPO(PPOConfig(clip_ratio=0.2)).loss_pi(model, batch).loss, model)
    # ratio above 1 + ε with Â > 0, or below 1 − ε with Â < 0: the clip is active, no gradient
    for i in (4, 5, 7):
        assert torch.all(g[i] == 0), i
    for i in (0, 1, 2, 3, 6):
        assert torch.any(g[i] != 0), i


def test_trpo_surrogate_is_the_importance_weighted_advantage():
    model, batch = setup()
    check(TRPO(TRPOConfig()).loss_pi(model, batch), model, batch,
          lambda logp: -(torch.exp(logp - batch.logp) * batch.adv).mean())


def test_vpg_loss_is_the_score_function_with_critic_baseline():
    model, batch = setup()
    # Spinning Up's form: −mean(log π(a|s) · Â); its value at the samples is −mean(Â)·(...),
    # so compare gradients, and the logged value −mean(Â)
    ours = VPG(VPGConfig()).loss_pi(model, batch)
    assert ours.value == pytest.approx(-batch.adv.mean().item(), abs=1e-6)
    expected = textbook(model, batch, lambda logp: -(logp * batch.adv).mean())
    torch.testing.assert_close(grads(ours.loss, model), grads(expected, model))


def test_approx_kl_is_nonnegative_and_zero_at_equality():
    logp = torch.log(torch.tensor([0.2, 0.5, 0.3]))
    assert approx_kl(logp, logp).item() == 0.0
    assert approx_kl(logp, logp + torch.tensor([0.3, -0.2, 0.1])).item() > 0.0


class IndexedPolicy(StubPolicy):
    """Row i of the logits for the observation [i]: survives PPO's shuffling of the batch."""

    def distribution(self, obs):
        return Categorical(logits=self.logits[obs[:, 0].long()])


def test_ppo_policy_stands_still_after_the_kl_early_stop():
    torch.manual_seed(0)
    model = SimpleNamespace(pi=IndexedPolicy(torch.randn(8, 3)), v=nn.Linear(1, 1))
    model.v.forward = lambda obs: nn.Linear.forward(model.v, obs).squeeze(-1)
    _, batch = setup()
    batch.obs = torch.arange(8.0)[:, None]
    with torch.no_grad():
        batch.logp = model.pi.distribution(batch.obs).log_prob(batch.act)  # π_old = π: KL starts at 0
    algo = PPO(PPOConfig(env="CartPole-v1", update_epochs=3, minibatch_size=None, target_kl=1e-9, pi_lr=0.1))
    optimizers = algo.optimizers(model)
    info = algo.update(model, optimizers, batch)
    # one policy step (KL 0 passes), then the KL exceeds 1.5e-9 and only the critic steps on
    assert info["StopIter"] == 1
    assert optimizers["pi"].state_dict()["state"][0]["step"].item() == 1
    assert optimizers["v"].state_dict()["state"][0]["step"].item() == 3


def _ppo_run(batch, **settings):
    """Parameters of an IndexedPolicy and a linear critic after one PPO update on ``batch``."""
    torch.manual_seed(0)
    model = SimpleNamespace(pi=IndexedPolicy(torch.randn(8, 3)), v=nn.Linear(1, 1))
    model.v.forward = lambda obs: nn.Linear.forward(model.v, obs).squeeze(-1)
    with torch.no_grad():
        batch.logp = model.pi.distribution(batch.obs).log_prob(batch.act)
    config = dict(env="CartPole-v1", update_epochs=2, minibatch_size=4, target_kl=None, pi_lr=0.05, vf_lr=0.05)
    algo = PPO(PPOConfig(**{**config, **settings}))
    torch.manual_seed(1)  # the same minibatch shuffles in every run
    algo.update(model, algo.optimizers(model), batch)
    return torch.cat([p.detach().reshape(-1) for p in [*model.pi.parameters(), *model.v.parameters()]])


def _batch():
    _, batch = setup()
    batch.obs = torch.arange(8.0)[:, None]
    batch.ret = torch.linspace(0.0, 30.0, 8)  # large value errors: the critic's gradient dominates the norm
    return batch


def test_minibatch_advantage_normalisation_standardises_each_minibatch():
    """With the option, a rollout's advantages scaled and shifted give the same update (each
    minibatch is standardised); without it they do not (negative control)."""
    batch, moved = _batch(), _batch()
    moved.adv = 3.0 * moved.adv - 5.0  # the shift flips some signs: Adam alone would not absorb it
    on = dict(normalize_minibatch_advantages=True)
    torch.testing.assert_close(_ppo_run(batch, **on), _ppo_run(moved, **on))
    assert not torch.allclose(_ppo_run(_batch()), _ppo_run(moved))


def test_vf_coef_acts_only_through_the_joint_clipping():
    """Separate Adams are invariant to the value loss's weight, so without clipping the update
    is the same; with the joint clipping the weight changes how much the critic's gradient
    shrinks the policy's."""
    free = [_ppo_run(_batch(), vf_coef=w, max_grad_norm=None) for w in (1.0, 0.5)]
    torch.testing.assert_close(free[0], free[1], rtol=1e-5, atol=1e-6)
    clipped = [_ppo_run(_batch(), vf_coef=w, max_grad_norm=0.5) for w in (1.0, 0.5)]
    assert not torch.allclose(clipped[0], clipped[1])


@pytest.mark.parametrize("bad", [dict(vf_coef=0.0), dict(vf_coef=-1.0), dict(adam_eps=0.0)])
def test_bad_ppo_settings_are_rejected(bad):
    from scgrad.rl.errors import ConfigError
    with pytest.raises(ConfigError, match=next(iter(bad))):
        PPOConfig(env="CartPole-v1", **bad).validate()
