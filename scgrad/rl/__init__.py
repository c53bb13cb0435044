"""Reinforcement learning on scgrad: policy gradients as stochastic computation graphs.

Algorithms, one function each (``from scgrad.rl.ppo import ppo``): ``vpg``, ``trpo``, ``ppo``.
The toolkit they share, reusable on its own:

- ``returns``: discounted returns and GAE(λ) (pure functions, terminated vs truncated);
- ``envs``, ``rollout``, ``buffer``, ``normalize``: seeded vector environments, batched
  stepping, preallocated rollout storage, observation normalisation;
- ``networks``: ``mlp`` and MLP actor-critics (Categorical / diagonal Gaussian heads);
- ``logger``, ``checkpoint``, ``progress``: run folders (config.json, progress.csv),
  atomic checkpoints with every random stream, a progress bar;
- ``evaluate``, ``plot``, ``cli``: ``python -m scgrad.rl train|eval|plot``.

Needs gymnasium (``pip install scgrad[rl]``).
"""
