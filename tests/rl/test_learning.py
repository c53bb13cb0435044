"""Learning tests on CartPole-v1 (seed 0, 20 deterministic evaluation episodes, ≤ 100k steps).

Settings tuned for reliability at this budget: eight environments, GAE λ = 0.95, larger
learning rates than Spinning Up's defaults for VPG (one policy step per epoch) and PPO
(minibatches, annealed). With them, measured on seeds 0–3 (0–2 for PPO): PPO 500 on every seed,
VPG ≥ 480, TRPO ≥ 494. Each test takes roughly 10–20 s on two shared cores.
"""
import numpy as np
import pytest

from scgrad.rl.evaluate import Agent, evaluate
from scgrad.rl.ppo import ppo
from scgrad.rl.trpo import trpo
from scgrad.rl.vpg import vpg

pytestmark = pytest.mark.learning

COMMON = dict(seed=0, steps=100_000, num_envs=8, lam=0.95)
CASES = {
    "ppo": (ppo, 475.0, dict(steps_per_epoch=1024, update_epochs=10, minibatch_size=256, pi_lr=1e-3,
                             vf_lr=1e-3, anneal_lr=True, target_kl=None)),
    "vpg": (vpg, 195.0, dict(steps_per_epoch=2000, pi_lr=5e-3, train_v_iters=40)),
    "trpo": (trpo, 195.0, dict(steps_per_epoch=2000, train_v_iters=40)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_reaches_cartpole_threshold(name, cpu_threads):
    train, threshold, settings = CASES[name]
    result = train("CartPole-v1", **COMMON, **settings)
    assert int(result.progress[-1]["TotalEnvInteracts"]) <= 100_000
    agent = Agent(name, result.config, result.model, result.normalizer)
    returns = evaluate(agent, episodes=20, seed=1000, deterministic=True)
    print(f"{name}: mean return {np.mean(returns):.1f} over 20 episodes")
    assert np.mean(returns) >= threshold
