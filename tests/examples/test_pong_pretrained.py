"""examples/pong/pretrained: every committed agent loads from a fresh clone (checksums verified,
weights fit the network its config names) and acts in its game; all of them together stay
within the 10 MB the repository allows for weights. How well they play is measured by
benchmarks/pong.py, not here."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ale_py")

from scgrad.rl.agents import load_agent  # noqa: E402
from scgrad.rl.envs.make import make_env  # noqa: E402

PRETRAINED = Path(__file__).resolve().parents[2] / "examples" / "pong" / "pretrained"
FOLDERS = sorted(p for p in PRETRAINED.iterdir() if (p / "config.json").exists())


def test_the_pretrained_agents_are_there_and_small():
    assert {"karpathy"} <= {p.name for p in FOLDERS}
    total = sum(f.stat().st_size for p in FOLDERS for f in p.iterdir())
    assert total <= 10_000_000, f"pretrained weights take {total:,} bytes"


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_each_pretrained_agent_loads_and_plays_a_few_hundred_steps(folder):
    agent = load_agent(folder)
    env = make_env(agent.config.env)
    obs, _ = env.reset(seed=0)
    actions = []
    for _ in range(300):
        action = agent.act(obs)
        actions.append(int(action))
        obs, _, terminated, truncated, _ = env.step(action)
        assert not (terminated or truncated)  # a Pong game lasts far longer than 300 steps
    env.close()
    assert all(0 <= a < env.action_space.n for a in actions) and len(set(actions)) > 1  # it moves the paddle
    assert np.isfinite([p.float().sum().item() for p in agent.model.parameters()]).all()


def test_the_strong_agent_beats_the_built_in_ai_in_a_full_game():
    """pretrained/ppo, one full v4 game from seed 1000 (the first evaluation game of
    benchmarks/pong.py, where it scores +12), the policy's mode: it wins."""
    from scgrad.rl.run.evaluate import evaluate

    agent = load_agent(PRETRAINED / "ppo")
    assert agent.config.env == "PongNoFrameskip-v4"
    (score,) = evaluate(agent, episodes=1, seed=1000)
    assert score > 0, score
