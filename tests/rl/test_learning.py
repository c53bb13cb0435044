"""Learning tests, as a newcomer runs them: ``python -m scgrad.rl train ALGO --env ENV --steps N``
with no other flag (the tuned presets of ``scgrad.rl.presets`` fill the rest), then the saved
agent evaluated from its run folder (``scgrad.rl.load``).

On-policy on CartPole-v1 (seed 0, 100k steps, 20 deterministic evaluation episodes): PPO must
reach 475, VPG and TRPO 195 — with these presets, measured on seeds 0–3 (0–2 for PPO): PPO 500
on every seed, VPG ≥ 480, TRPO ≥ 494. Off-policy on Pendulum-v1 (seed 0, 15k steps, 10
deterministic episodes): DDPG, TD3 and SAC must reach −250 — measured on seeds 0–2: DDPG
−171…−183, TD3 −172…−181, SAC −172…−175. Each run takes roughly 10–40 s on two shared cores.
"""
import numpy as np
import pytest

import scgrad.rl
from scgrad.rl.cli import main
from scgrad.rl.run.evaluate import evaluate

pytestmark = pytest.mark.learning

CASES = {  # algorithm: (environment, steps, evaluation episodes, threshold)
    "ppo": ("CartPole-v1", 100_000, 20, 475.0),
    "vpg": ("CartPole-v1", 100_000, 20, 195.0),
    "trpo": ("CartPole-v1", 100_000, 20, 195.0),
    "ddpg": ("Pendulum-v1", 15_000, 10, -250.0),
    "td3": ("Pendulum-v1", 15_000, 10, -250.0),
    "sac": ("Pendulum-v1", 15_000, 10, -250.0),
}


@pytest.mark.parametrize("name", list(CASES))
def test_default_command_line_learns_the_standard_task(name, tmp_path, cpu_threads):
    env, steps, episodes, threshold = CASES[name]
    run = tmp_path / name
    assert main(["train", name, "--env", env, "--steps", str(steps), "--out", str(run), "--no-progress"]) == 0
    agent = scgrad.rl.load(run)
    assert agent.config.preset == "classic_control" and agent.config.steps == steps
    returns = evaluate(agent, episodes=episodes, seed=1000, deterministic=True)
    print(f"{name}: mean return {np.mean(returns):.1f} over {episodes} episodes")
    assert np.mean(returns) >= threshold
