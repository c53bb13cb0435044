"""Pieces the RL benchmarks (rl_onpolicy.py, rl_offpolicy.py) share: one torch thread, SB3
models behind scgrad's evaluation, saved runs (one JSON file each) and the report's cells and
footer."""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

import _timing


def single_thread() -> None:
    """One torch thread for training, and torch's lazy imports paid before any clock starts."""
    torch.set_num_threads(1)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # the first optimiser imports torch._dynamo (~1 s)


def positive(kind: type = int):
    """An argparse ``type`` for numbers > 0 of ``kind``: anything else is a usage error that
    names the value (argparse prints it and exits with status 2)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def command_line(script: str, argv: Sequence[str]) -> str:
    """How a run was started, as a reader would type it from the repository root."""
    return (f"python benchmarks/{script} " + " ".join(map(shlex.quote, argv))).strip()


class SB3Agent:
    """Duck-types ``scgrad.rl.run.evaluate.Agent`` for an SB3 model (deterministic actions).

    ``evaluate`` maps a Box action from the policy's [−1, 1] to the environment's bounds, while
    SB3's ``predict`` already returns environment actions; for a Box whose bounds are not
    already ±1 they are mapped back to [−1, 1] first (for ±1 bounds that map is the identity and
    is skipped, so such actions pass through bit for bit).
    """

    def __init__(self, model, env: str) -> None:
        self.model, self.config = model, argparse.Namespace(env=env)
        space = model.action_space
        low, high = getattr(space, "low", None), getattr(space, "high", None)
        self.rescale = low is not None and not (np.all(low == -1.0) and np.all(high == 1.0))

    def policy_actions(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        action = self.model.predict(obs, deterministic=deterministic)[0]
        return self.model.policy.scale_action(action) if self.rescale else action


def save_run(runs: Path, name: str, record: Dict[str, Any]) -> Path:
    """Write one run's record to ``runs/name`` (JSON), creating the folder."""
    runs.mkdir(parents=True, exist_ok=True)
    path = runs / name
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def load_runs(runs: Path) -> List[Dict[str, Any]]:
    """Every saved run in ``runs``, in file-name order."""
    return [json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))] if runs.exists() else []


def cell(values: Sequence[float], digits: int = 0) -> str:
    """``mean ± std`` of ``values`` (population std), or an em dash for none."""
    if not values:
        return "—"
    return f"{np.mean(values):,.{digits}f} ± {np.std(values):,.{digits}f}"


def permutation_p(x: Sequence[float], y: Sequence[float], max_exact: int = 50_000, draws: int = 50_000) -> float:
    """Two-sided permutation test of equal means: the fraction of the ways to split x ∪ y into
    groups of len(x) and len(y) whose |difference of means| is at least the observed one.

    Exact (every split) when there are at most ``max_exact`` splits (8 runs against 8: 12,870),
    else ``draws`` random splits with a fixed seed. A large p: the two sets of final returns are
    as far apart as random seeds put them; a small one (say below 0.05): they differ beyond
    that noise. Needs two values on each side.
    """
    pooled = np.asarray([*x, *y], dtype=float)
    n, total = len(x), len(x) + len(y)
    if len(x) < 2 or len(y) < 2:
        raise ValueError("permutation_p needs at least two values on each side")
    observed = abs(np.mean(x) - np.mean(y)) - 1e-9 * (1.0 + np.abs(pooled).max())  # ties count as extreme
    if math.comb(total, n) <= max_exact:
        masks = np.zeros((math.comb(total, n), total), dtype=bool)
        for row, chosen in enumerate(itertools.combinations(range(total), n)):
            masks[row, list(chosen)] = True
    else:
        order = np.argsort(np.random.default_rng(0).random((draws, total)), axis=1)
        masks = order < n
    means_x = (masks * pooled).sum(1) / n
    means_y = (~masks * pooled).sum(1) / (total - n)
    return float(np.mean(np.abs(means_x - means_y) >= observed))


