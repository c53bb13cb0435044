"""The off-policy parts: replay buffer, transitions from the runner (terminated vs truncated),
critic targets by hand, polyak averaging, the ensemble critic, the actor graphs, TD3's delayed
steps, SAC's temperature, and settings validation."""
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from scgrad.rl.algos.ddpg import DDPG, DDPGConfig, deterministic_policy_loss
from scgrad.rl.envs.make import make_vector_env
from scgrad.rl.run.checkpoint import load_checkpoint
from scgrad.rl.errors import ConfigError, EnvError, TrainingDiverged
from scgrad.rl.nets.mlp import mlp
from scgrad.rl.algos.offpolicy import Stats, collect_step, critic_loss, frozen, polyak_update, td_target
from scgrad.rl.nets.offpolicy import EnsembleQ
from scgrad.rl.data.replay import ReplayBuffer, Transitions
from scgrad.rl.data.runner import EnvRunner
from scgrad.rl.algos.sac import SAC, SACConfig, alpha_loss, sac, soft_policy_loss
from scgrad.rl.algos.td3 import TD3, TD3Config

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = gym.spaces.Box(-2.0, 2.0, (2,), np.float32)
SMALL = dict(env="Pendulum-v1", hidden_sizes=(16, 16), steps=1000, steps_per_epoch=1000)


class Walk(gym.Env):
    """Observation [k] = steps since reset; reward 10·k after the step (NaN after
    ``nan_after`` steps in all); Box actions (ignored). Terminates at k = ``terminate_at``
    (if given); a TimeLimit truncates it."""

    def __init__(self, terminate_at=None, nan_after=None):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.terminate_at, self.nan_after, self.k, self.total = terminate_at, nan_after, 0, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.k += 1
        self.total += 1
        done = self.terminate_at is not None and self.k >= self.terminate_at
        reward = float("nan") if self.nan_after is not None and self.total > self.nan_after else 10.0 * self.k
        return np.array([self.k], np.float32), reward, done, False, {}


for _id, _kwargs, _limit in [("OffPolicyTerminates-v0", {"terminate_at": 2}, 10),
                             ("OffPolicyTruncates-v0", {}, 2), ("OffPolicyNaN-v0", {"nan_after": 250}, 20)]:
    if _id not in gym.registry:
        gym.register(_id, entry_point=Walk, kwargs=_kwargs, max_episode_steps=_limit)


def transitions(obs, act, rew, next_obs, terminated):
    as_tensor = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
    return Transitions(*map(as_tensor, (obs, act, rew, next_obs, terminated)))


