"""The command line of a training program whose settings are a dataclass (the examples'):
``--out DIR`` starts a run, ``--resume DIR`` continues one with its recorded settings (only the
run's length, the setting named ``length``, may be given again, to extend it), and every other
field of the dataclass is a flag (``--checkpoint-every 5``)."""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable, Type

from scgrad.rl.errors import ConfigError
from scgrad.rl.run.folder import read_config


def settings_parser(settings_class: Type, description: str, length: str, length_help: str) -> argparse.ArgumentParser:
    """A parser with ``--out``, ``--resume``, ``--{length}`` and one flag per other field of
    ``settings_class`` (its default's type; booleans take true/false)."""
    parser = argparse.ArgumentParser(description=description, allow_abbrev=False)
    parser.add_argument("--out", help="run folder to create")
    parser.add_argument("--resume", metavar="DIR", help="continue the run in DIR (its recorded settings)")
    parser.add_argument(f"--{length}", type=int, help=f"{length_help} (a resume may raise it)")
    for field in dataclasses.fields(settings_class):
        if field.name != length:
            parser.add_argument(f"--{field.name.replace('_', '-')}", type=_reader(type(field.default)), default=None)
    return parser


def settings_from(settings_class: Type, args: argparse.Namespace, length: str) -> Any:
    """The run's settings: those recorded in ``args.resume`` (its length replaced if given), or
    the defaults with the flags given. Errors of the recorded folder are ``RLError``s."""
    if args.resume:
        _, recorded = read_config(args.resume)
        given_length = getattr(args, length)
        return settings_class(**{**recorded, **({length: given_length} if given_length else {})})
    return settings_class(**{f.name: getattr(args, f.name) for f in dataclasses.fields(settings_class)
                             if getattr(args, f.name) is not None})


def _reader(kind: type) -> Callable[[str], Any]:
    """How a flag's text becomes a field's value (argparse's ``bool("false")`` would be True)."""
    if kind is not bool:
        return kind

    def boolean(text: str) -> bool:
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ConfigError(f"expected true or false, got {text!r}")

    return boolean
