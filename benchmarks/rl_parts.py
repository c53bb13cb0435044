"""The RL code's speed choices, each timed against the alternatives it was chosen over.

    python benchmarks/rl_parts.py              # writes the rl_parts section of RESULTS.md

Five comparisons, each on one torch thread, its variants timed in interleaved rounds (a fresh
shuffled order each round, ``_timing.interleaved``) and summarised by median per call and the
ratio of medians to the variant scgrad uses, with a paired bootstrap interval:

1. optimiser: a PPO minibatch step (two 64-64 tanh networks, observations 17, actions 6,
   batch 64: forward, backward, joint gradient clipping, Adam step) with ``FlatAdam`` and
   ``optim.clip_grad_norm_``, against ``torch.optim.Adam(fused=True)`` and
   ``torch.nn.utils.clip_grad_norm_`` over the separate tensors;
2. clipping alone: ``optim.clip_grad_norm_`` against torch's on FlatAdam's flat gradients;
3. acting: the rollout's policy at batch 1 (a 64-64 tanh Gaussian mean, 17 → 6):
   ``numpy_forward``, ``forward_fast`` and the module call, under ``torch.inference_mode``;
4. freezing the critics for SAC's actor step (256-256, batch 100, 17 → 6; forward and
   backward): ``offpolicy.frozen`` (toggling ``requires_grad``), against leaving the critics'
   gradients on and against ``torch.func.functional_call`` with detached parameters;
5. subnormal floats: SAC's whole gradient step (Pendulum-v1's shapes, 256-256, batch 100)
   after ``--warm-updates`` updates on random transitions, with and without
   ``torch.set_flush_denormal``; the networks and optimisers are restored (untimed) before
   every timed block, so that flushing in one block cannot clean the next one's state.
"""
from __future__ import annotations

import argparse
import copy
import gc
import random
import sys
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing  # noqa: E402
from _results import made_by, update_section  # noqa: E402
from _rl_common import command_line, positive, single_thread  # noqa: E402
from rl_offpolicy_bound import filled_buffer  # noqa: E402

from scgrad.rl.nets.mlp import forward_fast, mlp, numpy_forward
from scgrad.rl.algos.offpolicy import frozen  # noqa: E402
from scgrad.rl.nets.offpolicy import EnsembleQ, SquashedGaussianActor  # noqa: E402
from scgrad.rl.optim import FlatAdam, clip_grad_norm_  # noqa: E402
from scgrad.rl.algos.sac import SAC, SACConfig  # noqa: E402

START_MARK, END_MARK = "<!-- rl_parts:start -->", "<!-- rl_parts:end -->"
OBS, ACT = 17, 6  # HalfCheetah's dimensions
Timings = Dict[str, np.ndarray]  # variant -> per-call µs, one entry per round


# ============================================================================ 1, 2: optimiser
def ppo_minibatch_step(flat: bool) -> Callable[[], None]:
    """One PPO-sized minibatch step on a policy mean and a value network."""
    torch.manual_seed(0)
    pi, v = mlp([OBS, 64, 64, ACT]), mlp([OBS, 64, 64, 1])
    obs, target = torch.randn(64, OBS), torch.randn(64, ACT)
    if flat:
        optimizers = [FlatAdam([(pi, 3e-4)]), FlatAdam([(v, 1e-3)])]
        clip = clip_grad_norm_
    else:
        optimizers = [torch.optim.Adam(pi.parameters(), 3e-4, fused=True),
                      torch.optim.Adam(v.parameters(), 1e-3, fused=True)]
        clip = torch.nn.utils.clip_grad_norm_
    params = [p for o in optimizers for g in o.param_groups for p in g["params"]]

    def step() -> None:
        for optimizer in optimizers:
            optimizer.zero_grad()
        ((pi(obs) - target).square().mean() + v(obs).square().mean()).backward()
        clip(params, 0.5)
        for optimizer in optimizers:
            optimizer.step()
    return step


