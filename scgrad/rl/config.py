"""Settings of RL runs as dataclasses: one source for defaults, validation, config.json and the
command line (each field becomes ``--field``, its help text taken from the class docstring)."""
from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any, Dict, Optional, Tuple, Type, TypeVar

from .errors import ConfigError

C = TypeVar("C", bound="RunConfig")


@dataclasses.dataclass
class RunConfig:
    """Settings every RL algorithm shares.

    Attributes:
        env: gymnasium environment id, e.g. CartPole-v1.
        seed: seeds torch, numpy, Python's random and the environments.
        steps: total environment interactions, all environments together.
        num_envs: environments stepped together (one process), the policy batched over them.
        hidden_sizes: hidden layer widths of the policy and value networks.
        activation: hidden activation: tanh, relu, elu, gelu or silu.
        gamma: discount factor, in [0, 1].
        normalize_obs: normalise observations by running mean and std (saved with checkpoints).
        checkpoint_every: write a checkpoint every this many epochs (and after the last one).
    """

    env: str = "CartPole-v1"
    seed: int = 0
    steps: int = 100_000
    num_envs: int = 1
    hidden_sizes: Tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    gamma: float = 0.99
    normalize_obs: bool = False
    checkpoint_every: int = 1

    def __post_init__(self) -> None:
        coerce_fields(self)
        self.validate()

    def validate(self) -> None:
        """Raise ``ConfigError`` for a setting out of range; subclasses extend it."""
        require(bool(self.env), "env must be a gymnasium environment id")
        require_positive(self, "steps", "num_envs", "checkpoint_every")
        require(len(self.hidden_sizes) > 0 and all(h > 0 for h in self.hidden_sizes),
                f"hidden_sizes must be positive widths, got {self.hidden_sizes}")
        require_unit_interval(self, "gamma")
        from .networks import ACTIVATIONS  # late: keeps this module free of torch at import
        require(self.activation in ACTIVATIONS,
                f"activation must be one of {sorted(ACTIVATIONS)}, got '{self.activation}'")

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready settings (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls: Type[C], data: Dict[str, Any]) -> C:
        """Settings from ``to_dict`` output; unknown keys are a ``ConfigError``."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        require(not unknown, f"unknown setting(s) for {cls.__name__}: {unknown}")
        return cls(**data)


# ------------------------------------------------------------------ validation helpers
def require(condition: bool, message: str) -> None:
    """Raise ``ConfigError(message)`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)


def require_positive(config: Any, *names: str) -> None:
    """A ``ConfigError`` naming the first of ``config``'s fields ``names`` that is not > 0."""
    for name in names:
        value = getattr(config, name)
        require(value > 0, f"{name} must be > 0, got {value}")


def require_unit_interval(config: Any, *names: str) -> None:
    """A ``ConfigError`` naming the first of ``config``'s fields ``names`` outside [0, 1]."""
    for name in names:
        value = getattr(config, name)
        require(0.0 <= value <= 1.0, f"{name} must be in [0, 1], got {value}")


def field_types(cls: type) -> Dict[str, Any]:
    """Resolved type annotations of a config dataclass's fields."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def coerce_fields(config: Any) -> None:
    """Check each field's type (ints where ints are due, numbers for floats, ...), converting
    losslessly (an int for a float, a list for a tuple); ``ConfigError`` otherwise."""
    for name, kind in field_types(type(config)).items():
        setattr(config, name, coerce(name, kind, getattr(config, name)))


def coerce(name: str, kind: Any, value: Any) -> Any:
    """``value`` as type ``kind`` (int, float, bool, str, Tuple[int, ...], Optional[...])."""
    if typing.get_origin(kind) is typing.Union:  # Optional[X]
        inner = [k for k in typing.get_args(kind) if k is not type(None)][0]
        return None if value is None else coerce(name, inner, value)
    if typing.get_origin(kind) is tuple:
        require(isinstance(value, (list, tuple)), f"{name} must be a sequence, got {value!r}")
        return tuple(coerce(name, typing.get_args(kind)[0], v) for v in value)
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    require(ok, f"{name} must be of type {kind.__name__}, got {value!r}")
    return value


def parse_text(name: str, kind: Any, text: str) -> Any:
    """A command-line string as type ``kind``; ``ConfigError`` naming the flag otherwise."""
    if typing.get_origin(kind) is typing.Union:
        if text.lower() == "none":
            return None
        kind = [k for k in typing.get_args(kind) if k is not type(None)][0]
    try:
        if typing.get_origin(kind) is tuple:
            inner = typing.get_args(kind)[0]
            return tuple(parse_text(name, inner, part) for part in re.split(r"[,\s]+", text.strip("()[] ")) if part)
        if kind is bool:
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
        return kind(text)
    except ValueError:
        raise ConfigError(f"--{name}: expected {getattr(kind, '__name__', kind)}, got '{text}'") from None


def field_help(cls: type) -> Dict[str, str]:
    """``name: text`` entries of the ``Attributes:`` sections of ``cls`` and its bases."""
    helps: Dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        doc = klass.__dict__.get("__doc__") or ""
        if "Attributes:" not in doc:
            continue
        current: Optional[str] = None
        for line in doc.split("Attributes:", 1)[1].splitlines():
            match = re.match(r"\s{4,8}(\w+): (.*)", line)
            if match:
                current = match.group(1)
                helps[current] = match.group(2).strip()
            elif current and line.strip():
                helps[current] += " " + line.strip()
            elif not line.strip() and current:
                current = None
    return helps
