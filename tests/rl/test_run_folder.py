"""Run folders: safe to open (no code runs from them), impossible to wedge, checked on load.

Tiny runs (CartPole, 3 epochs of 200 steps); the command line runs as a subprocess where the
test is about what a user sees, in-process where it needs a monkeypatch."""
import csv
import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from scgrad.rl.envs import state as env_state
from scgrad.rl.run.checkpoint import load_checkpoint, read_manifest
from scgrad.rl.envs.make import make_vector_env
from scgrad.rl.errors import CheckpointError, TrainingDiverged
from scgrad.rl.run.folder import RunFolder, read_progress
from scgrad.rl.algos.ppo import ppo

from .test_cli import assert_one_line_error, cli  # noqa: F401  (cli is a fixture)
from .test_resume import progress_without_time

HERE = Path(__file__).parent
SMALL = dict(steps=600, steps_per_epoch=200, update_epochs=2, minibatch_size=100)
FLAGS = ["--env", "CartPole-v1", "--steps", "600", "--steps_per_epoch", "200", "--update_epochs", "2",
         "--minibatch_size", "100", "--no-progress"]


# ------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A finished tiny PPO run folder; tests work on copies (``copy_run``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("small") / "run"
    ppo("CartPole-v1", path, **SMALL)
    torch.set_num_threads(threads)
    return path


def copy_run(source, target):
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".lock"))
    return target


def python_m(*args, cwd=None):
    """``python -m scgrad.rl ARGS`` as a user runs it (toy_envs importable): (status, stdout, stderr)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "scgrad.rl", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)
    return done.returncode, done.stdout, done.stderr


def payload(run_dir):
    """The payload file the committed manifest names."""
    (name,) = read_manifest(run_dir)["files"]
    return Path(run_dir) / name


def reseal(run_dir):
    """Recompute a checkpoint's checksums after its payload was edited, as a forger would: the
    checks after the checksum must then stand on their own."""
    path = Path(run_dir) / "checkpoint.json"
    manifest = json.loads(path.read_text())
    manifest["files"] = {n: hashlib.sha256((Path(run_dir) / n).read_bytes()).hexdigest() for n in manifest["files"]}
    manifest.pop("sha256")
    manifest["sha256"] = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    path.write_text(json.dumps(manifest))


def forge(run_dir, edit):
    """Rewrite the checkpoint's state with ``edit(state)`` applied, checksums recomputed."""
    state = load_checkpoint(run_dir)
    edit(state)
    torch.save(state, payload(run_dir))
    reseal(run_dir)