def clip_only(ours: bool) -> Callable[[], None]:
    """Gradient clipping of FlatAdam's two flat gradients (a policy's and a value's)."""
    torch.manual_seed(0)
    flats = [FlatAdam([(mlp([OBS, 64, 64, ACT]), 3e-4)]), FlatAdam([(mlp([OBS, 64, 64, 1]), 1e-3)])]
    params = [g["params"][0] for o in flats for g in o.param_groups]
    for p in params:
        p.grad.normal_()
    clip = clip_grad_norm_ if ours else torch.nn.utils.clip_grad_norm_
    return lambda: clip(params, 1e6)  # a bound never reached: the same work every call


# ============================================================================ 3: acting
def acting() -> Dict[str, Callable[[], None]]:
    """The three ways to evaluate a rollout's policy mean on one observation."""
    torch.manual_seed(0)
    net = mlp([OBS, 64, 64, ACT])
    obs_t, obs_np = torch.randn(1, OBS), np.random.default_rng(0).standard_normal((1, OBS), np.float32)
    fn = numpy_forward(net)

    def module_call() -> None:
        with torch.inference_mode():
            net(obs_t)

    def fast() -> None:
        with torch.inference_mode():
            forward_fast(net, obs_t)
    return {"numpy_forward": lambda: fn(obs_np), "forward_fast": fast, "net(x)": module_call}


