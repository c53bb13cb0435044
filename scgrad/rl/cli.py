"""The command line (a public contract):

    python -m scgrad.rl train ALGO --env ENV [--seed S] [--steps N] [--out DIR] [--KWARG VALUE ...]
    python -m scgrad.rl train [ALGO] --resume DIR [--steps N]
    python -m scgrad.rl eval DIR [--episodes N] [--video FILE.mp4] [--seed S] [--stochastic]
    python -m scgrad.rl plot DIR... [--out FILE.png] [--value COLUMN] [--x COLUMN]
    python -m scgrad.rl export DIR --out NEW_DIR [--float32]

Every field of an algorithm's settings dataclass is a flag (``--clip_ratio`` or
``--clip-ratio``). Flags are spelled out in full (an unknown one or a prefix gets "did you mean"),
and a value may be negative in any notation (``--target_entropy -1e-3``). Bad input prints one
line on stderr and exits with status 2; any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import re
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, NoReturn, Optional, Sequence, Set, Tuple

from scgrad.rl import distributed, presets
from scgrad.rl.algos import registry as algorithms
from scgrad.rl.config import field_help, field_types, parse_text, require_seed
from scgrad.rl.errors import ConfigError, RLError

EXIT_BAD_INPUT, EXIT_INTERRUPTED = 2, 130


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the exit status. Bad input (an ``RLError``; argparse's errors become
    ``ConfigError``) prints one line on stderr and returns 2; other exceptions are bugs and
    propagate with their traceback."""
    try:
        parser, commands = command_parsers()
        args, rest = parser.parse_known_args(argv)
        if args.command != "train" and rest:
            commands[args.command].reject(rest)
        return {"train": train, "eval": evaluate, "plot": plot, "export": export}[args.command](args, rest)
    except RLError as error:
        print(f"scgrad.rl: error: {' '.join(str(error).split())}", file=sys.stderr)  # one line, always
        distributed.abandon()  # a process of a torchrun run: exit cleanly, the launcher stops the others
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("scgrad.rl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` for a command line with one-line errors.

    ``error`` raises a ``ConfigError`` (``main`` prints it) instead of printing the usage and
    exiting; an unknown flag is answered with the closest known ones (``suggestions`` adds
    flags another parser takes). Flags are spelled out in full (``allow_abbrev=False``: an
    abbreviation of ``--clip_ratio`` would be ambiguous with ``--clip-ratio``). A flag's value
    may be a negative number in any notation, which argparse alone reads as a flag when it is
    not of the form -1 or -1.5 (``--pi_lr -1e-3``, ``--target_entropy -inf``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.flags: List[str] = []  # every option string, in the order added (-h too: set first)
        self.takes_value: Set[str] = set()  # the option strings that take one value
        self.suggestions: List[str] = []  # other flags to offer for an unknown one
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        """As ``ArgumentParser.add_argument``; also records the flag for suggestions."""
        action = super().add_argument(*args, **kwargs)
        self.flags += action.option_strings
        if action.nargs is None:
            self.takes_value.update(action.option_strings)
        return action

    def parse_known_args(self, args: Optional[Sequence[str]] = None,
                         namespace: Optional[argparse.Namespace] = None) -> Tuple[argparse.Namespace, List[str]]:
        """As ``ArgumentParser.parse_known_args``, with ``--flag -1e-3`` read as ``--flag=-1e-3``."""
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(_attach_negative_values(args, self.takes_value), namespace)

    def parse_args(self, args: Optional[Sequence[str]] = None,  # type: ignore[override]
                   namespace: Optional[argparse.Namespace] = None) -> argparse.Namespace:
        """As ``ArgumentParser.parse_args``; leftover arguments go to ``reject``."""
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            self.reject(extras)
        return namespace

    def reject(self, extras: List[str]) -> NoReturn:
        """The error for arguments this parser does not take: the first unknown flag and the
        known flags closest to it, or the first stray value."""
        flag = next((a.split("=", 1)[0] for a in extras if a.startswith("-") and not _looks_negative(a)), None)
        if flag is None:
            self.error(f"unexpected argument '{extras[0]}'")
        self.error(f"unknown flag {flag}{_did_you_mean(flag, self.flags + self.suggestions)}")

    def error(self, message: str) -> NoReturn:
        """Raise ``ConfigError(message)``, pointing to the command's ``--help``."""
        raise ConfigError(f"{message} (see {self.prog} --help)")


def command_parsers() -> Tuple[Parser, Dict[str, Parser]]:
    """The top-level parser and its command parsers by name (``train``, ``eval``, ``plot``, ``export``)."""
    parser = Parser(prog="python -m scgrad.rl", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    # ALGO is taken from the first leftover token in ``train`` (not declared here): a declared
    # optional positional would swallow the value of an unknown flag, as in --resume DIR --steps N
    run_flags(commands.add_parser("train", help="train an algorithm", add_help=False,
                                  usage="python -m scgrad.rl train [ALGO] [--resume DIR] [--FLAG VALUE ...]"))
    eval_parser = commands.add_parser("eval", help="run a saved policy")
    eval_parser.add_argument("dir", metavar="DIR")
    eval_parser.add_argument("--episodes", type=int, default=10)
    eval_parser.add_argument("--seed", type=_seed_int, default=1000, help="episode i starts from seed + i")
    eval_parser.add_argument("--stochastic", action="store_true", help="sample actions (default: the mode)")
    eval_parser.add_argument("--video", metavar="FILE.mp4", help="also record the first episode (.mp4 or .gif)")
    eval_parser.add_argument("--env", metavar="ENV", help="the run's environment id: needed to allow a "
                             "module:Env id, which imports the module (default: the run's, if not module:Env)")
    plot_parser = commands.add_parser("plot", help="draw learning curves (mean ± std over runs)")
    plot_parser.add_argument("dirs", metavar="DIR", nargs="+")
    plot_parser.add_argument("--out", default="learning_curves.png", metavar="FILE.png",
                             help="image file; its extension picks the format (.png, .pdf, .svg, ...)")
    plot_parser.add_argument("--value", default="AverageEpRet", help="progress.csv column to plot")
    plot_parser.add_argument("--x", default="TotalEnvInteracts", help="progress.csv column along the x axis")
    export_parser = commands.add_parser("export", help="copy a run's policy alone into a small folder")
    export_parser.add_argument("dir", metavar="DIR")
    export_parser.add_argument("--out", required=True, metavar="NEW_DIR", help="the folder to create")
    export_parser.add_argument("--float32", action="store_true", help="keep float32 weights (default: float16)")
    export_parser.add_argument("--env", metavar="ENV", help="as eval's --env (for a module:Env id)")
    return parser, dict(commands.choices)


def run_flags(parser: Parser) -> Parser:
    """Add ``train``'s run options (the flags that are not settings) to ``parser``; returns it."""
    parser.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its checkpoint")
    parser.add_argument("--out", metavar="DIR", help="run folder (default runs/ALGO_ENV_sSEED)")
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="torch CPU threads (default 1; a resumed run: the count it was trained with)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-h", "--help", action="store_true")
    return parser


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _seed_int(text: str) -> int:
    """argparse type: a seed torch accepts, an integer in [0, 2**64 - 1]."""
    try:
        value = int(text)
        require_seed(value, "the seed")
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
    return value


def _looks_negative(text: str) -> bool:
    """Whether a command-line token is a negative number (-1e-3, -inf, -64,64), not a flag."""
    if not text.startswith("-") or text.startswith("--"):
        return False
    try:
        float(text)
        return True
    except ValueError:
        return text[1:2].isdigit() or (text[1:2] == "." and text[2:3].isdigit())


def _attach_negative_values(args: List[str], takes_value: Iterable[str]) -> List[str]:
    """``args`` with each negative number that follows a flag taking a value attached to it
    (``--pi_lr -1e-3`` becomes ``--pi_lr=-1e-3``)."""
    takes_value, joined, i = set(takes_value), [], 0
    while i < len(args):
        if args[i] in takes_value and i + 1 < len(args) and _looks_negative(args[i + 1]):
            joined.append(f"{args[i]}={args[i + 1]}")
            i += 2
        else:
            joined.append(args[i])
            i += 1
    return joined


def _did_you_mean(flag: str, known: Sequence[str]) -> str:
    """'; did you mean --x?' naming up to three of ``known`` that ``flag`` begins or resembles
    (one spelling of each: ``--pi-lr`` is ``--pi_lr``), or '' if none is close."""
    spellings: Dict[str, str] = {}
    for name in known:
        spellings.setdefault(name.replace("-", "_"), name)
    key = flag.replace("-", "_")
    starting = [other for other in spellings if other.startswith(key) and other != key]
    close = starting[:3] or difflib.get_close_matches(key, list(spellings), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(spellings[other] for other in close)}?" if close else ""


def train(args: argparse.Namespace, rest: List[str]) -> int:
    """``train ALGO --env ... [--resume]``: run (or continue) training; ``rest`` holds the
    algorithm's name and its ``--setting value`` flags. Returns the exit code."""
    from scgrad.rl.run.folder import check_env_id, config_error, read_config

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
    parsed = {key: parse_text(key, types[key], text) for key, text in given.items()}
    if args.resume:  # the run folder is data: its settings are checked, a module:Env id not imported unasked
        try:
            recorded = algorithm.config.from_dict(settings)
        except ConfigError as error:
            raise config_error(args.resume, error) from None
        check_env_id(args.resume, recorded.env, parsed.get("env"))
    settings.update(parsed)
    if not args.resume:  # a resumed run's config.json already holds what its preset filled in
        settings = presets.apply(name, settings, algorithms.default_env(algorithm))
    config = algorithm.config.from_dict(settings)
    env_name = re.sub(r"[^A-Za-z0-9.-]+", "-", config.env)
    out = args.resume or args.out or str(Path("runs") / f"{name}_{env_name}_s{config.seed}")

    threads = args.threads
    if threads is None:  # a resumed run keeps the count it recorded
        threads = algorithms.recorded_threads(args.resume) if args.resume else 1
    with algorithms.torch_threads(threads):
        algorithm.train(config, out_dir=out, resume=bool(args.resume), progress=not args.no_progress)
    if distributed.world().main:
        print(f"run folder: {out}")
    return distributed.finish(0)  # a run under torchrun leaves its process group (after a failure the launcher ends it)


def settings_parser(config_class: type, name: str) -> Parser:
    """A parser with one ``--field`` (and ``--field-name``) per settings field; values stay
    strings until ``parse_text`` gives the clear error for a bad one."""
    parser = Parser(
        prog=f"python -m scgrad.rl train {name}", add_help=False, argument_default=argparse.SUPPRESS,
        description="Run options: --out DIR (run folder), --resume DIR (continue it), --threads N "
                    "(torch threads, default 1), --no-progress. Settings:")
    helps = field_help(config_class)
    for field in dataclasses.fields(config_class):
        spellings = dict.fromkeys([f"--{field.name}", f"--{field.name.replace('_', '-')}"])
        default = field.default if field.default is not dataclasses.MISSING else None
        if field.name == "preset":  # the dataclass holds what was applied; the command line asks for auto
            default = presets.AUTO
        parser.add_argument(*spellings, dest=field.name, metavar="VALUE",
                            help=f"{helps.get(field.name, '')} (default: {_show(default)})".replace("%", "%%"))
    parser.suggestions = run_flags(Parser(add_help=False)).flags
    return parser


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return "none" if value is None else str(value)


def evaluate(args: argparse.Namespace, rest: List[str]) -> int:
    """``eval DIR``: run a saved agent's episodes (and optionally record a video), print each
    return and their summary. Returns the exit code."""
    from scgrad.rl.run.evaluate import evaluate as run_episodes
    from scgrad.rl.agents import load_agent
    from scgrad.rl.atari_ids import describe_protocol
    from scgrad.rl.run.evaluate import record_video, summary

    agent = load_agent(args.dir, env=args.env)
    protocol = describe_protocol(agent.config.env)
    if protocol is not None:
        print(f"env={agent.config.env} protocol={protocol}")
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
    from scgrad.rl.run.plot import plot as draw

    print(f"plot: {draw(args.dirs, args.out, y=args.value, x=args.x)}")
    return 0


def export(args: argparse.Namespace, rest: List[str]) -> int:
    """``export DIR --out NEW_DIR``: the run's policy alone, for ``eval`` and ``load`` (see
    ``agents.export_agent``). Returns the exit code."""
    from scgrad.rl.agents import export_agent

    out = export_agent(args.dir, args.out, half=not args.float32, env=args.env)
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"exported: {out} ({size / 1e6:.2f} MB)")
    return 0