# ------------------------------------------------------------------ replay buffer
def filled(capacity, rows, **kwargs):
    """A buffer with obs_dim 2, act_dim 1, holding transitions i = 0..rows-1 whose every field
    encodes i (obs [i, −i], act [i/100], rew i, next_obs [i + 1, 0], terminated i % 2)."""
    buffer = ReplayBuffer(capacity, 2, 1, **kwargs)
    i = np.arange(rows, dtype=np.float32)
    for chunk in np.array_split(i, max(1, rows // 3)):  # vector steps of up to 3 transitions
        buffer.add(np.stack([chunk, -chunk], 1), chunk[:, None] / 100, chunk, np.stack([chunk + 1, 0 * chunk], 1),
                   chunk % 2)
    return buffer


def test_replay_insert_and_sample_keep_transitions_whole():
    buffer = filled(100, 10)
    assert len(buffer) == 10
    batch = buffer.sample(500)
    i = batch.rew
    assert batch.obs.shape == (500, 2) and batch.act.shape == (500, 1) and batch.terminated.shape == (500,)
    torch.testing.assert_close(batch.obs, torch.stack([i, -i], 1))
    torch.testing.assert_close(batch.act[:, 0], i / 100)
    torch.testing.assert_close(batch.next_obs[:, 0], i + 1)
    torch.testing.assert_close(batch.terminated, i % 2)
    assert set(i.tolist()) == set(range(10))  # uniform over what is stored: all 10 show up in 500 draws


def test_replay_wraps_around_keeping_the_latest():
    buffer = filled(7, 10)  # 10 transitions through a ring of 7: 0, 1, 2 overwritten
    assert len(buffer) == 7 and buffer.ptr == 3
    assert set(buffer.sample(1000).rew.tolist()) == set(range(3, 10))
    big = ReplayBuffer(4, 1, 1)
    with pytest.raises(ValueError, match="capacity 4"):
        big.add(*(np.zeros((5, 1)),) * 2, np.zeros(5), np.zeros((5, 1)), np.zeros(5))
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(4, 1, 1).sample(2)


def test_replay_state_round_trip_continues_the_same_samples():
    buffer = filled(8, 6, seed=3)
    buffer.sample(5)
    state = buffer.state_dict()
    assert state["data"].shape == (6, 2 * 2 + 1 + 2)  # only the filled rows are saved
    expected = buffer.sample(20)
    restored = ReplayBuffer(8, 2, 1, seed=99)
    restored.load_state_dict(state)
    assert (restored.ptr, len(restored)) == (6, 6)
    assert torch.equal(restored.sample(20).obs, expected.obs)
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(9, 2, 1).load_state_dict(state)


def test_replay_without_data_restores_empty_but_same_stream():
    buffer = filled(8, 6, seed=3, save_data=False)
    state = buffer.state_dict()
    assert state["data"] is None
    restored = filled(8, 6, seed=5)
    restored.load_state_dict(state)
    assert len(restored) == 0 and restored.ptr == 0
    assert torch.equal(restored.generator.get_state(), buffer.generator.get_state())


# ------------------------------------------------------------------ transitions from the runner
def collect(env_id, steps):
    runner = EnvRunner(make_vector_env(env_id, 1), seed=0)
    buffer = ReplayBuffer(16, 1, 1)
    for _ in range(steps):
        collect_step(runner, actor=None, buffer=buffer, explore_randomly=True)
    return buffer.data[:steps]  # rows in insertion order: s, a, r, s′, terminated


def test_termination_is_stored_as_terminal_with_its_final_observation():
    rows = collect("OffPolicyTerminates-v0", 3)
    # steps: s=0 → 1; s=1 → 2 (terminal); reset, s=0 → 1
    assert rows[:, 0].tolist() == [0, 1, 0] and rows[:, 3].tolist() == [1, 2, 1]
    assert rows[:, 2].tolist() == [10, 20, 10] and rows[:, 4].tolist() == [0, 1, 0]
    assert rows[:, 1].abs().max() <= 1  # random phase: actions uniform in [−1, 1]


def test_truncation_bootstraps_from_its_true_last_observation():
    rows = collect("OffPolicyTruncates-v0", 3)
    # the time limit cuts after 2 steps: s′ of the cut step is [2] (not the reset [0]), not terminal
    assert rows[:, 0].tolist() == [0, 1, 0] and rows[:, 3].tolist() == [1, 2, 1]
    assert rows[:, 4].tolist() == [0, 0, 0]


def test_td_target_by_hand():
    rew, terminated = torch.tensor([1.0, 2.0, -1.0]), torch.tensor([0.0, 1.0, 0.0])
    next_v = torch.tensor([5.0, 7.0, 3.0])
    torch.testing.assert_close(td_target(rew, terminated, next_v, 0.9), torch.tensor([1 + 0.9 * 5, 2.0, -1 + 0.9 * 3]))
    q = torch.tensor([[1.0, 2.0], [0.0, 4.0]])
    assert critic_loss(q, torch.tensor([1.0, 0.0])).item() == pytest.approx((0 + 4) / 2 + (1 + 16) / 2)


@pytest.mark.parametrize("algorithm, config", [(DDPG, DDPGConfig), (TD3, TD3Config)])
def test_deterministic_critic_target_terminal_vs_truncated(algorithm, config):
    torch.manual_seed(0)
    c = config(**SMALL, gamma=0.9, target_noise=0.0) if algorithm is TD3 else config(**SMALL, gamma=0.9)
    model = algorithm.make_model(c, OBS, ACT)
    algo = algorithm(c, model)
    s2 = [[0.5, -1.0, 2.0], [0.5, -1.0, 2.0]]
    # the same s′ twice: a terminal transition, then a truncated one (stored as not terminal)
    batch = transitions([[0.0] * 3] * 2, [[0.0] * 2] * 2, [1.0, 2.0], s2, [1.0, 0.0])
    with torch.no_grad():
        s2t = torch.tensor(s2[:1])
        bootstrap = model.q_targ(s2t, model.pi_targ(s2t)).min(0).values.item()
    y = algo.critic_target(batch)
    assert y.tolist() == pytest.approx([1.0, 2.0 + 0.9 * bootstrap], rel=1e-6)


def test_soft_critic_target_terminal_vs_truncated():
    c = SACConfig(**SMALL, gamma=0.9)
    model = SAC.make_model(c, OBS, ACT)
    algo = SAC(c, model)
    alpha = torch.tensor(0.3)
    batch = transitions([[0.0] * 3] * 2, [[0.0] * 2] * 2, [1.0, 2.0], [[0.5, -1.0, 2.0]] * 2, [1.0, 0.0])
    torch.manual_seed(1)
    y = algo.critic_target(batch, alpha)
    torch.manual_seed(1)  # the same a′ ~ π(·|s′)
    with torch.no_grad():
        a2, logp2 = model.pi.sample(batch.next_obs)
        soft_v = model.q_targ(batch.next_obs, a2).min(0).values - 0.3 * logp2
    assert y.tolist() == pytest.approx([1.0, 2.0 + 0.9 * soft_v[1].item()], rel=1e-6)


# ------------------------------------------------------------------ targets and critics
def test_polyak_update_is_an_exponential_average():
    target, source = [torch.ones(3), torch.zeros(2, 2)], [torch.full((3,), 3.0), torch.ones(2, 2)]
    polyak_update(target, source, 0.75)
    torch.testing.assert_close(target[0], torch.full((3,), 0.75 + 0.25 * 3))
    torch.testing.assert_close(target[1], torch.full((2, 2), 0.25))


@pytest.mark.parametrize("algorithm, config", [(TD3, TD3Config), (SAC, SACConfig)])
def test_target_networks_follow_their_networks(algorithm, config):
    c = config(**SMALL)
    model = algorithm.make_model(c, OBS, ACT)
    algo = algorithm(c, model)
    pairs = [(model.q, model.q_targ)] + ([(model.pi, model.pi_targ)] if hasattr(model, "pi_targ") else [])
    with torch.no_grad():
        for net, _ in pairs:
            for p in net.parameters():
                p.add_(torch.randn_like(p))
    before = [[p.clone() for p in targ.parameters()] for _, targ in pairs]
    algo.update_targets(0.9)  # flat tensors: the layouts must line up parameter by parameter
    for (net, targ), old in zip(pairs, before):
        for p, t, t0 in zip(net.parameters(), targ.parameters(), old):
            torch.testing.assert_close(t, 0.9 * t0 + 0.1 * p)
            assert not t.requires_grad


def test_ensemble_critic_equals_separate_mlps():
    torch.manual_seed(0)
    members = [mlp([5, 8, 8, 1], nn.ReLU) for _ in range(3)]
    ensemble = EnsembleQ.from_mlps(members)
    obs, act = torch.randn(7, 3), torch.randn(7, 2)
    x = torch.cat([obs, act], -1)
    expected = torch.stack([m(x).squeeze(-1) for m in members])
    torch.testing.assert_close(ensemble(obs, act), expected)
    torch.testing.assert_close(ensemble(obs, act, members=slice(1, 2)), expected[1:2])
    fresh = EnsembleQ(3, 2, (8, 8), nn.ReLU, n=2)
    assert not torch.equal(fresh.weights[0][0], fresh.weights[0][1])  # members start independent
    # gradients with respect to the action agree too (the actor's step goes through them)
    act.requires_grad_(True)
    grad, = torch.autograd.grad(ensemble(obs, act).sum(), act)
    act2 = act.detach().requires_grad_(True)
    grad2, = torch.autograd.grad(sum(m(torch.cat([obs, act2], -1)).sum() for m in members), act2)
    torch.testing.assert_close(grad, grad2)


# ------------------------------------------------------------------ actor graphs
def test_deterministic_policy_graph_is_the_deterministic_policy_gradient():
    c = TD3Config(**SMALL)
    model = TD3.make_model(c, OBS, ACT)
    obs = torch.randn(9, 3)
    with frozen(model.q):
        loss = deterministic_policy_loss(model.pi, model.q, obs)
        loss.backward()
    assert all(p.grad is None for p in model.q.parameters())  # the critic is not trained here
    graph_grads = [p.grad.clone() for p in model.pi.parameters()]
    model.pi.zero_grad()
    direct = -model.q(obs, model.pi(obs))[0].mean()  # −Q_1(s, μ(s)): TD3's actor loss
    direct.backward()
    assert loss.item() == pytest.approx(direct.item())
    for g, p in zip(graph_grads, model.pi.parameters()):
        torch.testing.assert_close(g, p.grad)


def test_soft_policy_graph_is_the_reparameterized_sac_loss():
    c = SACConfig(**SMALL)
    model = SAC.make_model(c, OBS, ACT)
    obs, alpha = torch.randn(9, 3), torch.tensor(0.3)
    torch.manual_seed(5)
    loss, log_p = soft_policy_loss(model, obs, alpha)
    grads = torch.autograd.grad(loss, list(model.pi.parameters()))
    torch.manual_seed(5)
    dist = model.pi.distribution(obs)
    a = dist.rsample()
    direct = (alpha * dist.log_prob(a) - model.q(obs, a).min(0).values).mean()
    assert loss.item() == pytest.approx(direct.item(), rel=1e-6)
    for g, d in zip(grads, torch.autograd.grad(direct, list(model.pi.parameters()))):
        torch.testing.assert_close(g, d)
    assert log_p.shape == (9,)


# ------------------------------------------------------------------ algorithm steps
def fixed_batch(n=32):
    g = torch.Generator().manual_seed(0)
    return Transitions(torch.randn(n, 3, generator=g), torch.rand(n, 2, generator=g) * 2 - 1,
                       torch.randn(n, generator=g), torch.randn(n, 3, generator=g), torch.zeros(n))


def test_td3_updates_the_actor_and_targets_every_policy_delay_steps():
    c = TD3Config(**SMALL, policy_delay=3)
    model = TD3.make_model(c, OBS, ACT)
    algo, batch = TD3(c, model), fixed_batch()
    moved = []
    for _ in range(7):
        pi, targ = [p.clone() for p in model.pi.parameters()], [p.clone() for p in model.pi_targ.parameters()]
        algo.update(batch)
        changed = lambda old, net: any(not torch.equal(a, b) for a, b in zip(old, net.parameters()))  # noqa: E731
        moved.append((changed(pi, model.pi), changed(targ, model.pi_targ)))
    assert moved == [(k % 3 == 0, k % 3 == 0) for k in range(7)]  # gradient steps 0, 3, 6
    assert algo.updates == 7
    stats = algo.stats.means()
    assert all(isinstance(stats[k], float) for k in ("LossPi", "LossQ", "QVals"))


def test_ddpg_updates_the_actor_every_step():
    c = DDPGConfig(**SMALL)
    model = DDPG.make_model(c, OBS, ACT)
    assert model.q.n == 1
    algo, batch = DDPG(c, model), fixed_batch()
    before = [p.clone() for p in model.pi.parameters()]
    algo.update(batch)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.pi.parameters()))


