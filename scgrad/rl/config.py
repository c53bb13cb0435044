"""Settings of RL runs as dataclasses: one source for defaults, validation, config.json and the
command line (each field becomes ``--field``, its help text taken from the class docstring)."""
from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any, Dict, Optional, Tuple, Type, TypeVar

from scgrad.rl.errors import ConfigError

C = TypeVar("C", bound="RunConfig")
#: the hidden activations a setting may name (``nets.mlp.ACTIVATIONS`` maps them to modules)
ACTIVATION_NAMES = ("tanh", "relu", "elu", "gelu", "silu")


@dataclasses.dataclass
class RunConfig:
    """Settings every RL algorithm shares.

    Attributes:
        env: gymnasium environment id, e.g. CartPole-v1.
        seed: seeds torch, numpy, Python's random and the environments.
        steps: total environment interactions, all environments together (a multiple of num_envs).
        num_envs: environments stepped together (one process), the policy batched over them.
        steps_per_epoch: environment steps per epoch, all environments together (a multiple of
            num_envs); one progress row and, every checkpoint_every epochs, one checkpoint.
        hidden_sizes: hidden layer widths of the policy and value networks.
        activation: hidden activation: tanh, relu, elu, gelu or silu.
        gamma: discount factor, in [0, 1].
        normalize_obs: normalise observations by running mean and std (saved with checkpoints).
        checkpoint_every: write a checkpoint every this many epochs (and after the last one).
        tensorboard: also write each progress row as TensorBoard events into the run folder
            (charts/episodic_return, losses/approx_kl, ...; see ``run.tensorboard``), when the
            tensorboard package is installed.
        preset: the tuned settings that filled in the fields not given: an environment family
            (classic_control, mujoco) or none (the algorithm's own defaults); see
            ``scgrad.rl.presets``. The command line and ``ppo()``, ``sac()``, ... default to auto
            (the environment's family), and record here what auto chose.
    """

    env: str = "CartPole-v1"
    seed: int = 0
    steps: int = 100_000
    num_envs: int = 1
    steps_per_epoch: int = 4000
    hidden_sizes: Tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    gamma: float = 0.99
    normalize_obs: bool = False
    checkpoint_every: int = 1
    tensorboard: bool = True
    preset: str = "none"

    def __post_init__(self) -> None:
        coerce_fields(self)
        self.validate()

    def validate(self) -> None:
        """Raise ``ConfigError`` for a setting out of range; subclasses extend it."""
        require(bool(self.env), "env must be a gymnasium environment id")
        require_seed(self.seed)
        require_positive(self, "steps", "num_envs", "steps_per_epoch", "checkpoint_every")
        require(self.steps_per_epoch % self.num_envs == 0,
                f"steps_per_epoch ({self.steps_per_epoch}) must be a multiple of num_envs ({self.num_envs})")
        require(self.steps % self.num_envs == 0,
                f"steps ({self.steps}) must be a multiple of num_envs ({self.num_envs}): every step "
                "steps all the environments")
        require(len(self.hidden_sizes) > 0 and all(h > 0 for h in self.hidden_sizes),
                f"hidden_sizes must be positive widths, got {self.hidden_sizes}")
        require_unit_interval(self, "gamma")
        require(self.activation in ACTIVATION_NAMES,
                f"activation must be one of {sorted(ACTIVATION_NAMES)}, got '{self.activation}'")
        from scgrad.rl.presets import NONE, families
        require(self.preset == NONE or self.preset in families(),
                f"preset must be none or one of {', '.join(families())} (auto is resolved by the command "
                f"line and ppo(), sac(), ...; see scgrad.rl.presets), got '{self.preset}'")

    @property
    def epochs(self) -> int:
        """Epochs in the run: the last one is shorter when ``steps_per_epoch`` does not divide ``steps``."""
        return -(-self.steps // self.steps_per_epoch)

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


SEED_LIMIT = 2**64  # torch.manual_seed takes [0, 2**64); numpy gets seed % 2**32, gymnasium any seed >= 0


def require_seed(seed: int, name: str = "seed") -> None:
    """A ``ConfigError`` unless ``seed`` is in [0, ``SEED_LIMIT``), the seeds torch accepts."""
    require(0 <= seed < SEED_LIMIT, f"{name} must be in [0, 2**64 - 1] (the seeds torch accepts), got {seed}")


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
    """A command-line string as type ``kind``; otherwise a ``ConfigError`` naming the flag and
    the form its value takes."""
    optional = typing.get_origin(kind) is typing.Union
    if optional:
        if text.lower() == "none":
            return None
        kind = [k for k in typing.get_args(kind) if k is not type(None)][0]
    try:
        return _parse(kind, text)
    except ValueError:
        form = value_form(kind) + (" or none" if optional else "")
        raise ConfigError(f"--{name}: expected {form}, got '{text}'") from None


def _parse(kind: Any, text: str) -> Any:
    if typing.get_origin(kind) is tuple:
        inner = typing.get_args(kind)[0]
        return tuple(_parse(inner, part) for part in re.split(r"[,\s]+", text.strip("()[] ")) if part)
    if kind is bool:
        lowered = text.lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(text)
        return lowered in ("true", "1", "yes")
    return kind(text)


_FORMS = {int: "an integer", float: "a number", bool: "true or false", str: "text"}


def value_form(kind: Any) -> str:
    """How a command-line value of type ``kind`` is written, for error messages."""
    if typing.get_origin(kind) is tuple:
        inner = typing.get_args(kind)[0]
        example = "64,64" if inner is int else "0.5,0.5"
        return f"{'integers' if inner is int else 'numbers'} separated by commas (such as {example})"
    return _FORMS.get(kind, getattr(kind, "__name__", str(kind)))


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