RETURN_P_NOTE = ("Return p: a two-sided permutation test of equal mean returns over the seeds (exact; "
                 "`_rl_common.permutation_p`): a large p means the two sets of returns are as far apart as "
                 "seeds alone put them, below 0.05 that they differ beyond it; — with fewer than two seeds a "
                 "side. ")


def p_cell(x: Sequence[float], y: Sequence[float]) -> str:
    """``permutation_p`` to two decimals, or an em dash with fewer than two runs on a side."""
    return f"{permutation_p(x, y):.2f}" if len(x) >= 2 and len(y) >= 2 else "—"


def footer(runs: List[Dict[str, Any]], runs_dir: str) -> List[str]:
    """The section's closing lines: the machine of the most recent run and the commands that made the
    saved runs (each once, in order), in a bash block."""
    machine = max((r["machine"] for r in runs), key=lambda m: m["date"]) if runs else _timing.machine()
    return ["", f"Machine: {machine['cpu']}, {machine['cpu_count']} cores, torch {machine['torch']}, "
            f"Python {machine['python']}; last run {machine['date']}. Runs are saved in "
            f"`{runs_dir}`, made by:", "", "```bash", *dict.fromkeys(r.get("command", "?") for r in runs), "```"]


def run_pair(script: Path, argv: Sequence[str], what: str, impls: Sequence[str] = ("scgrad", "sb3"),
             fill: bool = False) -> None:
    """Run ``script argv --impl IMPL`` for each of ``impls`` at the same time, each in its own
    process (so both train under the same machine load); ``SystemExit`` naming ``what`` if one fails.

    With ``fill``, the load stays the same to the end: when a run finishes while another is still
    training, a filler (the finished run's own command again, saving into a scratch folder that
    is deleted afterwards) takes its place until the last run ends. Without it the slower run has
    the machine to itself for its last stretch, which speeds it up and so favours it. ``argv``
    must contain ``--runs DIR`` (the filler's is replaced).
    """
    def command(impl: str, runs: Optional[str] = None) -> List[str]:
        args = list(argv)
        if runs is not None:
            args[args.index("--runs") + 1] = runs
        return [sys.executable, str(script), *args, "--impl", impl]

    running = {impl: subprocess.Popen(command(impl)) for impl in impls}
    failed: List[str] = []
    fillers: Dict[str, subprocess.Popen] = {}
    with tempfile.TemporaryDirectory(prefix="scgrad-filler-") as scratch:
        def start_filler(impl: str) -> subprocess.Popen:
            return subprocess.Popen(command(impl, scratch), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        while running:
            time.sleep(0.2)
            for impl, child in list(running.items()):
                if child.poll() is None:
                    continue
                del running[impl]
                if child.returncode != 0:
                    failed.append(impl)
                elif fill and running:
                    fillers[impl] = start_filler(impl)
            for impl, filler in list(fillers.items()):  # a filler that ends early starts again
                if running and filler.poll() is not None:
                    fillers[impl] = start_filler(impl)
        for filler in fillers.values():
            filler.kill()
            filler.wait()
    if failed:
        raise SystemExit(f"paired run {what}: {', '.join(failed)} failed")


def load_now() -> Tuple[float, float, float]:
    """The 1-, 5- and 15-minute load averages, rounded for the record."""
    return tuple(round(x, 2) for x in os.getloadavg())


def timing_mode(rows: List[Dict[str, Any]]) -> str:
    """"paired, filled", "paired", "alone" or "mixed": how the runs of a table row were timed
    (``run_pair``; "filled": with ``fill``)."""
    modes = {"paired, filled" if r.get("filled") else "paired" if r.get("paired") else "alone" for r in rows}
    return modes.pop() if len(modes) == 1 else "mixed"


def load_range(rows: List[Dict[str, Any]]) -> str:
    """min–max of the 1-minute load averages at the runs' starts and ends (``record["load"]``
    is ``{"start": [...], "end": [...]}``), or an em dash for runs that did not record it."""
    loads = [x for r in rows if "load" in r for x in (r["load"]["start"][0], r["load"]["end"][0])]
    return f"{min(loads):.1f}–{max(loads):.1f}" if loads else "—"

