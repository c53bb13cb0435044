"""The algorithms the command line knows, found by name. An algorithm module defines
``ALGORITHM`` (a ``base.Algorithm``, from ``onpolicy.algorithm`` or ``offpolicy.algorithm``);
adding one is one line in ``_MODULES``. ``train(name, env, ...)``
runs one the way the command line does (presets, threads, progress bar)."""
from __future__ import annotations

import contextlib
import importlib
import sys
from typing import Any, Iterator, List, Optional

from scgrad.rl import presets
from scgrad.rl.algos.base import ActorCriticFactory, Algorithm
from scgrad.rl.errors import ConfigError

_MODULES = {"vpg": "scgrad.rl.algos.vpg", "trpo": "scgrad.rl.algos.trpo", "ppo": "scgrad.rl.algos.ppo",
            "ddpg": "scgrad.rl.algos.ddpg", "td3": "scgrad.rl.algos.td3", "sac": "scgrad.rl.algos.sac"}


def names() -> List[str]:
    """The command-line names of every registered algorithm, sorted."""
    return sorted(_MODULES)


def get(name: str) -> Algorithm:
    """The algorithm called ``name``; ``ConfigError`` listing the known ones otherwise."""
    if name not in _MODULES:
        raise ConfigError(f"unknown algorithm '{name}'; choose one of {', '.join(names())}")
    return importlib.import_module(_MODULES[name]).ALGORITHM


def train(name: str, env: Optional[str] = None, out_dir: Optional[str] = None, *, resume: bool = False,
          progress: Optional[bool] = None, threads: Optional[int] = None, stop_after: Optional[int] = None,
          actor_critic: Optional[ActorCriticFactory] = None, **settings: Any) -> Any:
    """Train algorithm ``name`` as the command line does; ``ppo()``, ``sac()``, ... call this.

    The preset of the environment's family fills every setting not given (``preset="none"``
    keeps the algorithm's own defaults; see ``scgrad.rl.presets``), torch runs on ``threads``
    CPU threads for the run (restored afterwards; a resumed run on the count it recorded), and
    the progress bar is drawn when stderr is a terminal unless ``progress`` says otherwise.

    Args:
        name: the algorithm (``ppo``, ``sac``, ...).
        env: environment id; ``None``: the algorithm's default.
        out_dir: run folder; ``None``: no files.
        resume: continue the run in ``out_dir`` from its checkpoint.
        progress: draw a progress bar on stderr (default: when stderr is a terminal).
        threads: torch CPU threads (default 1: these small networks run fastest on one; a
            resumed run: the count it was trained with).
        stop_after: stop after this many epochs in total (resume later).
        actor_critic: a model of your own, ``factory(obs_space, act_space) -> nn.Module``
            (the contract is in ``algos.base``); ``None``: the algorithm's default.
        **settings: fields of the algorithm's settings dataclass.

    Returns:
        The algorithm's ``RunResult``.
    """
    algorithm = get(name)
    given = {**settings, **({"env": env} if env is not None else {})}
    config = algorithm.config.from_dict(presets.apply(name, given, default_env(algorithm)))
    if progress is None:
        progress = sys.stderr.isatty()
    if threads is None:
        threads = recorded_threads(out_dir) if resume and out_dir is not None else 1
    with torch_threads(threads):
        return algorithm.train(config, out_dir=out_dir, resume=resume, progress=progress, stop_after=stop_after,
                               actor_critic=actor_critic)


def recorded_threads(run_dir: str) -> int:
    """The torch thread count a run folder's run was trained with (1 if it recorded none)."""
    from scgrad.rl.run.folder import read_run_options

    return read_run_options(run_dir).get("threads", 1)


def default_env(algorithm: Algorithm) -> str:
    """The environment id an algorithm's settings default to."""
    return algorithm.config.__dataclass_fields__["env"].default


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads, then restore the previous number."""
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ConfigError(f"threads must be an integer >= 1, got {threads!r}")
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
