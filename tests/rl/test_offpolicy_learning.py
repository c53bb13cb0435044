"""Learning tests on Pendulum-v1: DDPG, TD3 and SAC each reach a mean return of at least −250
over 10 deterministic evaluation episodes within 15k environment steps (seed 0).

Spinning Up's settings except: 64-64 networks instead of 256-256 (about fifteen times fewer
multiply-adds per gradient step on this shared CPU; Pendulum needs no more), 1000 random
steps instead of 10000 (a tenth of the budget rather than two thirds) and 1000-step epochs
with no test episodes (only the final evaluation counts). Measured with these settings on
seeds 0, 1, 2 (mean of 10 evaluation episodes): DDPG −171, −171, −183; TD3 −177, −172, −181;
SAC −175, −172, −174. Each takes 15–40 s on two shared cores (about 60–90 s for the three).
"""
import numpy as np
import pytest

from scgrad.rl.ddpg import ddpg
from scgrad.rl.evaluate import Agent, evaluate
from scgrad.rl.sac import sac
from scgrad.rl.td3 import td3

pytestmark = pytest.mark.learning

THRESHOLD, STEPS = -250.0, 15_000
SETTINGS = dict(seed=0, steps=STEPS, steps_per_epoch=1000, hidden_sizes=(64, 64), start_steps=1000,
                update_after=1000, num_test_episodes=0)
ALGOS = {"ddpg": ddpg, "td3": td3, "sac": sac}


@pytest.mark.parametrize("name", list(ALGOS))
def test_reaches_pendulum_threshold(name, cpu_threads):
    result = ALGOS[name]("Pendulum-v1", **SETTINGS)
    assert int(result.progress[-1]["TotalEnvInteracts"]) <= STEPS
    agent = Agent(name, result.config, result.model, result.normalizer)
    returns = evaluate(agent, episodes=10, seed=1000, deterministic=True)
    print(f"{name}: mean return {np.mean(returns):.1f} over 10 episodes")
    assert np.mean(returns) >= THRESHOLD
