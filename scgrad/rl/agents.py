"""Loading a trained agent from a run folder (``scgrad.rl.load`` and ``eval DIR``)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from scgrad.rl.algos import registry as algorithms
from scgrad.rl.algos.base import ActorCriticFactory
from scgrad.rl.envs.make import make_env
from scgrad.rl.envs.normalize import RunningNormalizer
from scgrad.rl.errors import CheckpointError, ConfigError, RLError
from scgrad.rl.run.checkpoint import read_checkpoint
from scgrad.rl.run.evaluate import Agent
from scgrad.rl.run.folder import CONFIG_FILE, check_env_id, config_error, read_config


def load_agent(run_dir: str | Path, env: Optional[str] = None,
               actor_critic: Optional[ActorCriticFactory] = None) -> Agent:
    """The policy saved in a run folder (config.json and its checkpoint, verified).

    The folder is data: a ``module:Env`` environment id in it (which imports ``module``) is
    made only if ``env`` repeats it (``eval DIR --env module:Env``); a config.json whose
    settings differ from those the checkpoint was written with is refused. A run trained with a
    model of the user's own needs the same ``actor_critic`` factory (``algos.base``).
    """
    algo, settings = read_config(run_dir)
    algorithm = algorithms.get(algo)
    try:
        config = algorithm.config.from_dict(settings)
    except ConfigError as error:
        raise config_error(run_dir, error) from None
    check_env_id(run_dir, config.env, env)
    manifest, state = read_checkpoint(run_dir)
    recorded, current = manifest["settings"], config.to_dict()
    edited = sorted(k for k in set(recorded) | set(current) if k != "steps" and recorded.get(k) != current.get(k))
    if manifest.get("algo") != algo or edited:
        raise CheckpointError(f"{Path(run_dir) / CONFIG_FILE} differs from the run its checkpoint was written by "
                              f"({', '.join(edited) or 'algo'}); restore it")
    own = manifest["run"].get("model") == "own"
    if own and actor_critic is None:
        raise RLError(f"{run_dir} was trained with a model of the user's own: load it from Python with the same "
                      "factory, scgrad.rl.load(DIR, actor_critic=factory)")
    probe = make_env(config.env)
    try:
        spaces = probe.observation_space, probe.action_space
        model = actor_critic(*spaces) if own else algorithm.make_model(config, *spaces)
    finally:
        probe.close()
    normalizer = None
    try:
        model.load_state_dict(state["model"])
        if state.get("normalizer") is not None:
            normalizer = RunningNormalizer(tuple(state["normalizer"]["mean"].shape))
            normalizer.load_state_dict(state["normalizer"])
    except (KeyError, RuntimeError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise RLError(f"checkpoint in {run_dir} does not match its config.json "
                      f"({' '.join(str(error).split())[:200]})") from None
    model.eval()
    return Agent(algo, config, model, normalizer, probe.observation_space, probe.action_space)
