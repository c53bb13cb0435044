"""run.commandline: the examples' flags from a settings dataclass, and resume with the recorded settings."""
from __future__ import annotations

import dataclasses
import json

import pytest

from scgrad.rl.errors import ConfigError, RLError
from scgrad.rl.run.commandline import settings_from, settings_parser


@dataclasses.dataclass
class Settings:
    seed: int = 0
    epochs: int = 10
    lr: float = 1e-3
    shuffle: bool = True


def _parse(argv):
    return settings_from(Settings, settings_parser(Settings, "demo", "epochs", "passes").parse_args(argv), "epochs")


def test_flags_fill_the_fields_given_and_booleans_read_true_and_false():
    assert _parse(["--out", "x", "--lr", "0.5", "--shuffle", "false"]) == Settings(lr=0.5, shuffle=False)
    assert _parse(["--out", "x", "--epochs", "3", "--shuffle", "YES"]) == Settings(epochs=3, shuffle=True)
    with pytest.raises((ConfigError, SystemExit)):
        _parse(["--out", "x", "--shuffle", "maybe"])


def test_a_resume_takes_the_recorded_settings_and_only_a_new_length(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"algo": "demo", "seed": 4, "epochs": 10, "lr": 0.1,
                                                      "shuffle": False}))
    assert _parse(["--resume", str(tmp_path)]) == Settings(seed=4, lr=0.1, shuffle=False)
    assert _parse(["--resume", str(tmp_path), "--epochs", "20"]).epochs == 20
    with pytest.raises(RLError, match="not a run folder"):
        _parse(["--resume", str(tmp_path / "nowhere")])
