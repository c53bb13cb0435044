"""Loading a trained agent from a run folder (``scgrad.rl.load`` and ``eval DIR``), and
exporting one as a small folder of weights (``export``).

Run folders of the command line's algorithms are loaded through ``algos.registry``; those of
programs with a learner of their own whose policy the library holds (``PLAYERS``: Karpathy's
Pong, ``examples/pong/karpathy.py``) through their entry here, so ``eval`` plays both.
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional

from scgrad.rl.algos import registry as algorithms
from scgrad.rl.algos.base import ActorCriticFactory
from scgrad.rl.envs.make import make_env
from scgrad.rl.envs.normalize import RunningNormalizer
from scgrad.rl.errors import CheckpointError, ConfigError, RLError
from scgrad.rl.config import RunConfig
from scgrad.rl.run.checkpoint import read_checkpoint, save_checkpoint
from scgrad.rl.run.evaluate import Agent
from scgrad.rl.run.folder import (CONFIG_FILE, PROGRESS_FILE, RunFolder, check_env_id, config_error, read_config,
                                  read_run_options)


@dataclass(frozen=True)
class Player:
    """How to play the policy of a run trained outside ``algos.registry``.

    Attributes:
        env: the environment id it plays (its protocol: the training program's game).
        make_model: ``make_model(settings) -> nn.Module`` with ``pi.mode``/``pi.sample`` (the
            ``eval`` contract of ``algos.base``), from the run's recorded settings.
        weights: the checkpoint entry holding the model's ``state_dict``.
    """

    env: str
    make_model: Callable[[Dict[str, Any]], Any]
    weights: str


def _karpathy_policy(settings: Dict[str, Any]) -> Any:
    from scgrad.rl.nets.karpathy import KarpathyPolicy

    return KarpathyPolicy(int(settings["hidden"]))


#: Run folders written by programs of their own, by their ``algo`` name.
PLAYERS: Dict[str, Player] = {"karpathy": Player("Karpathy/Pong-v0", _karpathy_policy, "policy")}


def load_agent(run_dir: str | Path, env: Optional[str] = None,
               actor_critic: Optional[ActorCriticFactory] = None) -> Agent:
    """The policy saved in a run folder (config.json and its checkpoint, verified).

    The folder is data: a ``module:Env`` environment id in it (which imports ``module``) is
    made only if ``env`` repeats it (``eval DIR --env module:Env``); a config.json whose
    settings differ from those the checkpoint was written with is refused. A run trained with a
    model of the user's own needs the same ``actor_critic`` factory (``algos.base``).
    """
    algo, settings = read_config(run_dir)
    if algo in PLAYERS:
        return _load_player(run_dir, algo, settings, env)
    algorithm = algorithms.get(algo)
    try:
        config = algorithm.config.from_dict(settings)
    except ConfigError as error:
        raise config_error(run_dir, error) from None
    check_env_id(run_dir, config.env, env)
    manifest, state = _read_matching_checkpoint(run_dir, algo, config.to_dict(), "steps")
    if env is not None and env != config.env:  # the same game under the other ALE protocol
        config = dataclasses.replace(config, env=env)
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
    with _mismatch(run_dir):
        model.load_state_dict(state["model"])
        if state.get("normalizer") is not None:
            normalizer = RunningNormalizer(tuple(state["normalizer"]["mean"].shape))
            normalizer.load_state_dict(state["normalizer"])
    model.eval()
    return Agent(algo, config, model, normalizer, probe.observation_space, probe.action_space)


def _load_player(run_dir: str | Path, algo: str, settings: Dict[str, Any], env: Optional[str]) -> Agent:
    """The policy of a ``PLAYERS`` run folder, on its player's environment."""
    player = PLAYERS[algo]
    check_env_id(run_dir, player.env, env)
    _, state = _read_matching_checkpoint(run_dir, algo, settings, "episodes")
    with _mismatch(run_dir):
        model = player.make_model(settings)
        model.load_state_dict(state[player.weights])
    model.eval()
    return Agent(algo, RunConfig(env=player.env, seed=int(settings.get("seed", 0))), model, None)


def _read_matching_checkpoint(run_dir: str | Path, algo: str, settings: Dict[str, Any], length: str):
    """(manifest, state) of the folder's checkpoint, refused if config.json was edited since it
    was written (its ``length`` setting aside: a run may be extended)."""
    manifest, state = read_checkpoint(run_dir)
    recorded = manifest["settings"]
    edited = sorted(k for k in set(recorded) | set(settings) if k != length and recorded.get(k) != settings.get(k))
    if manifest.get("algo") != algo or edited:
        raise CheckpointError(f"{Path(run_dir) / CONFIG_FILE} differs from the run its checkpoint was written by "
                              f"({', '.join(edited) or 'algo'}); restore it")
    return manifest, state


@contextlib.contextmanager
def _mismatch(run_dir: str | Path) -> Iterator[None]:
    """Turn the errors of loading weights into the architecture of config.json into one line."""
    try:
        yield
    except (KeyError, RuntimeError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise RLError(f"checkpoint in {run_dir} does not match its config.json "
                      f"({' '.join(str(error).split())[:200]})") from None


def export_agent(run_dir: str | Path, out_dir: str | Path, half: bool = True, env: Optional[str] = None) -> Path:
    """Write the policy of ``run_dir`` alone into a new folder ``out_dir`` that ``eval``,
    ``plot`` and ``scgrad.rl.load`` read as they read the run (config.json, a verified
    checkpoint, progress.csv) but that holds no optimiser, random or environment state: a small
    file to share or commit. Resuming it is refused (it says so).

    Args:
        run_dir: a run folder with a checkpoint.
        out_dir: the folder to create (it must not hold a run).
        half: store floating-point weights as float16 (half the bytes; loaded back as float32).
        env: as ``load_agent``'s (needed for a ``module:Env`` id, which is checked by loading it).

    Returns:
        ``out_dir`` as a ``Path``.
    """
    if Path(out_dir).exists() and (not Path(out_dir).is_dir() or any(Path(out_dir).iterdir())):
        raise RLError(f"{out_dir} already exists and is not an empty folder: export into a new one")
    algo, settings = read_config(run_dir)
    load_agent(run_dir, env=env)  # refuse what eval would refuse
    manifest, state = read_checkpoint(run_dir)
    keys = [PLAYERS[algo].weights] if algo in PLAYERS else ["model", "normalizer"]
    kept = {key: _halved(state[key]) if half and key != "normalizer" else state[key]
            for key in keys if state.get(key) is not None}
    folder = RunFolder(out_dir)
    folder.acquire(create=True)
    try:
        run = {**read_run_options(run_dir), "exported": True}
        folder.create(algo, settings, run)
        save_checkpoint(folder.path, {"epoch": manifest["epoch"], **kept},
                        {"epoch": manifest["epoch"], "algo": algo, "settings": manifest["settings"],
                         "run": {**manifest["run"], "exported": True}})
        progress = Path(run_dir) / PROGRESS_FILE
        if progress.exists():  # the rows of the epochs the weights have seen (a live run may be ahead)
            header, *rows = progress.read_text().splitlines(keepends=True)
            kept_rows = [row for row in rows if int(row.split(",", 1)[0]) <= manifest["epoch"]]
            (Path(out_dir) / PROGRESS_FILE).write_text("".join([header, *kept_rows]))
    finally:
        folder.release()
    return Path(out_dir)


def _halved(weights: Dict[str, Any]) -> Dict[str, Any]:
    """A state_dict with its floating-point tensors as float16."""
    return {name: value.half() if hasattr(value, "is_floating_point") and value.is_floating_point() else value
            for name, value in weights.items()}
