"""The same algorithm as ``karpathy.py`` in plain NumPy, one game at a time: the speed reference.

This is how the blog's algorithm is usually written: one emulator, the policy evaluated on one
frame per step (a matrix–vector product), the hidden activations kept for a hand-written
backward pass after each game, the gradients summed over 10 games and an RMSProp step. The
preprocessing, frame skip, sticky actions, returns and initialisation are ``karpathy.py``'s
(imported from it), so the two programs differ only in how the policy is evaluated and
differentiated: ``benchmarks/pong.py`` runs them side by side and reports episodes per hour.

    python examples/pong/karpathy_numpy.py --episodes 20 [--weights runs/karpathy]

The last line printed is ``episodes=<int> seconds=<float> env_steps=<int>``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from karpathy import DOWN, FRAME_PIXELS, UP, Game, discounted, standardised  # noqa: E402


class NumpyPolicy:
    """W1 [H, 6400], W2 [H]: P(UP) = σ(W2 · relu(W1 x)), float64 as NumPy computes by default."""

    def __init__(self, hidden: int, rng: np.random.Generator) -> None:
        self.w1 = rng.standard_normal((hidden, FRAME_PIXELS)) / np.sqrt(FRAME_PIXELS)
        self.w2 = rng.standard_normal(hidden) / np.sqrt(hidden)
        self.cache = [np.zeros_like(self.w1), np.zeros_like(self.w2)]

    def forward(self, x: np.ndarray) -> tuple:
        """(P(UP), hidden activations [H]) for one difference frame x [6400]."""
        h = np.maximum(self.w1 @ x, 0.0)
        return 1.0 / (1.0 + np.exp(-(self.w2 @ h))), h

    def backward(self, xs: np.ndarray, hs: np.ndarray, dlogits: np.ndarray) -> list:
        """Gradients of Σ_t dlogits_t · logit_t: xs [T, 6400], hs [T, H], dlogits [T]."""
        d_w2 = hs.T @ dlogits
        dh = np.outer(dlogits, self.w2)
        dh[hs <= 0] = 0.0
        return [dh.T @ xs, d_w2]

    def rmsprop_ascent(self, grads: list, lr: float, decay: float) -> None:
        """One RMSProp step up the summed gradients (the blog's update, ε = 1e-5)."""
        for param, grad, cache in zip((self.w1, self.w2), grads, self.cache):
            cache *= decay
            cache += (1 - decay) * grad ** 2
            param += lr * grad / (np.sqrt(cache) + 1e-5)


def play_one(policy: NumpyPolicy, game: Game, seed: np.random.SeedSequence, gamma: float) -> tuple:
    """One full game on ``game``; returns (summed gradient of the game, score, agent steps)."""
    game.reset(seed)
    xs, hs, dlogits, rewards = [], [], [], []
    while not game.over:
        x = game.observe().astype(np.float64)
        p_up, h = policy.forward(x)
        up = game.rng.random() < p_up
        xs.append(x)
        hs.append(h)
        dlogits.append((1.0 if up else 0.0) - p_up)  # ∂ log π(a|x) / ∂ logit
        rewards.append(game.step(UP if up else DOWN))
    advantages = standardised(discounted(np.array(rewards), gamma))
    grads = policy.backward(np.stack(xs), np.stack(hs), np.array(dlogits) * advantages)
    return grads, sum(rewards), len(rewards)


def main(argv: list | None = None) -> int:
    """Play and learn ``--episodes`` games; print the time taken."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", help="start from the policy in this karpathy.py run folder")
    args = parser.parse_args(argv)
    policy = NumpyPolicy(args.hidden, np.random.default_rng(args.seed))
    if args.weights:
        from scgrad.rl.run.checkpoint import read_checkpoint

        saved = read_checkpoint(args.weights)[1]["policy"]
        policy.w1, policy.w2 = saved["hidden.weight"].double().numpy(), saved["out.weight"].double().numpy()[0]
    t0, steps, total, game = time.perf_counter(), 0, None, Game(sticky=0.25)
    for episode in range(args.episodes):
        grads, score, length = play_one(policy, game, np.random.SeedSequence([args.seed, episode]), 0.99)
        total = grads if total is None else [a + b for a, b in zip(total, grads)]
        steps += length
        if (episode + 1) % args.batch == 0:
            policy.rmsprop_ascent(total, 1e-4, 0.99)
            total = None
    print(f"episodes={args.episodes} seconds={time.perf_counter() - t0:.2f} env_steps={steps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
