"""How fast can an off-policy update be on this machine? The arithmetic bound of the benchmark's
matched settings.

With batch 256 and 256-256 or 400-300 networks, one SAC/TD3/DDPG gradient step is hundreds of
millions of floating-point operations, nearly all of them in matrix products. This script
counts them (``torch.utils.flop_counter.FlopCounterMode`` over one of scgrad's updates with
the settings of ``rl_offpolicy.py``), measures the machine's single-thread matrix-product rate
(256×256 by 256×256, the networks' largest shape) and divides: the steps per second that no
implementation doing one such update per environment step can beat on this CPU, even with
free environments and no Python. A tighter bound follows from the products themselves: every
matrix product one update dispatches (forward and backward, recorded below autograd with their
shapes and memory layouts) is timed alone and the times summed — what the update costs if all
its other tensor operations were free. Beside both: scgrad's update time, and the issue's speed
target (2.5× SB3's steps/s in the saved paired runs of ``rl_offpolicy.py``).

    python benchmarks/rl_offpolicy_bound.py            # writes the rl_offpolicy_bound section

Run it on a quiet machine: the rate and the timings are CPU-bound and suffer from a busy
neighbour (two hardware threads of one core share its arithmetic units).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rl_offpolicy  # noqa: E402
from _results import made_by, update_section  # noqa: E402
from _rl_common import command_line, load_runs, positive, single_thread  # noqa: E402

from scgrad.rl.algos import registry as algorithms  # noqa: E402
from scgrad.rl.envs.make import make_vector_env  # noqa: E402
from scgrad.rl.nets.offpolicy import box_dims  # noqa: E402
from scgrad.rl.data.replay import ReplayBuffer  # noqa: E402

START_MARK, END_MARK = "<!-- rl_offpolicy_bound:start -->", "<!-- rl_offpolicy_bound:end -->"
PLAN = [("sac", "HalfCheetah-v5"), ("td3", "HalfCheetah-v5"), ("ddpg", "HalfCheetah-v5")]
TARGET_RATIO = 2.5  # issue 4's speed target: scgrad's steps/s over SB3's


def sb3_paired_speed(runs: List[Dict[str, object]], algo: str, env: str) -> Optional[float]:
    """Mean steps/s of SB3's paired runs of (algo, env) with the plan's budget and start phase."""
    speeds = [r["steps_per_s"] for r in runs
              if (r["impl"], r["algo"], r["env"], r["paired"]) == ("sb3", algo, env, True)
              and r["budget"] == rl_offpolicy.PLAN[0][2] and r["learning_starts"] == rl_offpolicy.LEARNING_STARTS]
    return float(np.mean(speeds)) if speeds else None


MATRIX_PRODUCTS = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default,
                   torch.ops.aten.bmm.default, torch.ops.aten.baddbmm.default}
Layout = Tuple[Tuple[int, ...], Tuple[int, ...]]  # a tensor argument's (shape, stride)


class ProductRecorder(TorchDispatchMode):
    """Counts the matrix products dispatched inside it by (op, argument layouts, keyword
    arguments), and every other op in ``other``. Below autograd: backward's products count too."""

    def __init__(self) -> None:
        super().__init__()
        self.products: Counter = Counter()
        self.other = 0

    def __torch_dispatch__(self, func: Callable, types: Any, args: tuple = (), kwargs: Optional[dict] = None) -> Any:
        kwargs = kwargs or {}
        if func in MATRIX_PRODUCTS:
            layouts = tuple((tuple(a.shape), a.stride()) if isinstance(a, torch.Tensor) else a for a in args)
            self.products[(func, layouts, tuple(sorted(kwargs.items())))] += 1
        else:
            self.other += 1
        return func(*args, **kwargs)


def _tensor_like(layout: Layout) -> torch.Tensor:
    """Random float32 data with the given shape and strides (expanded dims, stride 0, included)."""
    shape, stride = layout
    size = 1 + sum((n - 1) * step for n, step in zip(shape, stride))
    return torch.randn(size).as_strided(shape, stride)


