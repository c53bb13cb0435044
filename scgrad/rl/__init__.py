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


def load(run_dir, env=None):
    """The trained agent in a run folder: ``scgrad.rl.load("runs/ppo-cartpole").act(obs)``.

    ``act`` takes one observation or a batch and returns actions in the environment's own
    action space (see ``evaluate.Agent``). The folder is checked (checksums, settings) and
    treated as data: a ``module:Env`` id in it is made only if ``env`` repeats it.

    Args:
        run_dir: the run folder (config.json and a checkpoint).
        env: the environment id, needed only to confirm a ``module:Env`` id.
    """
    from .evaluate import load_agent

    return load_agent(run_dir, env)
