"""Reinforcement learning on scgrad: policy gradients as stochastic computation graphs.

Algorithms, one function each (``from scgrad.rl import ppo``; they live in ``scgrad.rl.algos``,
and any of them takes a model of your own as ``actor_critic=``): on-policy ``vpg``,
``trpo``, ``ppo`` (score-function graphs); off-policy ``ddpg``, ``td3``, ``sac`` (pathwise
graphs through learned critics). The toolkit, in layers whose imports point one way (lowest
first; ``tests/rl/test_layers.py`` keeps it so):

- ``errors``, ``config``, ``presets``: exceptions, settings dataclasses, tuned presets;
- ``envs``: making, checking, vector stepping, state for checkpoints, normalisation;
- ``nets``: MLP bodies, actor-critics, off-policy actors and critics;
- ``returns``: discounted returns and GAE(λ) (pure functions, terminated vs truncated);
- ``data``: the env runner, rollout and replay storage, the on-policy batch;
- ``losses``, ``optim``: the policy-gradient losses, ``FlatAdam`` and joint clipping;
- ``run``: the epoch loop, run folders, checkpoints, progress, evaluation, plots — usable
  without an environment (supervised training);
- ``algos``: the six algorithms and their registry;
- ``agents``, ``cli``: loading a trained agent; ``python -m scgrad.rl train|eval|plot``.

Needs gymnasium (``pip install scgrad[rl]``).
"""


def load(run_dir, env=None, actor_critic=None):
    """The trained agent in a run folder: ``scgrad.rl.load("runs/ppo-cartpole").act(obs)``.

    ``act`` takes one observation or a batch and returns actions in the environment's own
    action space (see ``run.evaluate.Agent``). The folder is checked (checksums, settings) and
    treated as data: a ``module:Env`` id in it is made only if ``env`` repeats it.

    Args:
        run_dir: the run folder (config.json and a checkpoint).
        env: the environment id, needed only to confirm a ``module:Env`` id.
        actor_critic: the factory of a model of your own that the run was trained with
            (``scgrad.rl.algos.base``); ``None`` for the default models.
    """
    from scgrad.rl.agents import load_agent

    return load_agent(run_dir, env, actor_critic)


ALGORITHMS = ("vpg", "trpo", "ppo", "ddpg", "td3", "sac")


def __getattr__(name):
    """``scgrad.rl.ppo`` (and the other five): the algorithm's function, imported on first use
    (importing ``scgrad.rl`` stays light)."""
    if name in ALGORITHMS:
        import importlib

        return getattr(importlib.import_module(f"scgrad.rl.algos.{name}"), name)
    raise AttributeError(f"module 'scgrad.rl' has no attribute '{name}'")