@pytest.mark.parametrize("target_entropy, direction", [(5.0, 1), (-50.0, -1)])
def test_sac_temperature_moves_toward_the_target_entropy(target_entropy, direction):
    # a 2-D tanh-Gaussian's entropy is at most 2·log 2 ≈ 1.4 < 5: below target, α must rise;
    # −50 is far below any entropy it has at the start: α must fall
    c = SACConfig(**SMALL, target_entropy=target_entropy)
    model = SAC.make_model(c, OBS, ACT)
    algo = SAC(c, model)
    before = model.temperature().item()
    algo.update(fixed_batch())
    assert math.copysign(1.0, model.temperature().item() - before) == direction
    log_alpha = torch.tensor(0.0, requires_grad=True)
    grad, = torch.autograd.grad(alpha_loss(log_alpha, torch.tensor([-1.0, -3.0]), target_entropy), log_alpha)
    assert grad.item() == pytest.approx(-(-2.0 + target_entropy))  # −(mean log π + H̄)


def test_sac_fixed_alpha_stays_and_default_target_entropy():
    c = SACConfig(**SMALL, alpha=0.2)
    model = SAC.make_model(c, OBS, ACT)
    algo = SAC(c, model)
    algo.update(fixed_batch())
    assert model.temperature().item() == pytest.approx(0.2)
    assert SAC(SACConfig(**SMALL), SAC.make_model(SACConfig(**SMALL), OBS, ACT)).target_entropy == -2.0