# ============================================================================ 4: frozen critics
def actor_step(how: str) -> Callable[[], None]:
    """Forward and backward of SAC's actor loss with the critics frozen ``how``."""
    torch.manual_seed(0)
    pi = SquashedGaussianActor(OBS, ACT, (256, 256), nn.ReLU)
    q = EnsembleQ(OBS, ACT, (256, 256), nn.ReLU, 2)
    obs = torch.randn(100, OBS)

    def loss(critic: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        action, log_p = pi.sample(obs)
        return (0.2 * log_p - critic(obs, action).amin(0)).mean()

    def frozen_step() -> None:
        with frozen(q):
            loss(q).backward()

    def gradients_on() -> None:
        loss(q).backward()
        q.zero_grad(set_to_none=True)

    def functional() -> None:
        detached = {name: p.detach() for name, p in q.named_parameters()}
        loss(lambda o, a: torch.func.functional_call(q, detached, (o, a))).backward()

    return {"frozen": frozen_step, "gradients_on": gradients_on, "functional_call": functional}[how]


# ============================================================================ 5: subnormals
def subnormal_share(optimizers: Mapping[str, torch.optim.Optimizer]) -> float:
    """Fraction of the optimisers' state entries (Adam's moments) that are subnormal."""
    tiny, count, total = torch.finfo(torch.float32).tiny, 0, 0
    for optimizer in optimizers.values():
        for state in optimizer.state.values():
            for value in state.values():
                if torch.is_tensor(value) and value.dtype == torch.float32 and value.numel() > 1:
                    magnitude = value.abs()
                    count += int(((magnitude > 0) & (magnitude < tiny)).sum())
                    total += value.numel()
    return count / max(total, 1)


def sac_denormals(warm_updates: int, rounds: int, inner: int) -> Dict[str, object]:
    """SAC gradient steps with and without flushing, from the same saved state every block."""
    if not torch.set_flush_denormal(False):  # probes support (the default is off): nothing to compare
        return {"supported": False}
    torch.manual_seed(0)
    config = SACConfig(env="Pendulum-v1", batch_size=100)
    model = SAC.make_model(config, gym.spaces.Box(-np.inf, np.inf, (3,)), gym.spaces.Box(-2.0, 2.0, (1,)))
    update, buffer = SAC(config, model), filled_buffer(3, 1, 15_000)
    for _ in range(warm_updates):
        update.update(buffer.sample(config.batch_size))
    share = subnormal_share(update.optimizers)
    saved = copy.deepcopy((model.state_dict(), {k: o.state_dict() for k, o in update.optimizers.items()}))

    def block(flush: bool) -> float:
        model.load_state_dict(saved[0])
        for name, optimizer in update.optimizers.items():
            optimizer.load_state_dict(copy.deepcopy(saved[1][name]))
        gc.collect()
        torch.set_flush_denormal(flush)
        try:
            return _timing.time_block(lambda: update.update(buffer.sample(config.batch_size)), inner)
        finally:
            torch.set_flush_denormal(False)

    times: Dict[str, List[float]] = {"flushed": [], "not flushed": []}
    order = random.Random(0)
    for _ in range(rounds):
        for name in order.sample(sorted(times), 2):
            times[name].append(block(name == "flushed"))
    return {"supported": True, "share": share, "times": {k: np.asarray(v) for k, v in times.items()}}


# ============================================================================ report
def table(times: Timings, ours: str) -> List[str]:
    """Median µs per call, interquartile range and the ratio to ``ours`` for each variant."""
    lines = ["| variant | median per call (µs) | IQR (µs) | time / scgrad's [95% CI] |", "|---|---|---|---|"]
    for name, values in times.items():
        s = _timing.spread(values)
        ratio, low, high = _timing.ratio_of_medians(values, times[ours])
        mark = " (scgrad)" if name == ours else ""
        lines.append(f"| {name}{mark} | {s.median:,.1f} | {s.iqr:,.1f} | {ratio:.2f} [{low:.2f}, {high:.2f}] |")
    return lines


def render(parts: Sequence[Dict[str, object]], denormals: Dict[str, object], warm_updates: int,
           command: str) -> str:
    """The whole section, marks included."""
    lines = [START_MARK, "## RL building blocks against their alternatives", "",
             "Each comparison runs its variants in interleaved rounds on one torch thread (see the "
             "docstring of `benchmarks/rl_parts.py` for the exact work timed); ratios above 1 mean the "
             "alternative takes longer than what scgrad uses.", ""]
    for part in parts:
        lines += [f"**{part['title']}** ({part['rounds']} rounds)", "", *table(part["times"], part["ours"]), ""]
    if denormals["supported"]:
        lines += [f"**SAC gradient step, subnormals flushed or not** (after {warm_updates:,} updates; "
                  f"{denormals['share']:.1%} of Adam's moment entries are subnormal then)", "",
                  *table(denormals["times"], "flushed"), ""]
    else:
        lines += ["**SAC gradient step, subnormals flushed or not**: not measured, this CPU cannot flush "
                  "subnormals (`torch.set_flush_denormal` returned False).", ""]
    lines += [*made_by(command), END_MARK]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "RESULTS.md")
    parser.add_argument("--rounds", type=positive(), default=30, help="interleaved rounds per comparison")
    parser.add_argument("--scale", type=positive(float), default=1.0, help="multiplies the calls per timed block")
    parser.add_argument("--warm-updates", type=positive(), default=3000, help="SAC updates before the subnormal test")
    args = parser.parse_args(argv)
    single_thread()
    inner = lambda n: max(1, int(n * args.scale))  # noqa: E731
    plan = [("PPO minibatch step: FlatAdam against fused Adam over the separate tensors", "FlatAdam",
             {"FlatAdam": ppo_minibatch_step(True), "Adam(fused=True)": ppo_minibatch_step(False)}, 50),
            ("Joint gradient clipping of two flat gradients", "optim.clip_grad_norm_",
             {"optim.clip_grad_norm_": clip_only(True), "torch.nn.utils.clip_grad_norm_": clip_only(False)}, 500),
            ("Acting at batch 1: a 64-64 tanh policy mean", "numpy_forward", acting(), 500),
            ("SAC actor step (forward and backward), critics frozen", "frozen",
             {how: actor_step(how) for how in ("frozen", "gradients_on", "functional_call")}, 20)]
    parts = [{"title": title, "ours": ours, "rounds": args.rounds,
              "times": _timing.interleaved(variants, rounds=args.rounds, inner=inner(calls), warmup=inner(calls))}
             for title, ours, variants, calls in plan]
    denormals = sac_denormals(args.warm_updates, args.rounds // 3 or 1, inner(20))
    section = render(parts, denormals, args.warm_updates,
                     command_line("rl_parts.py", argv if argv is not None else sys.argv[1:]))
    update_section(args.out, section, START_MARK, END_MARK)
    print(section)


if __name__ == "__main__":
    main()
