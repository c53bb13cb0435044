"""export: a run's policy alone in a small folder that eval, plot and load read, and that
refuses to be resumed; and the protocol line eval prints for Atari games."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scgrad.rl.agents import export_agent, load_agent
from scgrad.rl.cli import main
from scgrad.rl.errors import RLError
from scgrad.rl.run.checkpoint import read_checkpoint
from scgrad.rl.run.evaluate import evaluate

TINY = ["--env", "CartPole-v1", "--steps", "1024", "--steps_per_epoch", "512", "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "ppo"
    assert main(["train", "ppo", *TINY, "--out", str(out)]) == 0
    return out


def _size(folder):
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())


def test_an_export_plays_as_its_run_does_in_a_fraction_of_the_bytes(run_dir, tmp_path):
    exact, half = export_agent(run_dir, tmp_path / "f32", half=False), export_agent(run_dir, tmp_path / "f16")
    assert evaluate(load_agent(exact), 3) == evaluate(load_agent(run_dir), 3)
    original, exported = load_agent(run_dir).model.state_dict(), read_checkpoint(half)[1]["model"]
    for name, value in original.items():  # float16: the weights rounded, nothing else lost
        assert exported[name].dtype == torch.float16
        torch.testing.assert_close(exported[name].float(), value, rtol=1e-3, atol=1e-4)
    assert _size(half) < _size(exact) < _size(run_dir) / 3  # no optimiser or environment state
    assert (half / "progress.csv").read_text() == (run_dir / "progress.csv").read_text()  # plot reads it


def test_an_export_refuses_to_be_resumed_and_to_overwrite(run_dir, tmp_path, capsys):
    export_agent(run_dir, tmp_path / "e")
    assert main(["train", "--resume", str(tmp_path / "e"), "--steps", "2048", "--no-progress"]) == 2
    assert "exported weights only" in capsys.readouterr().err
    with pytest.raises(RLError, match="already exists"):
        export_agent(run_dir, tmp_path / "e")
    assert main(["export", str(run_dir), "--out", str(tmp_path / "e")]) == 2


def test_an_edited_config_is_refused_before_anything_is_written(run_dir, tmp_path):
    edited = tmp_path / "edited"
    edited.mkdir()
    for f in run_dir.iterdir():
        if f.is_file():
            (edited / f.name).write_bytes(f.read_bytes())
    config = json.loads((edited / "config.json").read_text())
    (edited / "config.json").write_text(json.dumps({**config, "hidden_sizes": [8]}))
    with pytest.raises(RLError, match="differs from the run"):
        export_agent(edited, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_command_line_exports_and_eval_states_the_atari_protocol(tmp_path, capsys):
    pytest.importorskip("ale_py")
    out = tmp_path / "pong"
    assert main(["train", "ppo", "--env", "ALE/Pong-v5", "--steps", "128", "--num_envs", "2",
                 "--steps_per_epoch", "128", "--minibatch_size", "64", "--update_epochs", "1", "--cnn", "small",
                 "--no-progress", "--out", str(out)]) == 0
    assert main(["export", str(out), "--out", str(tmp_path / "small")]) == 0
    assert "exported:" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "small"), "--episodes", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("env=ALE/Pong-v5 protocol=v5 (sticky actions 0.25")
    assert lines[-1].startswith("mean_return=") and np.isfinite(float(lines[-1].split()[0].split("=")[1]))


def test_an_export_keeps_the_progress_rows_its_weights_have_seen(run_dir, tmp_path):
    live = tmp_path / "live"  # a run still training: progress.csv one epoch ahead of its checkpoint
    live.mkdir()
    for f in run_dir.iterdir():
        if f.is_file():
            (live / f.name).write_bytes(f.read_bytes())
    rows = (live / "progress.csv").read_text().splitlines()
    (live / "progress.csv").write_text("\n".join(rows + ["3" + rows[-1][1:]]) + "\n")
    export_agent(live, tmp_path / "e")
    assert (tmp_path / "e" / "progress.csv").read_text().splitlines() == rows
