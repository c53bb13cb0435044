"""Reinforcement learning on scgrad: policy gradients as stochastic computation graphs.

Algorithms, one function each (``from scgrad.rl.ppo import ppo``): on-policy ``vpg``, ``trpo``,
``ppo`` (score-function graphs, ``onpolicy``); off-policy ``ddpg``, ``td3``, ``sac`` (pathwise
graphs through learned critics, ``offpolicy``). The toolkit they share, reusable on its own:

- ``returns``: discounted returns and GAE(λ) (pure functions, terminated vs truncated);
- ``envs``, ``vector``, ``rollout``, ``buffer``, ``replay``, ``normalize``: seeded vector
  environments, batched stepping, preallocated rollout and replay storage, observation
  normalisation;
- ``networks``, ``offpolicy_networks``, ``optim``: ``mlp``, MLP actor-critics (Categorical /
  diagonal Gaussian heads), deterministic and tanh-Gaussian actors, ensembled critics, and
  ``FlatAdam`` (Adam over flat parameter storage);
- ``logger``, ``checkpoint``, ``progress``: run folders (config.json, progress.csv),
  atomic checkpoints with every random stream, a progress bar;
- ``evaluate``, ``plot``, ``cli``: ``python -m scgrad.rl train|eval|plot``.

Needs gymnasium (``pip install scgrad[rl]``).
"""
