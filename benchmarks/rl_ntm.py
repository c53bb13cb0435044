"""RL-NTM: sampled memory against soft memory as the tape grows, and the tasks trained over seeds.

    python benchmarks/rl_ntm.py --part scaling                 # time and memory per step, N = 16 … 4096
    python benchmarks/rl_ntm.py --part speed                   # training examples/s at several batch sizes
    python benchmarks/rl_ntm.py --part train --task copy --seeds 0,1,2,3,4 --batch 1000 --minutes 60
    python benchmarks/rl_ntm.py --part report                  # only rewrite the section

**Scaling.** The same controller and batch (64 Reverse examples at level 10), run for its whole
step budget with forward and backward, with the RL-NTM's sampled memory head and with an
NTM-style soft head (attention over every cell), for N = 16, 64, 256, 1,024, 4,096 cells:
milliseconds per step (median of rounds that alternate the two), and the bytes autograd saves
for the backward pass per step (counted with ``torch.autograd.graph.saved_tensors_hooks``: the
memory a step costs). A plot goes to ``examples/rl_ntm/memory_scaling.png``.

**Training.** ``examples/rl_ntm/train.py`` per task and seed in its own process (one torch
thread), its result saved in ``benchmarks/rl_ntm_runs/<task>[-direct]-b<batch>-s<seed>.json``, stopped after ``--minutes``
(default 60, the target's hour: then reported unsolved from its last progress row); the table
gives, per task, the seeds solved, and over them the updates, held-out test error, minutes and
training examples per second.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _results import made_by, update_section  # noqa: E402

EXAMPLE = HERE.parent / "examples" / "rl_ntm"
RUNS = HERE / "rl_ntm_runs"
START, END = "## RL-NTM", "<!-- end rl-ntm -->"
CELLS = (16, 64, 256, 1024, 4096)


# ------------------------------------------------------------------ scaling
def scaling(rounds: int, cells: Sequence[int] = CELLS) -> Dict[str, Dict[int, dict]]:
    """{memory kind: {N: {"ms_per_step", "saved_bytes_per_step"}}}."""
    import torch

    sys.path.insert(0, str(EXAMPLE))
    import machine
    import tasks

    import scgrad as sg

    torch.set_num_threads(1)
    batch = tasks.make_batch(tasks.TASKS["reverse"], [10] * 64, torch.Generator().manual_seed(0))
    steps = int(batch.steps.max())

    def one(kind: str, n: int) -> tuple:
        torch.manual_seed(0)
        model = machine.Controller(machine.MachineSettings(memory=kind, cells=n))
        saved = [0]

        def pack(tensor):
            saved[0] += tensor.numel() * tensor.element_size()
            return tensor

        start = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            graph = sg.Graph(check_finite=False)
            machine.run(model, batch, graph)
            loss = graph.surrogate()
        loss.backward()
        return (time.perf_counter() - start) / steps * 1e3, saved[0] / steps

    out: Dict[str, Dict[int, dict]] = {"sampled": {}, "soft": {}}
    for n in cells:
        times = {kind: [] for kind in out}
        saved = {}
        for r in range(rounds + 1):  # round 0 warms up
            for kind in (out if r % 2 else reversed(list(out))):
                ms, saved[kind] = one(kind, n)
                if r:
                    times[kind].append(ms)
        for kind in out:
            out[kind][n] = {"ms_per_step": float(np.median(times[kind])), "saved_bytes_per_step": saved[kind]}
        print(n, {k: out[k][n] for k in out}, flush=True)
    return out


def plot(result: Dict[str, Dict[int, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for kind, style in (("sampled", "o-"), ("soft", "s--")):
        cells = sorted(int(n) for n in result[kind])
        axes[0].plot(cells, [result[kind][str(n) if str(n) in result[kind] else n]["ms_per_step"] for n in cells],
                     style, label=f"{kind} memory")
        axes[1].plot(cells, [result[kind][str(n) if str(n) in result[kind] else n]["saved_bytes_per_step"] / 1e6
                             for n in cells], style, label=f"{kind} memory")
    for ax, label in zip(axes, ("ms per step (forward + backward)", "MB saved for backward per step")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("memory cells N")
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle("RL-NTM: a sampled head costs the same for any memory size (batch 64, Reverse)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ------------------------------------------------------------------ speed
def speed(batches: Sequence[int], updates: int, task: str = "copy", level: int = 10) -> Dict[int, float]:
    """Training examples per second of ``train.update_once`` (the whole update: batch, run,
    surrogate, backward, clipping, SGD) at each batch size, on examples drawn around ``level``
    of ``task``: {batch: examples/s} (median of ``updates`` timed updates after one warm-up)."""
    import torch

    sys.path.insert(0, str(EXAMPLE))
    import tasks
    import train

    torch.set_num_threads(1)
    result = {}
    for batch in batches:
        s = train.Settings(task=task, batch=batch)
        model = train.make_model(s)
        optimizer = torch.optim.SGD(model.parameters(), lr=s.lr, momentum=0.9)
        curriculum = train.Curriculum(len(tasks.TASKS[task].levels), s.threshold)
        curriculum.level = level
        seconds = []
        for update in range(updates + 1):
            start = time.perf_counter()
            train.update_once(model, optimizer, s, curriculum, update)
            seconds.append(time.perf_counter() - start)
        result[batch] = batch / float(np.median(seconds[1:]))
        print(f"batch {batch}: {result[batch]:,.0f} examples/s", flush=True)
    return result


# ------------------------------------------------------------------ training
def train_once(task: str, seed: int, direct: bool, updates: int, batch: int, minutes: float, runs: Path) -> dict:
    """One training run in its own process, stopped after ``minutes`` of wall-clock (then
    reported unsolved, from its last progress row; its checkpoints can be resumed)."""
    name = f"{task}{'-direct' if direct else ''}-b{batch}-s{seed}"
    folder = runs / "folders" / name
    command = [sys.executable, str(EXAMPLE / "train.py"), "--task", task, "--seed", str(seed),
               "--direct-access", str(direct).lower(), "--updates", str(updates), "--batch", str(batch),
               "--no-progress"]
    command += ["--resume", str(folder)] if (folder / "checkpoint.json").exists() else ["--out", str(folder)]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=minutes * 60)
    except subprocess.TimeoutExpired:
        done = None
    if done is not None and done.returncode != 0:
        raise RuntimeError(f"{name} failed: {done.stderr[-2000:]}")
    rows = (folder / "progress.csv").read_text().splitlines()
    last = dict(zip(rows[0].split(","), rows[-1].split(",")))
    if done is not None:
        fields = dict(item.split("=") for item in done.stdout.strip().splitlines()[-1].split())
    else:  # out of time: the last epoch's row
        fields = {"solved": "false", "updates": last["Updates"], "test_error": last["TestError"], "level": last["Level"]}
    result = {"task": task, "direct_access": direct, "batch": batch, "seed": seed, "solved": fields["solved"] == "true",
              "timed_out": done is None, "minutes_allowed": minutes,
              "updates": int(fields["updates"]), "test_error": float(fields["test_error"]), "level": int(fields["level"]),
              "train_seconds": float(last["Time"]), "wall_seconds": time.perf_counter() - started,
              "examples_per_s": float(np.mean([float(r.split(",")[rows[0].split(",").index("ExamplesPerSecond")])
                                              for r in rows[1:]]))}
    (runs / f"{name}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result), flush=True)
    return result


# ------------------------------------------------------------------ the section
def section(runs: Path, command: str) -> str:
    lines = [START, ""]
    scaling_file = runs / "scaling.json"
    if scaling_file.exists():
        result = json.loads(scaling_file.read_text())
        lines += ["Time and memory per step against the memory's size (batch 64 Reverse examples at level 10, "
                  "forward and backward, one torch thread; the two kinds alternate in each round):", "",
                  "| cells N | sampled ms/step | soft ms/step | sampled MB saved/step | soft MB saved/step |",
                  "|---|---|---|---|---|"]
        for n in sorted(result["sampled"], key=int):
            a, b = result["sampled"][n], result["soft"][n]
            lines.append(f"| {int(n):,} | {a['ms_per_step']:.2f} | {b['ms_per_step']:.2f} | "
                         f"{a['saved_bytes_per_step'] / 1e6:.3f} | {b['saved_bytes_per_step'] / 1e6:.3f} |")
        lines += ["", "![memory scaling](../examples/rl_ntm/memory_scaling.png)", "",
                  f"Made by `{result.get('command', 'python benchmarks/rl_ntm.py --part scaling')}`.", ""]
    speed_file = runs / "speed.json"
    if speed_file.exists():
        measured = json.loads(speed_file.read_text())
        lines += [f"Training throughput (`--part speed`: whole updates of Copy around level {measured['level']}, "
                  "one torch thread, median over updates):", "",
                  "| batch | examples/s |", "|---|---|"]
        lines += [f"| {int(b):,} | {v:,.0f} |" for b, v in sorted(measured["examples_per_s"].items(), key=lambda x: int(x[0]))]
        lines += ["", f"Made by `{measured.get('command', 'python benchmarks/rl_ntm.py --part speed')}`.", ""]
    saved = [json.loads(p.read_text()) for p in sorted(runs.glob("*-s*.json"))]
    if saved:
        groups: Dict[tuple, List[dict]] = {}
        for r in saved:
            groups.setdefault((r["task"], r["direct_access"], r.get("batch", 200)), []).append(r)
        lines += ["Training (`examples/rl_ntm/train.py`, the original's curriculum, solved = past the last level "
                  "with held-out per-symbol error below 0.2, greedy actions, at the task's longer test length):", "",
                  "| task | direct access | batch | seeds solved | updates (solved runs) | test error (all) | minutes | "
                  "examples/s |", "|---|---|---|---|---|---|---|---|"]
        commands = []
        for (task, direct, batch), rs in sorted(groups.items()):
            seeds = ",".join(str(r["seed"]) for r in sorted(rs, key=lambda r: r["seed"]))
            commands.append(f"python benchmarks/rl_ntm.py --part train --task {task}{' --direct-access' if direct else ''} "
                            f"--seeds {seeds} --batch {batch} --minutes {rs[0].get('minutes_allowed', 60):g}")
            solved = [r for r in rs if r["solved"]]
            updates = f"{np.mean([r['updates'] for r in solved]):,.0f}" if solved else "—"
            lines.append(f"| {task} | {'yes' if direct else 'no'} | {batch} | {len(solved)}/{len(rs)} | {updates} | "
                         f"{np.mean([r['test_error'] for r in rs]):.3f} | "
                         f"{np.mean([r['train_seconds'] for r in rs]) / 60:.1f} | "
                         f"{np.mean([r['examples_per_s'] for r in rs]):,.0f} |")
        lines += ["", "Rows made by (runs already saved are read back; a run stopped by `--minutes` counts as "
                  "unsolved; minutes and examples/s are those of runs that shared the two cores with other work):",
                  "", "```bash", *commands, "```", ""]
    lines += made_by(command) + ["", END]
    return "\n".join(lines)


def main(argv: Sequence[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", default="scaling", help="scaling, speed, train or report")
    parser.add_argument("--speed-batches", default="200,500,1000,2000", help="batch sizes timed by --part speed")
    parser.add_argument("--speed-updates", type=int, default=10, help="updates timed per batch size")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cells", default=",".join(map(str, CELLS)))
    parser.add_argument("--task", default="copy")
    parser.add_argument("--direct-access", action="store_true")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--updates", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=200, help="examples per update")
    parser.add_argument("--minutes", type=float, default=60, help="wall-clock limit of each run")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--runs", default=str(RUNS))
    parser.add_argument("--plot", default=str(EXAMPLE / "memory_scaling.png"), help="where --part scaling draws")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args(argv)
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    if args.part == "scaling":
        result = scaling(args.rounds, [int(n) for n in args.cells.split(",")])
        result["command"] = f"python benchmarks/rl_ntm.py --part scaling --rounds {args.rounds} --cells {args.cells}"
        (runs / "scaling.json").write_text(json.dumps(result, indent=1))
        plot(json.loads((runs / "scaling.json").read_text()), Path(args.plot))
    elif args.part == "speed":
        measured = speed([int(b) for b in args.speed_batches.split(",")], args.speed_updates)
        command = (f"python benchmarks/rl_ntm.py --part speed --speed-batches {args.speed_batches} "
                   f"--speed-updates {args.speed_updates}")
        (runs / "speed.json").write_text(json.dumps({"level": 10, "examples_per_s": measured, "command": command}, indent=1))
    elif args.part == "train":
        todo = [int(s) for s in args.seeds.split(",")]
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda seed: train_once(args.task, seed, args.direct_access, args.updates, args.batch, args.minutes, runs), todo))
    elif args.part != "report":
        parser.error(f"--part must be scaling, speed, train or report, got {args.part!r}")
    command = "python benchmarks/rl_ntm.py " + " ".join(sys.argv[1:] if argv is None else argv)
    update_section(Path(args.out), section(runs, command.strip()), START, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
