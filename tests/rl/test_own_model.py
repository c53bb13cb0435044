"""A model of the user's own, passed in as ``actor_critic=`` (the contract in ``scgrad.rl.algos.base``)."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.distributions import Categorical

import scgrad.rl
from scgrad.rl.algos.ppo import ppo
from scgrad.rl.algos.sac import SAC, SACConfig, sac
from scgrad.rl.errors import CheckpointError, RLError
from scgrad.rl.nets.offpolicy import SoftActorCritic

SHORT = dict(steps=400, steps_per_epoch=200, update_epochs=2, seed=3, progress=False)


class OwnPolicy(nn.Module):
    """A policy unlike the default MLP: layer-normalised features, a Categorical head."""

    def __init__(self, obs_dim, n):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_dim, 32), nn.LayerNorm(32), nn.ReLU(), nn.Linear(32, n))
        self.calls = 0

    def distribution(self, obs):
        self.calls += 1
        return Categorical(logits=self.net(obs))

    def sample(self, obs):
        d = self.distribution(obs)
        a = d.sample()
        return a, d.log_prob(a)

    def act(self, obs):
        return self.distribution(obs).sample()

    def mode(self, obs):
        return self.net(obs).argmax(-1)


class OwnValue(nn.Module):
    def __init__(self, obs_dim):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_dim, 16), nn.SiLU(), nn.Linear(16, 1))

    def forward(self, obs):
        return self.net(obs).squeeze(-1)


class OwnActorCritic(nn.Module):
    def __init__(self, obs_space, act_space):
        super().__init__()
        self.pi, self.v = OwnPolicy(obs_space.shape[0], act_space.n), OwnValue(obs_space.shape[0])


def test_ppo_trains_a_model_passed_in_and_the_folder_records_it(tmp_path, cpu_threads):
    made = []

    def factory(obs_space, act_space):
        made.append(OwnActorCritic(obs_space, act_space))
        made.append({k: v.clone() for k, v in made[0].state_dict().items()})
        return made[0]

    result = ppo("CartPole-v1", tmp_path / "run", actor_critic=factory, **SHORT)
    assert result.model is made[0] and result.model.pi.calls > 0 and len(result.progress) == 2
    assert all(not torch.equal(made[1][k], v) for k, v in result.model.state_dict().items())  # every tensor trained
    agent = scgrad.rl.load(tmp_path / "run", actor_critic=OwnActorCritic)
    assert isinstance(agent.model, OwnActorCritic)
    assert agent.act(torch.zeros(4).numpy()) in (0, 1)


def test_a_run_with_an_own_model_is_not_loaded_or_resumed_without_it(tmp_path, cpu_threads):
    ppo("CartPole-v1", tmp_path / "run", actor_critic=OwnActorCritic, stop_after=1, **SHORT)
    with pytest.raises(RLError, match="model of the user's own"):
        scgrad.rl.load(tmp_path / "run")
    with pytest.raises(CheckpointError, match="model of the user's own"):
        ppo("CartPole-v1", tmp_path / "run", resume=True, **SHORT)
    ppo("CartPole-v1", tmp_path / "plain", stop_after=1, **SHORT)
    with pytest.raises(CheckpointError, match="trained with the default model"):
        ppo("CartPole-v1", tmp_path / "plain", resume=True, actor_critic=OwnActorCritic, **SHORT)


def test_resume_with_an_own_model_equals_an_uninterrupted_run(tmp_path, cpu_threads):
    whole = ppo("CartPole-v1", tmp_path / "whole", actor_critic=OwnActorCritic, **SHORT)
    ppo("CartPole-v1", tmp_path / "cut", actor_critic=OwnActorCritic, stop_after=1, **SHORT)
    resumed = ppo("CartPole-v1", tmp_path / "cut", actor_critic=OwnActorCritic, resume=True, **SHORT)
    drop = lambda rows: [{k: v for k, v in r.items() if k != "Time"} for r in rows]  # noqa: E731
    assert drop(resumed.progress) == drop(whole.progress)


def test_sac_takes_its_default_class_built_another_way(cpu_threads):
    def small(obs_space, act_space):
        return SAC.make_model(SACConfig(hidden_sizes=(16,)), obs_space, act_space)

    result = sac("Pendulum-v1", actor_critic=small, steps=300, steps_per_epoch=150, start_steps=50,
                 update_after=50, num_test_episodes=0, progress=False)
    assert isinstance(result.model, SoftActorCritic)
    assert result.model.pi.net[0].out_features == 16
    assert result.progress[-1]["LossPi"] != "nan"

