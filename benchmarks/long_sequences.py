"""Long sequences of samples: the surrogate of T nodes in sequence against REINFORCE by hand.

    python benchmarks/long_sequences.py            # T = 10, 100, 1000
    python benchmarks/long_sequences.py --quick    # smoke run (seconds)

The model (as the estimator issue states it): a batch of 64 sequences; at step t the logits are
a row of a parameter table picked by the previous sample, k_t ~ Categorical (16 categories), and
a cost c_t = C[t, k_t] — one node and one cost per step, each step depending on the previous.

Two variants do the same work on a freshly run forward pass:
- ``hand-written``: REINFORCE with reward-to-go, −Σ_t log p(k_t)·G_t written out in torch
  (stack, reversed cumulative sum, product, mean), then ``backward()``;
- ``scgrad``: the forward recorded in ``with sg.Graph() as g``, then ``g.surrogate().backward()``.
Only the loss and the backward pass are timed (the forward is the same model in both; its
recording overhead is reported apart, as ``forward`` times). Variants alternate within each
round, in a shuffled order, so that a busy machine slows both alike; the ratio is of medians,
with a paired bootstrap interval. Writes the "Long sequences" section of RESULTS.md.
"""
from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch.distributions import Categorical

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _timing  # noqa: E402
from _results import made_by, update_section  # noqa: E402

import scgrad as sg  # noqa: E402

START, END = "## Long sequences", "<!-- end long sequences -->"
BATCH, CATEGORIES = 64, 16


def make_problem(T: int, seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """(the parameter table [16, 16], the cost table [T, 16])."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(CATEGORIES, CATEGORIES, generator=g).requires_grad_(), torch.randn(T, CATEGORIES, generator=g)


def forward_plain(table: torch.Tensor, costs: torch.Tensor) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    """The model without a graph: per-step log-probabilities and costs, T tensors [64] each."""
    k = torch.zeros(BATCH, dtype=torch.long)
    log_probs, step_costs = [], []
    for t in range(len(costs)):
        dist = Categorical(logits=table[k])
        k = dist.sample()
        log_probs.append(dist.log_prob(k))
        step_costs.append(costs[t, k])
    return log_probs, step_costs


def forward_graph(table: torch.Tensor, costs: torch.Tensor) -> sg.Graph:
    """The same model recorded as a graph: node k_t and cost c_t per step."""
    k = torch.zeros(BATCH, dtype=torch.long)
    with sg.Graph() as g:
        for t in range(len(costs)):
            k = g.sample(f"k{t}", Categorical(logits=table[k]))
            g.cost(f"c{t}", costs[t, k])
    return g


def hand_written_loss(log_probs: List[torch.Tensor], step_costs: List[torch.Tensor]) -> torch.Tensor:
    """REINFORCE with reward-to-go for costs: mean over the batch of Σ_t log p(k_t)·G_t."""
    costs = torch.stack(step_costs)                       # [T, B]
    to_go = costs.flip(0).cumsum(0).flip(0)               # G_t = Σ_{s ≥ t} c_s
    return (torch.stack(log_probs) * to_go).sum(0).mean()


def time_once(prepare: Callable[[], object], timed: Callable[[object], None]) -> float:
    """Seconds of ``timed(prepare())``, the preparation untimed."""
    state = prepare()
    start = time.perf_counter()
    timed(state)
    return time.perf_counter() - start


def measure(T: int, rounds: int, seed: int = 0) -> Dict[str, np.ndarray]:
    """Per-round seconds of each variant's loss + backward, and of each forward, at length T."""
    table, costs = make_problem(T, seed)
    variants = {
        "hand-written": (lambda: forward_plain(table, costs),
                         lambda state: hand_written_loss(*state).backward()),
        "scgrad": (lambda: forward_graph(table, costs), lambda g: g.surrogate().backward()),
    }
    forwards = {"hand-written forward": lambda: forward_plain(table, costs),
                "scgrad forward": lambda: forward_graph(table, costs)}
    times: Dict[str, List[float]] = {name: [] for name in [*variants, *forwards]}
    for name, (prepare, timed) in variants.items():  # warm-up
        time_once(prepare, timed)
    order = random.Random(seed)
    names = list(variants)
    for _ in range(rounds):
        order.shuffle(names)
        gc.collect()
        for name in names:
            times[name].append(time_once(*variants[name]))
        for name, forward in forwards.items():
            start = time.perf_counter()
            forward()
            times[name].append(time.perf_counter() - start)
        table.grad = None
    return {name: np.asarray(values) for name, values in times.items()}


def section(rows: List[dict], command: str) -> str:
    lines = [START, "",
             "The surrogate of T stochastic nodes in sequence (batch 64, one Categorical node of 16 "
             "categories and one cost per step, each step's logits picked by the previous sample), "
             "against REINFORCE with reward-to-go written by hand; median milliseconds of the loss + "
             "`backward()` on a fresh forward pass (one torch thread), ratio of medians with a 95% "
             "paired-bootstrap interval. The forward columns time the model itself: plain, and "
             "recorded in `with sg.Graph()` (the provenance tracking that finds each cost's nodes).", "",
             "| T | rounds | hand-written ms | scgrad ms | scgrad / hand-written | per step, scgrad µs "
             "| forward plain ms | forward recorded ms |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['T']:,} | {r['rounds']} | {r['hand']:.2f} | {r['ours']:.2f} | "
                     f"{r['ratio']:.2f} [{r['low']:.2f}, {r['high']:.2f}] | {r['ours'] * 1e3 / r['T']:.1f} | "
                     f"{r['fwd_plain']:.1f} | {r['fwd_graph']:.1f} |")
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        growth = (last["ours"] / first["ours"]) / (last["T"] / first["T"])
        verdict = "linear in T" if growth <= 1.5 else "faster than linear in T"
        lines += ["", f"From T = {first['T']:,} to {last['T']:,} scgrad's time grew {last['ours'] / first['ours']:.0f}× "
                  f"for {last['T'] // first['T']}× the steps (time per step × {growth:.2f}): {verdict}. "
                  "The surrogate itself makes the same number of torch calls whatever T "
                  "(`tests/test_long_sequences.py`)."]
    lines += [""] + made_by(command) + ["", END]
    return "\n".join(lines)


def main(argv: Sequence[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", default="10,100,1000", help="comma-separated T")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="T = 10, 50 and 5 rounds")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    lengths = [10, 50] if args.quick else [int(t) for t in args.lengths.split(",")]
    rounds = 5 if args.quick else args.rounds
    rows = []
    for T in lengths:
        t = measure(T, rounds)
        ratio, low, high = _timing.ratio_of_medians(t["scgrad"], t["hand-written"])
        rows.append({"T": T, "rounds": rounds, "hand": np.median(t["hand-written"]) * 1e3,
                     "ours": np.median(t["scgrad"]) * 1e3, "ratio": ratio, "low": low, "high": high,
                     "fwd_plain": np.median(t["hand-written forward"]) * 1e3,
                     "fwd_graph": np.median(t["scgrad forward"]) * 1e3})
        print(rows[-1], flush=True)
    command = "python benchmarks/long_sequences.py " + " ".join(sys.argv[1:] if argv is None else argv)
    update_section(Path(args.out), section(rows, command.strip()), START, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