def time_products(products: Counter, per: int, rounds: int = 10, repeats: int = 20) -> float:
    """Seconds the recorded products take alone, divided by ``per`` (the updates recorded): each
    distinct call timed on fresh data of its layout, ``repeats`` calls a block, best block of
    ``rounds``, times its count. The rounds go over all the calls in turn, so that a slow
    spell of a shared machine spoils one round of every call rather than every round of one."""
    calls = [(func, [_tensor_like(a) if isinstance(a, tuple) else a for a in layouts], dict(kwargs), count)
             for (func, layouts, kwargs), count in products.items()]
    best = [float("inf")] * len(calls)
    for func, args, kwargs, _ in calls:
        for _ in range(5):
            func(*args, **kwargs)
    for _ in range(rounds):
        for i, (func, args, kwargs, _) in enumerate(calls):
            start = time.perf_counter()
            for _ in range(repeats):
                func(*args, **kwargs)
            best[i] = min(best[i], (time.perf_counter() - start) / repeats)
    return sum(b * count for b, (_, _, _, count) in zip(best, calls)) / per


def matmul_rate(size: int = 256, repeats: int = 2000) -> float:
    """Single-thread float32 GFLOP/s of a size×size by size×size product (best of 5 rounds)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(50):
        a @ b
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats // 5):
            a @ b
        best = min(best, (time.perf_counter() - start) / (repeats // 5))
    return 2 * size ** 3 / best / 1e9


def filled_buffer(obs_dim: int, act_dim: int, n: int = 5000) -> ReplayBuffer:
    """A buffer of ``n`` random transitions (the update's cost does not depend on their values)."""
    rng = np.random.default_rng(0)
    buffer = ReplayBuffer(n, obs_dim, act_dim)
    f32 = np.float32
    buffer.add(rng.standard_normal((n, obs_dim), f32), rng.uniform(-1, 1, (n, act_dim)).astype(f32),
               rng.standard_normal(n, f32), rng.standard_normal((n, obs_dim), f32), np.zeros(n, f32))
    return buffer


def measure(algo: str, env_id: str, updates: int = 200) -> Dict[str, float]:
    """Per update of scgrad's with the benchmark's matched settings (averaged over TD3's
    critic-only and critic-and-actor steps): FLOPs, the time of its matrix products alone (the
    best of three passes of ``time_products``), its other tensor ops, and its wall time (mean
    over a block of ``updates / 5`` updates, the best of 5 blocks)."""
    from torch.utils.flop_counter import FlopCounterMode

    algorithm = algorithms.get(algo)
    config = algorithm.config(env=env_id, **rl_offpolicy.scgrad_settings(algo, env_id, 0, 100_000, 10_000))
    env = make_vector_env(env_id, 1)
    model = algorithm.make_model(config, env.single_observation_space, env.single_action_space)
    obs_dim, act_dim = box_dims(env.single_observation_space, env.single_action_space)
    env.close()
    update_class = {"sac": "SAC", "td3": "TD3", "ddpg": "DDPG"}[algo]
    update = getattr(__import__(f"scgrad.rl.algos.{algo}", fromlist=[update_class]), update_class)(config, model)
    buffer = filled_buffer(obs_dim, act_dim)
    for _ in range(20):  # warm-up; also past the first delayed actor step
        update.update(buffer.sample(config.batch_size))
    with FlopCounterMode(display=False) as counter:
        for _ in range(2):
            update.update(buffer.sample(config.batch_size))
    with ProductRecorder() as recorder:
        for _ in range(2):
            update.update(buffer.sample(config.batch_size))
    block = max(1, updates // 5)  # TD3 alternates step kinds: blocks hold whole pairs when even
    seconds = float("inf")
    for _ in range(5):  # best of 5 blocks, like the rates: the machine's quiet spells
        start = time.perf_counter()
        for _ in range(block):
            update.update(buffer.sample(config.batch_size))
        seconds = min(seconds, (time.perf_counter() - start) / block)
    products = min(time_products(recorder.products, per=2) for _ in range(3))
    return {"flops": counter.get_total_flops() / 2, "seconds": seconds, "products": products,
            "other_ops": recorder.other / 2}


def render(rate: float, rows: List[Dict[str, object]], command: str) -> str:
    """The section: one row per (algo, env) with its FLOPs, both bounds, scgrad's update time
    and, where SB3's paired runs are saved (``row["sb3"]`` not None), the target against the
    tighter bound."""
    lines = [START_MARK, "## Off-policy RL: the arithmetic bounds of one update per step", "",
             f"One torch thread multiplies 256×256 matrices at **{rate:.0f} GFLOP/s** here (best of 5 rounds). "
             "FLOPs: `FlopCounterMode` over scgrad's update with `rl_offpolicy.py`'s matched settings "
             "(batch 256; SAC 256-256, TD3/DDPG 400-300 networks; TD3 averaged over a critic-only and a "
             "critic-and-actor step). Peak bound: the steps per second of one update per environment step "
             "if the update ran at that rate and nothing else took time — no implementation of these "
             "settings can beat it on this machine. Products' bound: the same from the update's own matrix "
             "products (forward and backward, with their shapes and memory layouts, recorded under a "
             "`TorchDispatchMode`), each timed alone (best of 5 rounds) — the update's speed if its other "
             "tensor ops, the environment, acting and sampling the buffer took no time (best of 3 passes). scgrad "
             "update: mean wall time over a block of updates, best of 5 blocks. Target: 2.5× SB3's "
             "mean steps/s in the saved paired 100k-step runs of `rl_offpolicy.py` (SB3 ran beside scgrad "
             "there, on the other core); at 100% of the products' bound or above it is out of reach for "
             "any implementation that does these products one by one, and below it the rest of a step "
             "must fit in what is left.", "",
             "| algo | env | MFLOP per update | peak bound (steps/s) | products alone, ms | products' bound (steps/s) "
             "| other tensor ops per update | scgrad update, ms | scgrad update at % of the peak rate "
             "| SB3 paired steps/s | target 2.5× SB3 | target as % of the products' bound |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        bound = rate * 1e9 / row["flops"]
        efficiency = row["flops"] / row["seconds"] / (rate * 1e9) * 100
        sb3 = row["sb3"]
        products_bound = 1.0 / row["products"]
        target = (f"{sb3:.1f} | {TARGET_RATIO * sb3:.0f} | {TARGET_RATIO * sb3 / products_bound * 100:.0f}%"
                  if sb3 is not None else "— | — | —")
        lines.append(f"| {row['algo']} | {row['env']} | {row['flops'] / 1e6:,.0f} | {bound:,.0f} | "
                     f"{row['products'] * 1e3:.2f} | {products_bound:,.0f} | {row['other_ops']:.0f} | "
                     f"{row['seconds'] * 1e3:.2f} | {efficiency:.0f}% | {target} |")
    lines += ["", *made_by(command), END_MARK]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "RESULTS.md")
    parser.add_argument("--updates", type=positive(), default=200, help="updates timed per algorithm (5 blocks)")
    parser.add_argument("--runs", type=Path, default=rl_offpolicy.RUNS,
                        help="saved runs of rl_offpolicy.py, for SB3's paired speed")
    args = parser.parse_args(argv)
    single_thread()
    runs = load_runs(args.runs)
    rate = matmul_rate()
    rows = [{"algo": algo, "env": env, "sb3": sb3_paired_speed(runs, algo, env), **measure(algo, env, args.updates)}
            for algo, env in PLAN]
    rate = max(rate, matmul_rate())  # measured again after: the better of the two
    section = render(rate, rows, command_line("rl_offpolicy_bound.py", argv if argv is not None else sys.argv[1:]))
    update_section(args.out, section, START_MARK, END_MARK)
    print(section)


if __name__ == "__main__":
    main()
