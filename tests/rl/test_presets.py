"""Presets: tuned settings fill what the user did not set, per algorithm and environment
family; ``none`` keeps the algorithm's own defaults; the choice is recorded."""
import dataclasses
import sys

import pytest

from scgrad.rl import presets
from scgrad.rl.algos import registry as algorithms
from scgrad.rl.errors import ConfigError, EnvError
from scgrad.rl.algos.ppo import PPOConfig


def test_auto_picks_the_family_of_the_environment():
    assert presets.resolve("ppo", "CartPole-v1") == "classic_control"
    assert presets.resolve("sac", "Pendulum-v1") == "classic_control"
    assert presets.resolve("ppo", "HalfCheetah-v5") == "mujoco"
    assert presets.resolve("sac", "HalfCheetah-v5") == "none"  # Spinning Up's defaults are for MuJoCo
    assert presets.resolve("ppo", "NoSuchEnv-v0") == "none"    # make_env reports the unknown id


def test_a_module_id_is_never_imported_to_find_its_family(tmp_path, monkeypatch):
    (tmp_path / "planted.py").write_text("raise SystemExit('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert presets.resolve("ppo", "planted:Env-v0") == "none"
    assert "planted" not in sys.modules


def test_given_values_win_and_the_preset_fills_the_rest():
    filled = presets.apply("ppo", {"env": "CartPole-v1", "pi_lr": 0.5}, "CartPole-v1")
    assert filled["pi_lr"] == 0.5 and filled["num_envs"] == 8 and filled["preset"] == "classic_control"
    config = PPOConfig.from_dict(filled)
    assert (config.num_envs, config.minibatch_size, config.pi_lr) == (8, 256, 0.5)


def test_none_keeps_the_algorithms_own_defaults():
    filled = presets.apply("ppo", {"env": "CartPole-v1", "preset": "none"}, "CartPole-v1")
    assert PPOConfig.from_dict(filled) == PPOConfig(env="CartPole-v1")


def test_every_preset_names_only_fields_of_its_algorithm():
    for (algo, family), values in presets.PRESETS.items():
        fields = {f.name for f in dataclasses.fields(algorithms.get(algo).config)}
        assert set(values) <= fields - {"env", "seed", "steps", "preset"}, (algo, family)


def test_unknown_or_unavailable_presets_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown preset 'fast'; choose auto, none or one of"):
        presets.resolve("ppo", "CartPole-v1", "fast")
    with pytest.raises(ConfigError, match="sac has no 'mujoco' preset; it has: classic_control"):
        presets.resolve("sac", "HalfCheetah-v5", "mujoco")
    with pytest.raises(ConfigError, match="preset must be none or one of"):
        PPOConfig(preset="auto")  # auto means something only to the entry points


def test_the_python_entry_points_apply_presets_and_restore_threads(tmp_path):
    import torch
    from scgrad.rl.algos.ppo import ppo

    before = torch.get_num_threads()
    result = ppo("CartPole-v1", steps=8, steps_per_epoch=8, update_epochs=1, threads=1)
    assert torch.get_num_threads() == before
    assert (result.config.preset, result.config.num_envs, result.config.minibatch_size) == ("classic_control", 8, 256)
    with pytest.raises(ConfigError, match="threads must be an integer >= 1"):
        ppo("CartPole-v1", steps=8, steps_per_epoch=8, threads=0)


def test_no_algorithm_defaults_to_an_environment_it_rejects():
    from scgrad.rl.envs.make import make_env

    for name in algorithms.names():
        algorithm = algorithms.get(name)
        env = make_env(algorithms.default_env(algorithm))
        try:  # raises EnvError for spaces the algorithm does not support
            algorithm.make_model(algorithm.config(), env.observation_space, env.action_space)
        finally:
            env.close()


def test_unusable_images_are_refused_before_training(tmp_path):
    """Channel-last images are refused, as are images for the off-policy algorithms."""
    pytest.importorskip("ale_py")
    import gymnasium as gym
    import numpy as np

    from scgrad.rl.envs.make import check_spaces
    with pytest.raises(EnvError, match="not channel-first"):
        check_spaces(gym.spaces.Box(0, 255, (210, 160, 3), np.uint8), gym.spaces.Discrete(6), "raw")
    with pytest.raises(EnvError, match="is an image, and these networks take feature vectors"):
        algorithms.train("sac", "ALE/Pong-v5", tmp_path / "sac", steps=8, steps_per_epoch=8)
    assert not (tmp_path / "sac" / "progress.csv").exists()  # refused before any epoch


def test_the_command_line_records_the_preset_and_none_keeps_the_defaults(tmp_path):
    import json

    from scgrad.rl.cli import main

    tiny = ["--steps", "16", "--steps_per_epoch", "16", "--update_epochs", "1", "--no-progress"]
    assert main(["train", "ppo", "--env", "CartPole-v1", *tiny, "--out", str(tmp_path / "auto")]) == 0
    recorded = json.loads((tmp_path / "auto" / "config.json").read_text())
    assert (recorded["preset"], recorded["num_envs"], recorded["minibatch_size"]) == ("classic_control", 8, 256)
    assert recorded["steps_per_epoch"] == 16  # a flag wins over the preset
    none = ["--preset", "none", "--out", str(tmp_path / "none")]
    assert main(["train", "ppo", "--env", "CartPole-v1", *tiny, *none]) == 0
    recorded = json.loads((tmp_path / "none" / "config.json").read_text())
    defaults = PPOConfig().to_dict()
    assert (recorded["preset"], recorded["num_envs"], recorded["minibatch_size"]) == ("none", 1, None)
    assert all(recorded[k] == defaults[k] for k in ("pi_lr", "lam", "target_kl"))


def test_a_python_resume_runs_on_the_recorded_thread_count(tmp_path):
    import torch
    from scgrad.rl.run.checkpoint import read_manifest
    from scgrad.rl.algos.ppo import ppo

    tiny = dict(steps=32, steps_per_epoch=16, update_epochs=1, progress=False)
    ppo("CartPole-v1", tmp_path, stop_after=1, threads=2, **tiny)
    before = torch.get_num_threads()
    ppo("CartPole-v1", tmp_path, resume=True, **tiny)  # no threads given: the run's 2, not 1
    assert read_manifest(tmp_path)["epoch"] == 2 and read_manifest(tmp_path)["run"] == {"threads": 2}
    assert torch.get_num_threads() == before
