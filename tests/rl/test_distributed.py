"""Data-parallel on-policy training on two processes (gloo over loopback), launched by torchrun.

The launches run ``tests/rl/distributed_worker.py`` or the command line; each takes seconds.
Equality with one process is checked on a fixed batch (the processes own different random
streams, so whole runs differ in their samples by design): parameters after VPG, TRPO and PPO
updates on two half-batches equal a single process's on the whole batch to float rounding
(7e-8 measured), with a negative control (one half alone is far off).
"""
from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from scgrad.rl import distributed
from scgrad.rl.run.checkpoint import read_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
import distributed_worker as worker  # noqa: E402

WORKER = Path(__file__).with_name("distributed_worker.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "SCGRAD_DIST_TIMEOUT_S": "60"}


def torchrun(*args: str, cwd: Path, launcher: tuple = ("--standalone", "--nproc_per_node=2"),
             timeout: float = 120) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", *launcher, *args]
    return subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def progress(run: Path) -> list:
    """progress.csv's rows without the wall-clock column."""
    with open(run / "progress.csv") as f:
        return [{k: v for k, v in row.items() if k != "Time"} for row in csv.DictReader(f)]


def ranks_of(run: Path) -> list:
    """Every process's state from the run's checkpoint (rank 0 first)."""
    _, saved = read_checkpoint(run)
    return [saved, *saved[distributed_key()]]


def distributed_key() -> str:
    from scgrad.rl.run import loop
    return loop._RANKS


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# ------------------------------------------------------------------ a world of one
def test_alone_every_collective_returns_its_input():
    x = torch.randn(50)
    assert distributed.world() == distributed.World(0, 1) and distributed.world().main
    assert torch.allclose(distributed.standardize(x), (x - x.mean()) / (x.std() + 1e-8))
    assert distributed.mean(torch.tensor(2.5), 1.0) == [2.5, 1.0] and distributed.mean(3.0) == 3.0
    assert distributed.gather({"a": 1}) == [{"a": 1}] and distributed.broadcast(7) == 7
    grads = [x.clone()]
    assert distributed.average_(grads) == [] and distributed.average_(grads, torch.tensor(0.5), 2) == [0.5, 2.0]
    expected = torch.cat([(c - c.mean()) / (c.std() + 1e-8) for c in x[:48].split(16)] + [x[48:49]])
    assert torch.equal(distributed.standardize_chunks(x[:49], 16), expected)  # a run of one is left alone
    assert torch.equal(grads[0], x)
    assert distributed.seed_of_rank(5, 0) == 5 and distributed.seed_of_rank(5, 1) != distributed.seed_of_rank(5, 2)


# ------------------------------------------------------------------ the updates
@pytest.fixture(scope="module")
def updates(tmp_path_factory) -> Path:
    """The folder of one ``updates`` launch (both tests below read it)."""
    out = tmp_path_factory.mktemp("updates")
    done = torchrun(str(WORKER), "updates", str(out), cwd=out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_two_processes_update_like_one_process_on_the_whole_batch(updates):
    tmp_path = updates
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    whole = worker.update_results()
    half = worker.update_results(slice(0, worker.SAMPLES // 2))  # negative control: no averaging
    for algo in ("ppo", "vpg", "trpo"):
        assert_same_state(rank0[algo], rank1[algo])  # bitwise: every process steps alike
        params = [k for k in whole[algo] if not k.startswith("info.")]
        gap = max((rank0[algo][k] - whole[algo][k]).abs().max().item() for k in params)
        assert gap < 1e-6, (algo, gap)
        control = max((half[algo][k] - whole[algo][k]).abs().max().item() for k in params)
        assert control > 1e-4, (algo, control)
        for k in whole[algo]:
            if k.startswith("info."):  # statistics of the whole batch, not of a share
                assert torch.allclose(rank0[algo][k], whole[algo][k], rtol=1e-5, atol=1e-7), (algo, k)
    assert whole["ppo"]["info.StopIter"] < 6  # the early stop (a global KL) was exercised


def test_minibatch_moments_and_scalars_travel_in_one_collective_each(updates):
    ranks = [torch.load(updates / f"rank{r}.pt")["collectives"] for r in (0, 1)]
    shares = torch.randn(2, worker.RUNS, generator=torch.Generator().manual_seed(3)) * 5 + 2
    for i, (a, b) in enumerate(zip(*(share.split(worker.RUN_SIZE) for share in shares))):
        both = torch.cat([a, b])  # run i of every process: one minibatch
        expected = ((both - both.mean()) / (both.std() + 1e-8)).split(len(a))
        got = [r["chunks"].split(worker.RUN_SIZE)[i] for r in ranks]
        for g, e in zip(got, expected):
            assert torch.allclose(g, e, atol=1e-6), i
        alone = (a - a.mean()) / (a.std() + 1e-8)  # negative control: this process's half only
        assert (alone - expected[0]).abs().max() > 1e-2
    for r in ranks:
        assert torch.equal(r["grad0"], torch.full((3,), 0.5)) and torch.equal(r["grad1"], torch.full((2,), 2.0))
        assert r["scalars"].tolist() == [0.75, 10.0]


# ------------------------------------------------------------------ runs
def test_a_stopped_and_resumed_two_process_run_equals_an_uninterrupted_one(tmp_path):
    done = torchrun(str(WORKER), "resume", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    stopped, straight = tmp_path / "stopped", tmp_path / "straight"
    assert progress(stopped) == progress(straight) and len(progress(straight)) == 4
    for a, b in zip(ranks_of(stopped), ranks_of(straight)):
        assert_same_state(a["model"], b["model"])
        assert torch.equal(a["runner"]["obs"], b["runner"]["obs"])
    rank0, rank1 = ranks_of(straight)
    assert_same_state(rank0["model"], rank1["model"])  # one model, bitwise, in every process
    assert_same_state(rank0["normalizer"], rank1["normalizer"])  # one set of observation statistics
    assert float(rank0["normalizer"]["count"]) == 1024 + 2  # every step of both, and the two first resets
    assert not torch.equal(rank0["runner"]["obs"], rank1["runner"]["obs"])  # their own environments
    assert json.loads((straight / "config.json").read_text())["run"]["processes"] == 2


def test_killing_one_process_stops_both_with_a_clear_error_and_keeps_the_checkpoint(tmp_path):
    start = time.perf_counter()
    # the launcher looks at its processes every 5 s: rank 0 must notice the loss by itself first
    done = torchrun(str(WORKER), "kill", str(tmp_path), cwd=tmp_path,
                    launcher=("--standalone", "--nproc_per_node=2", "--monitor-interval=5"))
    assert done.returncode != 0
    assert time.perf_counter() - start < 60  # rank 0 noticed at once, not after the 60 s timeout
    assert "PeerLost: process 0 of 2 lost its peers" in done.stderr
    assert "the last good checkpoint is kept in" in done.stderr and "(epoch 4)" in done.stderr
    manifest, saved = read_checkpoint(tmp_path / "run")  # checksums verified
    assert manifest["epoch"] == 4 and len(saved[distributed_key()]) == 1
    assert len(progress(tmp_path / "run")) == 4


def test_the_command_line_under_torchrun_and_its_errors(tmp_path):
    run = tmp_path / "vpg"
    args = ["-m", "scgrad.rl", "train", "vpg", "--env", "CartPole-v1", "--num_envs", "2", "--steps_per_epoch",
            "256", "--no-progress"]
    done = torchrun(*args, "--steps", "512", "--out", str(run), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run folder:") == 1  # rank 0 prints
    assert len(progress(run)) == 2
    assert int(progress(run)[-1]["TotalEnvInteracts"]) == 512  # steps count both processes' environments

    alone = subprocess.run([sys.executable, "-m", "scgrad.rl", "train", "vpg", "--resume", str(run), "--steps", "768",
                            "--no-progress"], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    assert alone.returncode == 2
    assert "trained on 2 process(es) and this run has 1" in alone.stderr and "--nproc_per_node 2" in alone.stderr
    assert len(alone.stderr.strip().splitlines()) == 1

    uneven = torchrun("-m", "scgrad.rl", "train", "vpg", "--env", "CartPole-v1", "--num_envs", "3", "--steps_per_epoch",
                      "255", "--steps", "765", "--out", str(tmp_path / "uneven"), cwd=tmp_path)
    assert uneven.returncode != 0 and "num_envs (3) must be a multiple of the number of processes (2)" in uneven.stderr
    offpolicy = torchrun("-m", "scgrad.rl", "train", "sac", "--env", "Pendulum-v1", "--steps", "200",
                         "--out", str(tmp_path / "sac"), "--no-progress", cwd=tmp_path)
    assert offpolicy.returncode != 0 and "sac trains in one process" in offpolicy.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_machines_are_two_launches_that_meet_at_one_endpoint(tmp_path):
    """--nnodes 2: two torchrun launches (here on one machine) rendezvous at 127.0.0.1:PORT."""
    port = free_port()
    args = ["-m", "scgrad.rl", "train", "ppo", "--env", "CartPole-v1", "--num_envs", "2", "--steps_per_epoch", "256",
            "--minibatch_size", "64", "--update_epochs", "2", "--steps", "512", "--no-progress"]
    launches = []
    for node in (0, 1):
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
                    f"--node_rank={node}", "--master_addr=127.0.0.1", f"--master_port={port}"]
        launches.append(subprocess.Popen([*launcher, *args, "--out", str(tmp_path / f"node{node}")], cwd=tmp_path,
                                         env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [launch.communicate(timeout=120) for launch in launches]
    assert [launch.returncode for launch in launches] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    assert len(progress(tmp_path / "node0")) == 2  # rank 0 (node 0) wrote the run
    assert not (tmp_path / "node1").exists()
    rank0, rank1 = ranks_of(tmp_path / "node0")
    assert_same_state(rank0["model"], rank1["model"])


def test_backend_follows_the_device():
    assert distributed.backend_for("cpu") == "gloo"
    assert distributed.backend_for("cuda") == "nccl"


def test_the_speed_up_benchmark_runs_one_and_two_processes(tmp_path):
    """A smoke run of ``benchmarks/distributed.py`` (the real one needs both cores to itself)."""
    bench = Path(__file__).parents[2] / "benchmarks" / "distributed.py"
    done = subprocess.run([sys.executable, str(bench), "--env", "CartPole-v1", "--steps", "512", "--runs",
                           str(tmp_path), "--out", str(tmp_path / "R.md")], env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = [json.loads(f.read_text()) for f in tmp_path.glob("*.json")]
    assert sorted(r["processes"] for r in runs) == [1, 2] and all(r["steps"] == 512 for r in runs)
    assert "| CartPole-v1 | preset | 512 | 0 |" in (tmp_path / "R.md").read_text()
    done = subprocess.run([sys.executable, str(bench), "--part", "side-by-side", "--env", "CartPole-v1", "--rounds", "1",
                           "--runs", str(tmp_path), "--out", str(tmp_path / "R.md")], env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    side = json.loads((tmp_path / "side-CartPole-v1.json").read_text())
    assert side["alone"] > 0 and len(side["together"]) == 2 and side["efficiency"] > 0
    assert "Side by side (`python benchmarks/distributed.py --part side-by-side" in (tmp_path / "R.md").read_text()
    refused = subprocess.run([sys.executable, str(bench), "--env", "CartPole-v1", "--setting", "wide", "--runs",
                              str(tmp_path), "--out", str(tmp_path / "R.md")], capture_output=True, text=True)
    assert refused.returncode == 2 and "no setting 'wide' for CartPole-v1" in refused.stderr
