"""The command line (a public contract):

    python -m scgrad.rl train ALGO --env ENV [--seed S] [--steps N] [--out DIR] [--KWARG VALUE ...]
    python -m scgrad.rl train [ALGO] --resume DIR [--steps N]
    python -m scgrad.rl eval DIR [--episodes N] [--video FILE.mp4] [--seed S] [--stochastic]
    python -m scgrad.rl plot DIR... [--out FILE.png] [--value COLUMN]

Every field of an algorithm's settings dataclass is a flag (``--clip_ratio`` or
``--clip-ratio``). Bad input prints one line on stderr and exits with status 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from . import algorithms
from .config import field_help, field_types, parse_text
from .errors import ConfigError, RLError

EXIT_BAD_INPUT, EXIT_INTERRUPTED = 2, 130


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m scgrad.rl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    # ALGO is taken from the first leftover token in ``train`` (not declared here): a declared
    # optional positional would swallow the value of an unknown flag, as in --resume DIR --steps N
    train_parser = commands.add_parser("train", help="train an algorithm", add_help=False,
                                       usage="python -m scgrad.rl train [ALGO] [--resume DIR] [--FLAG VALUE ...]")
    train_parser.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its checkpoint")
    train_parser.add_argument("--out", metavar="DIR", help="run folder (default runs/ALGO_ENV_sSEED)")
    train_parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    train_parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    train_parser.add_argument("-h", "--help", action="store_true")
    eval_parser = commands.add_parser("eval", help="run a saved policy")
    eval_parser.add_argument("dir", metavar="DIR")
    eval_parser.add_argument("--episodes", type=int, default=10)
    eval_parser.add_argument("--seed", type=int, default=1000, help="episode i starts from seed + i")
    eval_parser.add_argument("--stochastic", action="store_true", help="sample actions (default: the mode)")
    eval_parser.add_argument("--video", metavar="FILE.mp4", help="also record the first episode")
    plot_parser = commands.add_parser("plot", help="draw learning curves (mean ± std over runs)")
    plot_parser.add_argument("dirs", metavar="DIR", nargs="+")
    plot_parser.add_argument("--out", default="learning_curves.png", metavar="FILE.png")
    plot_parser.add_argument("--value", default="AverageEpRet", help="progress.csv column to plot")
    args, rest = parser.parse_known_args(argv)
    try:
        if args.command != "train" and rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return {"train": train, "eval": evaluate, "plot": plot}[args.command](args, rest)
    except RLError as error:
        print(f"scgrad.rl: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("scgrad.rl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def train(args: argparse.Namespace, rest: List[str]) -> int:
    """``train ALGO --env ... [--resume]``: run (or continue) training; ``rest`` holds the
    algorithm's name and its ``--setting value`` flags. Returns the exit code."""
    from .logger import read_config

    settings: Dict[str, Any] = {}
    name = rest.pop(0) if rest and not rest[0].startswith("-") else None
    if args.resume:
        saved_name, settings = read_config(args.resume)
        if name is not None and name != saved_name:
            raise ConfigError(f"{args.resume} holds a {saved_name} run, not {name}")
        name = saved_name
    if name is None:
        if args.help:
            print(f"usage: python -m scgrad.rl train ALGO [--FLAG VALUE ...]; ALGO: {', '.join(algorithms.names())}")
            return 0
        raise ConfigError(f"train needs an algorithm: one of {', '.join(algorithms.names())}")
    algorithm = algorithms.get(name)
    flags = settings_parser(algorithm.config, name)
    if args.help:
        flags.print_help()
        return 0
    given = vars(flags.parse_args(rest))
    types = field_types(algorithm.config)
    settings.update({key: parse_text(key, types[key], text) for key, text in given.items()})
    config = algorithm.config.from_dict(settings)
    env_name = re.sub(r"[^A-Za-z0-9.-]+", "-", config.env)
    out = args.resume or args.out or str(Path("runs") / f"{name}_{env_name}_s{config.seed}")

    import torch
    torch.set_num_threads(args.threads)
    algorithm.train(config, out_dir=out, resume=bool(args.resume), progress=not args.no_progress)
    print(f"run folder: {out}")
    return 0


def settings_parser(config_class: type, name: str) -> argparse.ArgumentParser:
    """A parser with one ``--field`` (and ``--field-name``) per settings field; values stay
    strings until ``parse_text`` gives the clear error for a bad one."""
    parser = argparse.ArgumentParser(
        prog=f"python -m scgrad.rl train {name}", add_help=False, argument_default=argparse.SUPPRESS,
        description="Run options: --out DIR (run folder), --resume DIR (continue it), --threads N "
                    "(torch threads, default 1), --no-progress. Settings:")
    helps = field_help(config_class)
    for field in dataclasses.fields(config_class):
        spellings = dict.fromkeys([f"--{field.name}", f"--{field.name.replace('_', '-')}"])
        default = field.default if field.default is not dataclasses.MISSING else None
        parser.add_argument(*spellings, dest=field.name, metavar="VALUE",
                            help=f"{helps.get(field.name, '')} (default: {_show(default)})".replace("%", "%%"))
    return parser


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return "none" if value is None else str(value)


def evaluate(args: argparse.Namespace, rest: List[str]) -> int:
    """``eval DIR``: run a saved agent's episodes (and optionally record a video), print each
    return and their summary. Returns the exit code."""
    from .evaluate import evaluate as run_episodes
    from .evaluate import load_agent, record_video, summary

    agent = load_agent(args.dir)
    import torch
    torch.manual_seed(args.seed)  # --stochastic samples actions: make them repeatable too
    if args.video:
        # pygame (classic-control rendering) needs no display for rgb_array frames; without
        # this it prints SDL warnings on headless machines
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        frames = record_video(agent, args.video, args.seed, deterministic=not args.stochastic)
        print(f"video: {args.video} ({frames} frames)", file=sys.stderr)
    returns = run_episodes(agent, args.episodes, args.seed, deterministic=not args.stochastic)
    for i, value in enumerate(returns, 1):
        print(f"episode {i}: return={value:.4f}")
    print(summary(returns))
    return 0


def plot(args: argparse.Namespace, rest: List[str]) -> int:
    """``plot DIR [DIR ...]``: draw the runs' learning curves into one image. Returns the exit code."""
    from .plot import plot as draw

    print(f"plot: {draw(args.dirs, args.out, y=args.value)}")
    return 0