def test_stats_read_once_and_mark_unmeasured_columns():
    stats = Stats(["LossQ", "LossPi"])
    stats.add(LossQ=torch.tensor(1.0))
    stats.add(LossQ=torch.tensor(3.0))
    assert stats.means() == {"LossQ": 2.0, "LossPi": None}
    assert stats.means() == {"LossQ": None, "LossPi": None}  # starts over


# ------------------------------------------------------------------ settings
@pytest.mark.parametrize("config, settings, pattern", [
    (SACConfig, dict(q_lr=-1e-3), "q_lr must be > 0"),
    (SACConfig, dict(polyak=1.5), r"polyak must be in \[0, 1\]"),
    (SACConfig, dict(batch_size=0), "batch_size must be > 0"),
    (SACConfig, dict(alpha=0.0), "alpha must be > 0 or none"),
    (SACConfig, dict(alpha_lr=0.0), "alpha_lr must be > 0"),
    (SACConfig, dict(start_steps=-1), "start_steps must be >= 0"),
    (SACConfig, dict(num_envs=2, update_every=51), "update_every .* multiple of num_envs"),
    (SACConfig, dict(normalize_obs=True), "normalize_obs is not supported"),
    (SACConfig, dict(replay_size=2.5), "replay_size must be of type int"),
    (DDPGConfig, dict(act_noise=-0.1), "act_noise must be >= 0"),
    (TD3Config, dict(policy_delay=0), "policy_delay must be >= 1"),
    (TD3Config, dict(noise_clip=-1.0), "noise_clip must be >= 0"),
    (TD3Config, dict(steps=501, num_envs=2, steps_per_epoch=400, update_every=50),
     r"steps \(501\) must be a multiple of num_envs"),
])
def test_bad_settings_are_config_errors(config, settings, pattern):
    with pytest.raises(ConfigError, match=pattern):
        config(**{**SMALL, **settings})


@pytest.mark.parametrize("space, pattern", [(gym.spaces.Discrete(3), "need a Box"),
                                            (gym.spaces.Box(-np.inf, np.inf, (2,)), "infinite bounds")])
def test_unsupported_action_spaces_are_env_errors(space, pattern):
    with pytest.raises(EnvError, match=pattern):
        SAC.make_model(SACConfig(**SMALL), OBS, space)


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    # rewards turn NaN at step 251: epoch 3 (100 steps each) trains on them, and the actor
    # graph refuses the NaN cost (or the loop finds NaN losses)
    with pytest.raises(TrainingDiverged, match="epoch 3: .*NaN.*last good checkpoint is kept"):
        sac("OffPolicyNaN-v0", tmp_path, steps=500, steps_per_epoch=100, hidden_sizes=(8,), batch_size=16,
            start_steps=0, update_after=50, update_every=50, num_test_episodes=0)
    assert load_checkpoint(tmp_path)["epoch"] == 2