class RunsCode:
    """Unpickling this runs code: it creates the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


# ------------------------------------------------------------------ 1. no code runs from a run folder
def test_a_checkpoint_that_would_run_code_is_refused_by_eval_and_resume(small_run, tmp_path):
    run = copy_run(small_run, tmp_path / "run")
    marker = tmp_path / "code-ran"
    forge(run, lambda state: state["runner"].update(env=RunsCode(marker)))
    with open(run / "checkpoint.pt", "wb") as f:  # where earlier versions looked, and unpickled
        torch.save({"format": "scgrad.rl checkpoint 1", "evil": RunsCode(marker)}, f)
    with pytest.raises(CheckpointError, match="not plain data"):
        load_checkpoint(run)
    for command in (["eval", run], ["train", "--resume", run]):
        status, _, err = python_m(*command)
        assert_one_line_error(status, err, r"refers to (builtins\.)?exec, which is not plain data; it was not loaded")
    assert not marker.exists()


def test_no_module_loads_pickles_or_unsafe_torch_files():
    sources = "\n".join(p.read_text() for p in (HERE.parents[1] / "scgrad" / "rl").glob("*.py"))
    assert "weights_only=False" not in sources and "pickle.load" not in sources


def test_env_state_is_plain_data_and_continues_identically():
    pytest.importorskip("mujoco")
    for env_id in ("CartPole-v1", "Dice-v0", "Hopper-v5"):
        env = make_vector_env(env_id, 2)
        env.reset(seed=3)
        env.action_space.seed(3)
        action = [env.action_space.sample() for _ in range(80)]
        for a in action[:7]:
            env.step(a)
        state = env_state.capture(env)
        copy = make_vector_env(env_id, 2)
        copy.reset(seed=99)  # another episode, other random streams: all overwritten
        env_state.restore(copy, state)
        for a in action[7:]:  # across episode ends too
            ours, theirs = env.step(a), copy.step(a)
            for x, y in zip(ours[:4], theirs[:4]):
                np.testing.assert_array_equal(x, y)


def test_mujoco_run_resumes_exactly(tmp_path, cpu_threads):
    pytest.importorskip("mujoco")
    settings = dict(steps=600, steps_per_epoch=200, num_envs=2, update_epochs=2, minibatch_size=100,
                    hidden_sizes=(16,))
    whole = ppo("Hopper-v5", tmp_path / "whole", **settings)
    ppo("Hopper-v5", tmp_path / "part", stop_after=1, **settings)
    resumed = ppo("Hopper-v5", tmp_path / "part", resume=True, **settings)
    assert progress_without_time(tmp_path / "part") == progress_without_time(tmp_path / "whole")
    for a, b in zip(whole.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("garbage, pattern", [
    ("nonsense", "not an environment state"),
    ({"format": env_state.FORMAT, "envs": "x"}, "holds no environments"),
    ("pendulum", "the state is of a .*PendulumEnv"),
    ("counter", r"_elapsed_steps: expected int, got str"),
    ("array", r"state: expected an array like the env's float64\[4\], got float64\[7\]"),
])
def test_a_garbage_env_state_is_one_line(garbage, pattern):
    env = make_vector_env("CartPole-v1", 1)
    env.reset(seed=0)
    if garbage == "pendulum":
        other = make_vector_env("Pendulum-v1", 1)
        other.reset(seed=0)
        garbage = env_state.capture(other)
    elif garbage in ("counter", "array"):
        state = env_state.capture(env)
        outer, unwrapped = state["envs"][0][0]["attrs"], state["envs"][0][-1]["attrs"]
        if garbage == "counter":
            outer["_elapsed_steps"] = "x"
        else:
            unwrapped["state"] = np.zeros(7)
        garbage = state
    with pytest.raises(CheckpointError, match=pattern) as info:
        env_state.restore(env, garbage)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ 2. environment ids are data
def test_a_module_env_id_in_a_run_folder_is_not_imported_unless_given(small_run, tmp_path):
    run = copy_run(small_run, tmp_path / "run")
    marker = tmp_path / "imported"
    (tmp_path / "plant.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "env": "plant:Anything-v0"}))
    for command in (["eval", run], ["train", "--resume", run]):
        status, _, err = python_m(*command, cwd=tmp_path)
        assert_one_line_error(status, err, "imports a module: pass --env plant:Anything-v0 to allow it")
    assert not marker.exists()


def test_a_module_env_id_given_again_is_used(cli, tmp_path):  # noqa: F811
    run, env = tmp_path / "run", "toy_envs:Countdown-v0"
    flags = ["--steps", "400", "--steps_per_epoch", "200", "--update_epochs", "1", "--no-progress"]
    assert cli("train", "ppo", "--env", env, *flags, "--out", run)[0] == 0
    assert_one_line_error(*cli("eval", run, "--episodes", "1")[::2], "pass --env toy_envs:Countdown-v0")
    assert_one_line_error(*cli("eval", run, "--env", "CartPole-v1")[::2], "is not the environment of the run")
    status, out, err = cli("eval", run, "--episodes", "1", "--env", env)
    assert status == 0 and "mean_return=3.0000" in out, err  # Countdown: 3 steps of reward 1
    assert_one_line_error(*cli("train", "--resume", run, "--steps", "600")[::2], "pass --env toy_envs:Countdown")
    assert cli("train", "--resume", run, "--steps", "600", "--env", env, "--no-progress")[0] == 0
    assert len(read_progress(run)) == 3


# ------------------------------------------------------------------ 3. integrity
def test_every_flipped_byte_of_a_checkpoint_is_refused(small_run, tmp_path):
    run = copy_run(small_run, tmp_path / "run")
    file = payload(run)
    data = file.read_bytes()
    for position in np.linspace(0, len(data) - 1, 40).astype(int):
        flipped = bytearray(data)
        flipped[position] ^= 0xFF
        file.write_bytes(bytes(flipped))
        with pytest.raises(CheckpointError, match="corrupt"):
            load_checkpoint(run)
    file.write_bytes(data)
    assert load_checkpoint(run)["epoch"] == 3


def test_an_edited_manifest_is_refused(small_run, tmp_path):
    run = copy_run(small_run, tmp_path / "run")
    manifest = run / "checkpoint.json"
    manifest.write_text(manifest.read_text().replace('"epoch": 3', '"epoch": 2'))
    assert_one_line_error(*python_m("eval", run)[::2], r"checkpoint.json is corrupt \(its checksum")


def test_a_checkpoint_is_a_manifest_and_one_payload(small_run):
    names = run_files(small_run)
    assert names == [".lock", "checkpoint-000003.pt", "checkpoint.json", "config.json", "progress.csv"]
    manifest = read_manifest(small_run)
    assert manifest["epoch"] == 3 and manifest["algo"] == "ppo" and manifest["settings"]["gamma"] == 0.99
    assert manifest["files"]["checkpoint-000003.pt"] == hashlib.sha256(payload(small_run).read_bytes()).hexdigest()


# ------------------------------------------------------------------ 4. a run killed before its first checkpoint
def test_a_run_killed_while_writing_its_first_checkpoint_restarts(cli, small_run, tmp_path):  # noqa: F811
    run = copy_run(small_run, tmp_path / "run")
    for name in ("checkpoint.json", "checkpoint-000003.pt"):
        (run / name).unlink()
    with open(run / "progress.csv") as f:  # the kill came during epoch 1's checkpoint
        (run / "progress.csv").write_text("".join(f.readlines()[:2]))
    (run / ".checkpoint-000001.pt.tmp").write_bytes(b"half a payload")
    assert_one_line_error(*cli("train", "ppo", *FLAGS, "--out", run)[::2], "already holds a run; resume it")
    status, _, err = cli("train", "--resume", run, "--no-progress")
    assert status == 0 and err.strip() == \
        f"scgrad.rl: {run} holds no checkpoint yet: starting the run from scratch with its recorded settings"
    assert progress_without_time(run) == progress_without_time(small_run)
    assert not list(run.glob(".*.tmp"))


def test_leftovers_of_an_interrupted_write_are_removed(cli, small_run, tmp_path):  # noqa: F811
    run = copy_run(small_run, tmp_path / "run")
    for leftover in (".checkpoint-000004.pt.tmp", "checkpoint-000004.pt", ".checkpoint.json.tmp", ".progress.csv.tmp"):
        (run / leftover).write_bytes(b"interrupted")
    assert cli("train", "--resume", run, "--steps", "800")[0] == 0
    names = run_files(run)
    assert names == [".lock", "checkpoint-000004.pt", "checkpoint.json", "config.json", "progress.csv"]
    assert load_checkpoint(run)["epoch"] == 4


# ------------------------------------------------------------------ 5, 6. recorded settings and run options
def test_resume_refuses_a_config_edited_since_the_checkpoint(small_run, tmp_path):
    run = copy_run(small_run, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "gamma": 0.9, "steps": 800}))
    status, _, err = python_m("train", "--resume", run)
    assert_one_line_error(status, err, r"gamma=0\.9 \(the checkpoint has 0\.99\); restore config\.json")
    assert_one_line_error(*python_m("eval", run)[::2], r"config\.json differs .* \(gamma\)")


def test_threads_are_recorded_and_a_resume_uses_them(cli, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    flags = [*FLAGS[:2], "--steps", "400", *FLAGS[4:]]
    assert cli("train", "ppo", *flags, "--threads", "2", "--out", run)[0] == 0
    assert json.loads((run / "config.json").read_text())["run"] == {"threads": 2}
    assert read_manifest(run)["run"] == {"threads": 2}
    torch.set_num_threads(1)
    assert_one_line_error(*cli("train", "--resume", run, "--steps", "600", "--threads", "3")[::2],
                          "trained with 2 torch thread.*resume with --threads 2")
    assert cli("train", "--resume", run, "--steps", "600")[0] == 0
    # the resumed epochs ran on the recorded 2 threads (the manifest records the count in use),
    # and the process gets its own count back afterwards
    assert read_manifest(run)["epoch"] == 3 and read_manifest(run)["run"] == {"threads": 2}
    assert torch.get_num_threads() == 1


# ------------------------------------------------------------------ 7. durability and the lock
def test_a_folder_in_use_is_refused(cli, small_run, tmp_path):  # noqa: F811
    run = copy_run(small_run, tmp_path / "run")
    holder = RunFolder(run)
    holder.acquire(create=False)
    try:
        pattern = f"{run} is in use by another process \\(pid {os.getpid()}\\)"
        assert_one_line_error(*cli("train", "--resume", run, "--steps", "800")[::2], pattern)
        assert_one_line_error(*cli("train", "ppo", *FLAGS, "--out", run)[::2], pattern)
    finally:
        holder.release()
    assert cli("train", "--resume", run, "--steps", "800")[0] == 0


def test_progress_rows_and_checkpoints_are_fsynced(tmp_path, monkeypatch, cpu_threads):
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd to name the fsynced files")
    synced, fsync = [], os.fsync

    def recording_fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    run = tmp_path / "run"
    ppo("CartPole-v1", run, **SMALL)
    names = ["<folder>" if Path(p) == run.resolve() else Path(p).name for p in synced]
    assert names.count("progress.csv") == 3  # every epoch's row
    assert names.count(".checkpoint.json.tmp") == 3 and names.count(".config.json.tmp") == 1
    assert {".checkpoint-000001.pt.tmp", ".checkpoint-000002.pt.tmp", ".checkpoint-000003.pt.tmp"} <= set(names)
    assert names.count("<folder>") >= 3 * 2  # after each rename of a checkpoint


# ------------------------------------------------------------------ 8. divergence before any checkpoint
def test_divergence_before_the_first_checkpoint_does_not_claim_one(tmp_path):
    # NaNAfter-v0 rewards NaN from its 301st step: epoch 1 (400 steps) sees it
    with pytest.raises(TrainingDiverged) as info:
        ppo("NaNAfter-v0", tmp_path, steps=800, steps_per_epoch=400, update_epochs=2)
    assert "no checkpoint had been written" in str(info.value) and "checkpoint is kept" not in str(info.value)


# ------------------------------------------------------------------ 9. one-line errors
@pytest.mark.parametrize("out, pattern", [
    ("file", "--out .*file is a file, not a folder"),
    ("/proc/x", "cannot create the run folder /proc/x"),  # unwritable even for root
    ("file/run", "cannot create the run folder .*file/run"),  # under a regular file
])
def test_out_that_cannot_be_a_folder_is_one_line(tmp_path, out, pattern):
    (tmp_path / "file").write_text("a file")
    assert_one_line_error(*python_m("train", "ppo", *FLAGS, "--out", tmp_path / out)[::2], pattern)


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(cli, tmp_path, monkeypatch):  # noqa: F811
    save, calls = torch.save, []

    def full_disk_at_the_second(obj, f):
        calls.append(1)
        if len(calls) == 2:
            f.write(b"part of a payload")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        save(obj, f)

    monkeypatch.setattr(torch, "save", full_disk_at_the_second)
    run = tmp_path / "run"
    status, _, err = cli("train", "ppo", *FLAGS, "--out", run)
    assert_one_line_error(status, err, "cannot write the checkpoint of epoch 2 .*No space left on device.*"
                                       "the checkpoint of epoch 1 is kept")
    assert load_checkpoint(run)["epoch"] == 1
    assert run_files(run) == [".lock", "checkpoint-000001.pt", "checkpoint.json",
                                                     "config.json", "progress.csv"]


@pytest.mark.parametrize("entries, pattern", [
    ({"algo": ["ppo"]}, "config.json is corrupt .*'algo' name"),
    ({"gamma": "high"}, "config.json: gamma must be of type float"),
    ({"hidden_sizes": 64}, "config.json: hidden_sizes must be a sequence"),
    ({"steps": None}, "config.json: steps must be of type int"),
    ({"run": "fast"}, "config.json is corrupt .*'run' must be an object"),
])
def test_garbage_in_config_json_is_one_line(small_run, tmp_path, entries, pattern):
    run = copy_run(small_run, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, **entries}))
    assert_one_line_error(*python_m("train", "--resume", run)[::2], pattern)
    assert_one_line_error(*python_m("eval", run)[::2], pattern)


def test_a_garbage_env_state_in_a_checkpoint_is_one_line(small_run, tmp_path):
    run = copy_run(small_run, tmp_path / "run")
    forge(run, lambda state: state["runner"]["env"]["envs"][0].pop())
    assert_one_line_error(*python_m("train", "--resume", run, "--steps", "800")[::2],
                          "environment state does not fit this run: environment 0 has 4 wrapper layers")
    forge(run, lambda state: state["runner"].update(env=[1, 2, 3]))
    assert_one_line_error(*python_m("train", "--resume", run, "--steps", "800")[::2],
                          "environment state does not fit this run: not an environment state")


@pytest.mark.parametrize("damage, pattern", [
    ("cell", r"progress.csv, data row 2: LossPi is 'oops', not a number"),
    ("bytes", "progress.csv is not a readable CSV file"),
])
def test_garbage_in_progress_csv_is_one_line_on_resume(small_run, tmp_path, damage, pattern):
    run = copy_run(small_run, tmp_path / "run")
    if damage == "cell":
        with open(run / "progress.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        rows[1]["LossPi"] = "oops"
        with open(run / "progress.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        (run / "progress.csv").write_bytes(np.random.default_rng(0).bytes(3000))
    assert_one_line_error(*python_m("train", "--resume", run, "--steps", "800")[::2], pattern)


def run_files(folder):
    """The names in a run folder, less the TensorBoard events folder (a view of progress.csv)."""
    return sorted(p.name for p in folder.iterdir() if p.name != "tensorboard")
