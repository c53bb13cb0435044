"""Data-parallel PPO: two processes against one at the same global batch, and what the
communication costs.

    python benchmarks/distributed.py --env HalfCheetah-v5 --steps 100000 --seeds 0,1,2
    python benchmarks/distributed.py --env HalfCheetah-v5 --setting wide --steps 300000 --seeds 0,1,2
    python benchmarks/distributed.py --env ALE/Pong-v5 --steps 100000 --seeds 0
    python benchmarks/distributed.py --part comm      # all-reduce time of each network's gradient
    python benchmarks/distributed.py --part bound --env HalfCheetah-v5   # the speed-up bound, one process
    python benchmarks/distributed.py --part report    # only rewrite the section

Each run is the command line a user types — ``python -m scgrad.rl train ppo ...`` for one
process, ``torchrun --standalone --nproc_per_node=2 -m scgrad.rl train ppo ...`` for two — with
the same settings (``SETTINGS``: the preset's batch, or a wider one; ``--num_envs``
environments in all; one torch thread per process), one run at a time: two processes need
both cores, so nothing else may run beside the benchmark. Speed-up = wall-clock of training
(progress.csv's Time at the last epoch) of one process over two; returns are the mean episode
return of the last quarter of epochs (Pong's short runs end few episodes), mean ± std over
seeds. Runs are saved in ``benchmarks/distributed_runs/<name>.json`` and not repeated.

The communication share of an epoch is estimated from ``--part comm``: the time of one
all-reduce of each network's flat gradient (and of the float64 scalars the updates average)
between two processes, times the all-reduces an epoch makes, over the epoch's wall-clock.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _results import made_by, update_section  # noqa: E402

RUNS = HERE / "distributed_runs"
START, END = "## Data-parallel PPO", "<!-- end data-parallel -->"
#: global settings per (environment, setting name), on top of the PPO preset: environments in
#: all (a multiple of 2) and anything else changed. ``preset``: the preset's own batch (SB3's
#: 2048 × 10 epochs of 64-sample minibatches on MuJoCo, CleanRL's 8 × 128 on Atari); ``wide``:
#: 32 environments, 8192-step epochs of 2048-sample minibatches (40 steps an epoch instead of
#: 320, each on 32× the samples), the shape a data-parallel run is for.
SETTINGS = {("HalfCheetah-v5", "preset"): ["--num_envs", "2"],
            ("HalfCheetah-v5", "wide"): ["--num_envs", "32", "--steps_per_epoch", "8192", "--minibatch_size", "2048"],
            ("ALE/Pong-v5", "preset"): ["--num_envs", "8", "--cnn", "small"]}
def flags_for(env: str, setting: str) -> List[str]:
    """The command-line flags of a setting (any other environment's ``preset``: 2 environments)."""
    if (env, setting) in SETTINGS:
        return SETTINGS[env, setting]
    if setting == "preset":
        return ["--num_envs", "2"]
    raise ValueError(f"no setting {setting!r} for {env}: one of {sorted(SETTINGS)}")


#: the share of the run's epochs whose episodes' returns are averaged
RETURN_TAIL = 0.25


def run_name(env: str, setting: str, processes: int, steps: int, seed: int) -> str:
    tag = "" if setting == "preset" else f"-{setting}"
    return f"{env.replace('/', '-')}{tag}-p{processes}-n{steps}-s{seed}"


def run_command(env: str, setting: str, steps: int, seeds: str) -> str:
    tag = "" if setting == "preset" else f" --setting {setting}"
    return f"python benchmarks/distributed.py --env {env}{tag} --steps {steps} --seeds {seeds}"


def train(env: str, setting: str, processes: int, steps: int, seed: int, runs: Path) -> dict:
    """One training run (skipped if saved in ``runs``); its wall-clock and returns."""
    name = run_name(env, setting, processes, steps, seed)
    saved = runs / f"{name}.json"
    if saved.exists():
        return json.loads(saved.read_text())
    folder = runs / "folders" / name
    shutil.rmtree(folder, ignore_errors=True)  # a run killed before it was saved starts again
    train_args = ["-m", "scgrad.rl", "train", "ppo", "--env", env, *flags_for(env, setting),
                  "--steps", str(steps), "--seed", str(seed), "--out", str(folder), "--no-progress"]
    launcher = ([sys.executable] if processes == 1 else
                [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"])
    env_vars = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run([*launcher, *train_args], capture_output=True, text=True, env=env_vars)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed: {done.stderr[-2000:]}")
    rows = (folder / "progress.csv").read_text().splitlines()
    header = rows[0].split(",")
    table = [dict(zip(header, r.split(","))) for r in rows[1:]]
    tail = table[-max(1, round(len(table) * RETURN_TAIL)):]
    # an epoch in which no episode ended logs nan
    returns = [x for x in (float(r["AverageEpRet"]) for r in tail if r.get("AverageEpRet")) if not np.isnan(x)]
    result = {"env": env, "setting": setting, "processes": processes, "steps": steps, "seed": seed, "epochs": len(table),
              "train_seconds": float(table[-1]["Time"]), "wall_seconds": time.perf_counter() - start,
              "final_return": float(np.mean(returns)) if returns else float("nan"),
              "steps_per_epoch": int(table[0]["TotalEnvInteracts"]),
              "command": run_command(env, setting, steps, str(seed))}
    saved.write_text(json.dumps(result, indent=1))
    print(json.dumps(result), flush=True)
    return result


# ------------------------------------------------------------------ communication
def comm_worker(out: Path, repeats: int) -> None:
    """(torchrun, 2 processes) seconds per all-reduce of each gradient size, rank 0 writes them."""
    import torch
    import torch.distributed as dist

    from scgrad.rl import distributed
    from scgrad.rl.algos.ppo import PPOConfig
    from scgrad.rl.algos.onpolicy import make_model
    from scgrad.rl.envs.make import make_vector_env

    torch.set_num_threads(1)
    here = distributed.start()
    sizes = {"float64 scalars (losses, KL)": 4}
    for env in sorted({env for env, _ in SETTINGS}):
        config = PPOConfig(env=env, cnn="small")
        vec = make_vector_env(env, 1)
        model = make_model(config, vec.single_observation_space, vec.single_action_space)
        vec.close()
        sizes[f"{env} model gradient"] = sum(p.numel() for p in model.parameters())
    timings = {}
    for label, size in sizes.items():
        x = torch.zeros(size, dtype=torch.float64 if "scalars" in label else torch.float32)
        for _ in range(5):
            dist.all_reduce(x)
        dist.barrier()
        start = time.perf_counter()
        for _ in range(repeats):
            dist.all_reduce(x)
        timings[label] = {"elements": size, "seconds": (time.perf_counter() - start) / repeats}
    if here.main:
        out.write_text(json.dumps(timings, indent=1))
    distributed.finish(0)


def comm(repeats: int, runs: Path) -> dict:
    out = runs / "comm.json"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(Path(__file__).resolve()), "--comm-worker", str(out), "--repeats", str(repeats)],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise RuntimeError(f"comm worker failed: {done.stderr[-2000:]}")
    result = json.loads(out.read_text())
    print(json.dumps(result), flush=True)
    return result


def allreduces_per_epoch(run: dict, runs: Path) -> Dict[str, int]:
    """The all-reduces one PPO epoch makes (the preset's update_epochs and minibatch size): a
    gradient per minibatch step (carrying the KL, if any), the minibatch advantages' moments
    once per update epoch (if normalised), and a few statistics."""
    config = json.loads((runs / "folders" / run_name(run["env"], run["setting"], 2, run["steps"], run["seed"]) /
                         "config.json").read_text())
    minibatches = config["steps_per_epoch"] // (config["minibatch_size"] or config["steps_per_epoch"])
    moments = config["update_epochs"] if config.get("normalize_minibatch_advantages") else 0
    return {"gradient": config["update_epochs"] * minibatches, "scalars": moments + 6}


# ------------------------------------------------------------------ the bound
def epoch_parts(env: str, setting: str, processes: int, rounds: int, only: str = "") -> dict:
    """Seconds of one PPO epoch's rollout and of its batch + update, in one process, for the whole
    global batch and for one of ``processes`` equal shares (its environments, steps and
    minibatch share), alternating: the bound on the speed-up that ignores communication is
    whole / share (each process does a share's work at the same time). ``only``: time just
    ``whole`` or ``share``."""
    import torch

    from scgrad.rl import presets
    from scgrad.rl.algos import onpolicy, ppo
    from scgrad.rl.data.batch import compute_batch
    from scgrad.rl.data.runner import EnvRunner, collect_rollout
    from scgrad.rl.envs.make import make_vector_env

    torch.set_num_threads(1)
    flags = dict(zip(flags_for(env, setting)[::2], flags_for(env, setting)[1::2]))  # as the command line parses them
    given = {"env": env, **{k.lstrip("-"): int(v) if v.isdigit() else v for k, v in flags.items()}}
    base = ppo.PPOConfig.from_dict(presets.apply("ppo", given, env))
    shapes = {"whole": (base.num_envs, base.steps_per_epoch, base.minibatch_size),
              "share": (base.num_envs // processes, base.steps_per_epoch // processes,
                        base.minibatch_size // processes if base.minibatch_size else None)}
    if only:
        shapes = {only: shapes[only]}
    times = {name: [] for name in shapes}
    for _ in range(rounds):
        for name, (envs, steps, minibatch) in shapes.items():
            config = ppo.PPOConfig.from_dict({**base.to_dict(), "num_envs": envs, "steps_per_epoch": steps,
                                              "minibatch_size": minibatch})
            vec = make_vector_env(env, envs)
            model = onpolicy.make_model(config, vec.single_observation_space, vec.single_action_space)
            learner = onpolicy.OnPolicyLearner(ppo.PPO, config, model, EnvRunner(vec, 0))
            start = time.perf_counter()
            collect_rollout(learner.runner, model.pi, learner.buffer)
            middle = time.perf_counter()
            batch = compute_batch(learner.buffer, model.pi, model.v, config.gamma, config.lam, True)
            learner.algo.update(model, learner.optimizers, batch)
            times[name].append((middle - start, time.perf_counter() - middle))
            vec.close()
    parts = {name: dict(zip(("rollout", "update"), np.median(np.asarray(t), 0).tolist())) for name, t in times.items()}
    result = {"env": env, "setting": setting, "processes": processes, "rounds": rounds, "parts": parts}
    if not only:
        whole, share = (sum(parts[k].values()) for k in ("whole", "share"))
        result["bound"] = whole / share
    print(json.dumps(result), flush=True)
    return result


def side_by_side(env: str, setting: str, processes: int, rounds: int, runs: Path) -> dict:
    """A share's epoch (rollout + update, no communication) timed in one process alone, then in
    ``processes`` processes at once: how much the cores give when all are busy. The speed-up
    bound that counts this is ``bound × alone / together``."""
    def launch(count: int) -> List[float]:
        outs = [runs / f"share-worker-{i}.json" for i in range(count)]
        workers = [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--part", "share-worker",
                                     "--env", env, "--setting", setting, "--rounds", str(rounds), "--out", str(out)],
                                    env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL) for out in outs]
        if any(w.wait() != 0 for w in workers):
            raise RuntimeError("a share worker failed")
        seconds = [sum(json.loads(out.read_text())["parts"]["share"].values()) for out in outs]
        for out in outs:
            out.unlink()
        return seconds

    alone, together = launch(1)[0], launch(processes)
    result = {"env": env, "setting": setting, "processes": processes, "rounds": rounds, "alone": alone,
              "together": together, "efficiency": alone / float(np.mean(together))}
    print(json.dumps(result), flush=True)
    return result


# ------------------------------------------------------------------ the section
def spread(values: List[float]) -> str:
    """mean ± std of several seeds' values, or the one value."""
    return f"{np.mean(values):.1f} ± {np.std(values):.1f}" if len(values) > 1 else f"{values[0]:.1f}"


def section(command: str, folder: Path) -> str:
    runs = [json.loads(f.read_text()) for f in sorted(folder.glob("*.json"))
            if f.name != "comm.json" and not f.name.startswith(("bound-", "side-"))]
    timing = json.loads((folder / "comm.json").read_text()) if (folder / "comm.json").exists() else None
    lines = [START, "",
             "PPO, the same global settings on one process and on two (`torchrun --standalone "
             "--nproc_per_node=2`), one torch thread each, one run at a time on this 2-core machine. "
             "Settings: `preset` is the PPO preset's own batch (SB3's for MuJoCo: 2 environments, "
             "2048-step epochs, 10 passes of 64-sample minibatches; CleanRL's for Atari); `wide` is "
             "32 environments, 8192-step epochs, 2048-sample minibatches (`SETTINGS` in the script). "
             f"Speed-up: training wall-clock of one process over two; returns: mean episode return over "
             f"the last {RETURN_TAIL:.0%} of epochs (mean ± std over seeds).", "",
             "| env | setting | steps | seeds | 1 process s | 2 processes s | speed-up | return, 1 process | "
             "return, 2 processes | communication share (est.) |", "|---|---|---|---|---|---|---|---|---|---|"]
    by_env: Dict[tuple, Dict[int, List[dict]]] = {}
    for run in runs:
        key = (run["env"], run.get("setting", "preset"), run["steps"])
        by_env.setdefault(key, {}).setdefault(run["processes"], []).append({**run, "setting": key[1]})
    made = []
    for (env, setting, steps), groups in sorted(by_env.items()):
        one, two = groups.get(1, []), groups.get(2, [])
        seeds = sorted({r["seed"] for r in one} & {r["seed"] for r in two})
        if not seeds:
            continue
        made.append(run_command(env, setting, steps, ",".join(map(str, seeds))))
        t1 = np.mean([r["train_seconds"] for r in one if r["seed"] in seeds])
        t2 = np.mean([r["train_seconds"] for r in two if r["seed"] in seeds])
        r1 = [r["final_return"] for r in one if r["seed"] in seeds]
        r2 = [r["final_return"] for r in two if r["seed"] in seeds]
        share = ""
        if timing is not None and f"{env} model gradient" in timing:
            run = next(r for r in two if r["seed"] in seeds)
            counts = allreduces_per_epoch(run, folder)
            grad = timing[f"{env} model gradient"]["seconds"]
            scalar = timing["float64 scalars (losses, KL)"]["seconds"]
            per_epoch = counts["gradient"] * grad + counts["scalars"] * scalar
            share = f"{per_epoch / (t2 / run['epochs']):.1%} ({per_epoch * 1e3:.0f} ms of {t2 / run['epochs'] * 1e3:.0f} ms per epoch)"
        lines.append(f"| {env} | {setting} | {steps:,} | {','.join(map(str, seeds))} | {t1:.0f} | {t2:.0f} | "
                     f"{t1 / t2:.2f}× | {spread(r1)} | {spread(r2)} "
                     f"| {share} |")
    bounds = [json.loads(f.read_text()) for f in sorted(folder.glob("bound-*.json"))]
    if bounds:
        lines += ["", "The bound without communication (`--part bound`): one PPO epoch in one process, "
                  "the whole global batch against one process's share of it (its environments, steps "
                  "and minibatch share; medians of alternating rounds); each process does a share at "
                  "the same time, so the speed-up is at most whole / share.", "",
                  "| env | setting | processes | rollout, whole s | update, whole s | rollout, share s "
                  "| update, share s | bound |", "|---|---|---|---|---|---|---|---|"]
        for b in bounds:
            w, sh = b["parts"]["whole"], b["parts"]["share"]
            lines.append(f"| {b['env']} | {b.get('setting', 'preset')} | {b['processes']} | {w['rollout']:.3f} "
                         f"| {w['update']:.3f} | {sh['rollout']:.3f} | {sh['update']:.3f} | {b['bound']:.2f}× |")
        lines += ["", "Rows made by: " + "; ".join(f"`{b['command']}`" for b in bounds if "command" in b) + "."]
    sides = [json.loads(f.read_text()) for f in sorted(folder.glob("side-*.json"))]
    for side in sides:
        bound = next((b["bound"] for b in bounds if b["env"] == side["env"]
                      and b.get("setting", "preset") == side["setting"]), None)
        lines += ["", f"Side by side (`{side['command']}`): {side['env']} ({side['setting']}), a share's epoch "
                  f"takes {side['alone']:.3f} s in one process alone and {np.mean(side['together']):.3f} s in each of "
                  f"{side['processes']} processes at once, without communicating: the cores give "
                  f"{side['efficiency']:.0%} of their lone speed when both are busy"
                  + (f", so the speed-up can be at most {bound:.2f}× × {side['efficiency']:.2f} = "
                     f"{bound * side['efficiency']:.2f}× here." if bound else ".")]
    if made:
        lines += ["", "Speed-up rows made by: " + "; ".join(f"`{c}`" for c in made) + "."]
    if timing is not None:
        lines += ["", "All-reduce between the two processes (gloo, loopback), per call: " + "; ".join(
            f"{k} ({v['elements']:,} elements): {v['seconds'] * 1e6:.0f} µs" for k, v in timing.items()
            if isinstance(v, dict)) + f" (`python benchmarks/distributed.py --part comm --repeats {timing.get('repeats', 200)}`)."]
    lines += [""] + made_by(command) + ["", END]
    return "\n".join(lines)


def main(argv: Sequence[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", default="train", help="train, comm, bound, side-by-side or report")
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--setting", default="preset", help="preset or wide (see SETTINGS)")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of --part bound")
    parser.add_argument("--runs", default=str(RUNS), help="where runs are saved")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--comm-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.setting != "preset" and (args.env, args.setting) not in SETTINGS:
        parser.error(f"no setting {args.setting!r} for {args.env}: one of {sorted(SETTINGS)}")
    if args.part == "share-worker":  # one process of --part side-by-side: its result to --out
        Path(args.out).write_text(json.dumps(epoch_parts(args.env, args.setting, 2, args.rounds, only="share")))
        return 0
    if args.comm_worker:
        comm_worker(Path(args.comm_worker), args.repeats)
        return 0
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    if args.part == "train":
        for seed in (int(s) for s in args.seeds.split(",")):
            for processes in (1, 2):
                train(args.env, args.setting, processes, args.steps, seed, runs)
    elif args.part == "comm":
        comm(args.repeats, runs)
    elif args.part == "bound":
        tag = "" if args.setting == "preset" else f"-{args.setting}"
        result = {**epoch_parts(args.env, args.setting, 2, args.rounds),
                  "command": f"python benchmarks/distributed.py --part bound --env {args.env}"
                             f"{tag.replace('-', ' --setting ')} --rounds {args.rounds}"}
        (runs / f"bound-{args.env.replace('/', '-')}{tag}.json").write_text(json.dumps(result, indent=1))
    elif args.part == "side-by-side":
        tag = "" if args.setting == "preset" else f"-{args.setting}"
        result = {**side_by_side(args.env, args.setting, 2, args.rounds, runs),
                  "command": f"python benchmarks/distributed.py --part side-by-side --env {args.env}"
                             f"{tag.replace('-', ' --setting ')} --rounds {args.rounds}"}
        (runs / f"side-{args.env.replace('/', '-')}{tag}.json").write_text(json.dumps(result, indent=1))
    command = "python benchmarks/distributed.py " + " ".join(sys.argv[1:] if argv is None else argv)
    update_section(Path(args.out), section(command.strip(), runs), START, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
