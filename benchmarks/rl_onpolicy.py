"""Benchmark scgrad's on-policy RL (PPO, VPG, TRPO) against Stable-Baselines3's PPO.

Run from the repository root, in pieces if you like (each piece can go in the background)::

    python benchmarks/rl_onpolicy.py --pair --algo ppo --env CartPole-v1 --seeds 0,1,2
    python benchmarks/rl_onpolicy.py --algo ppo --env HalfCheetah-v5 --seeds 0 --impl sb3 &
    python benchmarks/rl_onpolicy.py --report-only      # rewrite the section from saved runs

``--pair`` trains the scgrad and the SB3 run of each (algo, env, seed) at the same time, in two
processes of one torch thread each, so both see the same machine load; the pairs go one after
the other. When the faster run finishes, a filler (its own command again, result discarded)
keeps its core busy until the slower one ends, so the slower run does not get a quieter
machine for its last stretch (``_rl_common.run_pair``). Runs recorded before the filler existed
show "paired" in the table's timing column; their ratios understate the faster side's lead a
little.

Each run (implementation, algorithm, environment, seed, steps) trains with matched
hyperparameters and networks — SB3 PPO's defaults: 1 environment, 2048 steps per update,
10 epochs of minibatches of 64, Adam 3e-4, γ 0.99, GAE λ 0.95, clip 0.2, gradient norm 0.5,
64-64 tanh networks, log σ₀ = 0 — then evaluates 10 deterministic episodes. Its result goes to
``benchmarks/rl_onpolicy_runs/<run>.json``; the "On-policy RL" section of
``benchmarks/RESULTS.md`` (between ``<!-- rl_onpolicy:start -->`` and
``<!-- rl_onpolicy:end -->``) is then rewritten from every saved run: final return (mean ± std
over seeds) and env steps per second (training wall time, one torch thread) with the ratio.

VPG and TRPO run with Spinning Up's defaults (4000 steps per epoch); SB3 has neither, so their
rows compare with Spinning Up's published v3 curves only (HalfCheetah-v5 behaves as v3).
Needs ``pip install stable-baselines3`` for the SB3 runs (it keeps torch as it is).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing  # noqa: E402  (sibling helper module; benchmarks/ is not a package)
from _results import update_section  # noqa: E402
import _rl_common  # noqa: E402
from _rl_common import (RETURN_P_NOTE, SB3Agent, cell, command_line, footer, load_now, load_range,  # noqa: E402
                        load_runs, p_cell, save_run, single_thread, timing_mode)

from scgrad.rl.algos import registry as algorithms  # noqa: E402
from scgrad.rl.run.evaluate import Agent, evaluate  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_OUT, RUNS = HERE / "RESULTS.md", HERE / "rl_onpolicy_runs"
START_MARK, END_MARK = "<!-- rl_onpolicy:start -->", "<!-- rl_onpolicy:end -->"
PLAN = [("ppo", "CartPole-v1", 100_000), ("ppo", "HalfCheetah-v5", 300_000), ("ppo", "Hopper-v5", 300_000),
        ("vpg", "HalfCheetah-v5", 300_000), ("trpo", "HalfCheetah-v5", 300_000)]
EVAL_EPISODES, EVAL_SEED = 10, 1000

# scgrad's PPO set to SB3 PPO's defaults. SB3 steps one Adam (ε 1e-5) on pi_loss + 0.5·v_loss,
# clipping the joint gradient; scgrad's two Adams with the same lr, ε and vf_coef do the same
# (Adam is invariant to a loss's constant weight, which acts only through the clipping and ε).
# SB3 normalises advantages per minibatch.
SCGRAD_PPO = dict(num_envs=1, steps_per_epoch=2048, update_epochs=10, minibatch_size=64, pi_lr=3e-4, vf_lr=3e-4,
                  gamma=0.99, lam=0.95, clip_ratio=0.2, target_kl=None, max_grad_norm=0.5, hidden_sizes=(64, 64),
                  activation="tanh", log_std_init=0.0, normalize_advantages=True, vf_coef=0.5, adam_eps=1e-5,
                  normalize_minibatch_advantages=True)
SB3_PPO = dict(n_steps=2048, batch_size=64, n_epochs=10, learning_rate=3e-4, gamma=0.99, gae_lambda=0.95,
               clip_range=0.2, ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5, normalize_advantage=True)


def run_scgrad(algo: str, env: str, seed: int, steps: int) -> Dict[str, Any]:
    algorithm = algorithms.get(algo)
    settings = SCGRAD_PPO if algo == "ppo" else {}
    config = algorithm.config(env=env, seed=seed, steps=steps, **settings)
    start = time.perf_counter()
    result = algorithm.train(config)
    seconds = time.perf_counter() - start
    agent = Agent(algo, config, result.model, result.normalizer)
    steps_done = int(result.progress[-1]["TotalEnvInteracts"])
    return {"seconds": seconds, "steps": steps_done, "returns": evaluate(agent, EVAL_EPISODES, EVAL_SEED)}


def run_sb3(algo: str, env: str, seed: int, steps: int) -> Dict[str, Any]:
    if algo != "ppo":
        raise SystemExit(f"SB3 has no {algo}; run --impl scgrad for it")
    try:
        from stable_baselines3 import PPO
        from stable_baselines3.common.env_util import make_vec_env
    except ImportError:
        raise SystemExit("the SB3 runs need stable-baselines3: pip install stable-baselines3") from None
    policy_kwargs = dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=torch.nn.Tanh, log_std_init=0.0)
    model = PPO("MlpPolicy", make_vec_env(env, n_envs=1, seed=seed), seed=seed, device="cpu", verbose=0,
                policy_kwargs=policy_kwargs, **SB3_PPO)
    start = time.perf_counter()
    model.learn(steps)
    seconds = time.perf_counter() - start
    # SB3 finishes its last rollout (it rounds the budget up to whole rollouts; scgrad trains exactly
    # the budget, its last rollout cut short)
    return {"seconds": seconds, "steps": int(model.num_timesteps),
            "returns": evaluate(SB3Agent(model, env), EVAL_EPISODES, EVAL_SEED)}


def run_piece(impl: str, algo: str, env: str, seed: int, steps: int, runs: Path = RUNS, command: str = "",
              paired: bool = False, filled: bool = False) -> None:
    single_thread()
    print(f"{impl} {algo} {env} seed {seed}, {steps} steps ...", file=sys.stderr, flush=True)
    load_start = load_now()
    result = (run_scgrad if impl == "scgrad" else run_sb3)(algo, env, seed, steps)
    record = {"impl": impl, "algo": algo, "env": env, "seed": seed, "command": command, "paired": paired,
              "filled": filled,
              "load": {"start": load_start, "end": load_now()}, **result,
              "steps_per_s": result["steps"] / result["seconds"], "machine": _timing.machine()}
    save_run(runs, f"{impl}_{algo}_{env.replace('/', '-')}_s{seed}_{steps}.json", record)
    print(f"  return {np.mean(result['returns']):.1f}, {record['steps_per_s']:.0f} steps/s", file=sys.stderr)


def run_pair(algo: str, env: str, seed: int, steps: int, runs: Path, command: str) -> None:
    """The scgrad and the SB3 run of (algo, env, seed) at the same time, each in its own process."""
    argv = ["--algo", algo, "--env", env, "--seeds", str(seed), "--steps", str(steps), "--runs", str(runs),
            "--no-report", "--as-pair", "--filled", "--command", command]
    _rl_common.run_pair(Path(__file__).resolve(), argv, f"{algo} {env} seed {seed}", fill=True)


# ============================================================================ report
def render(runs: List[Dict[str, Any]]) -> str:
    lines = [START_MARK, "## On-policy RL (PPO, VPG, TRPO) against Stable-Baselines3", "",
             "Final return: mean over 10 deterministic evaluation episodes per run, then mean ± std over "
             "seeds. " + RETURN_P_NOTE +
             "Steps/s: environment steps per second of training wall time (one torch thread; "
             "evaluation excluded), mean ± std over seeds. PPO uses SB3 PPO's default hyperparameters "
             "on both sides; VPG and TRPO use Spinning Up's defaults (no SB3 counterpart). Timing *paired*: "
             "the scgrad and SB3 runs of each seed trained at the same time, one process each, so both saw "
             "the same machine load, and *filled*: the first to finish was replaced by a copy of itself until "
             "the other finished, so both saw that load to the end (unfilled, the slower side gets a quieter "
             "machine at the end, which favours it); *alone*: one run at a time. Load: the 1-minute load average at the runs' starts "
             "and ends.", "",
             "| algo | env | steps | seeds | scgrad return | SB3 return | return p | scgrad steps/s | SB3 steps/s | speed ratio "
             "| timing | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for algo, env, _ in PLAN:
        ours = [r for r in runs if r["impl"] == "scgrad" and r["algo"] == algo and r["env"] == env]
        sb3 = [r for r in runs if r["impl"] == "sb3" and r["algo"] == algo and r["env"] == env]
        if not ours and not sb3:
            continue
        rate = lambda rs: [r["steps_per_s"] for r in rs]  # noqa: E731
        ret = lambda rs: [float(np.mean(r["returns"])) for r in rs]  # noqa: E731
        ratio = f"{np.mean(rate(ours)) / np.mean(rate(sb3)):.2f}×" if ours and sb3 else "—"
        steps = sorted({r["steps"] for r in ours + sb3})
        seeds = sorted({r["seed"] for r in ours + sb3})
        lines.append(f"| {algo} | {env} | {', '.join(f'{s:,}' for s in steps)} | {','.join(map(str, seeds))} | "
                     f"{cell(ret(ours), 1)} | {cell(ret(sb3), 1)} | {p_cell(ret(ours), ret(sb3))} | {cell(rate(ours))} | {cell(rate(sb3))} "
                     f"| {ratio} | {timing_mode(ours + sb3)} | {load_range(ours + sb3)} |")
    lines += [*footer(runs, "benchmarks/rl_onpolicy_runs/"), END_MARK]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algo", default="ppo,vpg,trpo", help="comma-separated: ppo, vpg, trpo")
    parser.add_argument("--env", default=None, help="comma-separated env ids (default: the plan's)")
    parser.add_argument("--impl", default="scgrad,sb3", help="comma-separated: scgrad, sb3")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=None, help="override the plan's step budget")
    parser.add_argument("--report-only", action="store_true", help="only rewrite the section from saved runs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--runs", type=Path, default=RUNS, help="folder of saved runs (one JSON file each)")
    parser.add_argument("--pair", action="store_true",
                        help="train the scgrad and SB3 runs of each seed at the same time (PPO; others run alone)")
    parser.add_argument("--no-report", action="store_true", help="save the runs, leave RESULTS.md alone")
    parser.add_argument("--as-pair", action="store_true", help=argparse.SUPPRESS)  # a --pair child
    parser.add_argument("--filled", action="store_true", help=argparse.SUPPRESS)  # ... with a filler
    parser.add_argument("--command", default=None, help=argparse.SUPPRESS)  # the parent's command line
    args = parser.parse_args(argv)
    given = argv if argv is not None else sys.argv[1:]
    command = args.command or command_line("rl_onpolicy.py", given)
    if not args.report_only:
        algos, impls = args.algo.split(","), args.impl.split(",")
        envs = args.env.split(",") if args.env else None
        for algo, env, steps in PLAN:
            if algo not in algos or (envs is not None and env not in envs):
                continue
            for seed in map(int, args.seeds.split(",")):
                if args.pair and algo == "ppo":
                    run_pair(algo, env, seed, args.steps or steps, args.runs, command)
                    continue
                for impl in impls:
                    if impl != "sb3" or algo == "ppo":
                        run_piece(impl, algo, env, seed, args.steps or steps, args.runs, command, args.as_pair,
                                  args.filled)
    if not args.no_report:
        update_section(args.out, render(load_runs(args.runs)), START_MARK, END_MARK)


if __name__ == "__main__":
    main()
