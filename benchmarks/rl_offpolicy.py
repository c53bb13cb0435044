"""Benchmark scgrad's off-policy RL (SAC, TD3, DDPG) against Stable-Baselines3's.

Run from the repository root, in pieces if you like (each piece can go in the background)::

    python benchmarks/rl_offpolicy.py --pair --algo sac --env HalfCheetah-v5 --seeds 0,1
    python benchmarks/rl_offpolicy.py --algo td3 --env Hopper-v5 --seeds 0 --impl sb3 --no-report &
    python benchmarks/rl_offpolicy.py --report-only      # rewrite the section from saved runs

Each run (implementation, algorithm, environment, seed, steps) trains with the matched settings
below, then evaluates 10 deterministic episodes (``reset(seed=1000 + i)``). Its result goes to
``benchmarks/rl_offpolicy_runs/<run>.json``; the "Off-policy RL" section of
``benchmarks/RESULTS.md`` (between ``<!-- rl_offpolicy:start -->`` and
``<!-- rl_offpolicy:end -->``) is then rewritten from every saved run: final return (mean ± std
over seeds) and env steps per second (training wall time, one torch thread) with the ratio
scgrad/SB3.

``--pair`` trains the scgrad and the SB3 run of each (algo, env, seed) at the same time, in two
processes of one torch thread each, so that both speeds are measured under the same machine
load; the final numbers are taken so. The faster run finishes first and the slower one then has
the machine to itself for the rest of its run, which favours the slower side: a paired ratio is,
if anything, an underestimate of the faster side's lead. Every run records the load average
(``os.getloadavg``) and the Unix time at its start and end (the load is shown in the table).

Matched settings, passed explicitly to both sides (neither library's defaults are relied on);
RL-Zoo-style for MuJoCo, Spinning Up names on scgrad's side:

=====================  ==================================  ===================================
setting                scgrad (``scgrad.rl.algos.<algo>``) SB3
=====================  ==================================  ===================================
learning rate          pi_lr = q_lr (= alpha_lr for SAC)   learning_rate (actor, critic, α)
batch                  batch_size 256                      batch_size 256
replay buffer          replay_size 1e6                     buffer_size 1e6
random-action phase    start_steps = N                     learning_starts = N
first update           update_after = N + 1                learning_starts = N
updates per step       update_every 1                      train_freq 1, gradient_steps 1
target averaging       polyak = 1 − τ = 0.995              tau 0.005
discount               gamma 0.99                          gamma 0.99
networks               hidden_sizes, activation relu       net_arch, activation_fn ReLU
SAC                    [256, 256]; alpha None (learned),   [256, 256], 2 critics; ent_coef
                       alpha_init α₀ = 1,                  "auto_1.0", target_entropy −dim A
                       target_entropy −dim A
TD3                    [400, 300]; act_noise 0.1,          [400, 300], 2 critics;
                       target_noise 0.2, noise_clip 0.5,   NormalActionNoise σ 0.1,
                       policy_delay 2                      target_policy_noise 0.2,
                                                           target_noise_clip 0.5, policy_delay 2
DDPG                   [400, 300]; act_noise 0.1           [400, 300], 1 critic; σ 0.1
=====================  ==================================  ===================================

with N = 10,000 (``--learning-starts``), lr 3e-4 for SAC and 1e-3 for TD3/DDPG. Both sides act
in [−1, 1] and map actions affinely to the environment's bounds (±1 for HalfCheetah and
Hopper), so σ 0.1 is the same noise on both, added to μ(s) and clipped to [−1, 1]; both use
Adam (β 0.9, 0.999, ε 1e-8), uniform minibatches drawn with replacement, no observation
normalisation and no gradient clipping; both store terminated and time-limit-truncated
transitions apart (SB3's ``handle_timeout_termination``) and bootstrap through a truncation;
both move the targets (TD3/DDPG: actor and critics) on actor steps only, and SAC's losses use α
from before its step, whose loss is −log α·(log π + target) on both sides.

The networks match layer for layer (SAC's actor: a trunk, then mean and log σ clamped to
[−20, 2]; SB3's two head layers are scgrad's one output layer split in two) and so does their
initialisation: SB3's networks are re-initialised after construction as scgrad initialises its
own (orthogonal, gain √2 inside, 0.01 on the actors' last layers, 1 on the critics', zero
biases; targets copied), since PyTorch's default initialisation, SB3's, is not a setting
either library exposes.

The start phase: SB3 takes uniform random actions while ``num_timesteps < learning_starts``,
then makes one gradient step after each step once ``num_timesteps > learning_starts``: N
random steps and ``steps − N`` updates in all. scgrad's random phase is ``t < start_steps``
(the same N steps), and its updates begin when the buffer holds ``update_after`` transitions,
so update_after = N + 1 gives the same ``steps − N`` updates. SB3 also adds its action noise
to the random start-phase actions (then clips); here that noise is silent during the start
phase, as scgrad's random actions are plain uniform.

Timing: the clock runs over everything training needs — environment, networks, buffer and the
training loop (``scgrad.rl.algos.<algo>.<algo>(...)`` returning; SB3's model construction and
``learn``) — and stops before the evaluation episodes. scgrad's per-epoch test episodes are off
(``num_test_episodes=0``), so no evaluation is inside its clock, and it writes no files
(``out_dir=None``); SB3 runs with ``verbose=0`` and no callbacks.

Remaining differences, none of which we could remove without editing either library, are
listed in :data:`MISMATCHES` (and shown under the table); the random streams differ too, so the
same seed gives different runs on the two sides. Needs ``pip install stable-baselines3`` for
the SB3 runs (it keeps torch as it is).
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing  # noqa: E402  (sibling helper module; benchmarks/ is not a package)
from _results import update_section  # noqa: E402
import _rl_common  # noqa: E402
from _rl_common import (RETURN_P_NOTE, SB3Agent, cell, command_line, footer, load_now, load_range,  # noqa: E402
                        load_runs, p_cell, save_run, single_thread, timing_mode)

from scgrad.rl.run.evaluate import Agent, evaluate  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_OUT, RUNS = HERE / "RESULTS.md", HERE / "rl_offpolicy_runs"
START_MARK, END_MARK = "<!-- rl_offpolicy:start -->", "<!-- rl_offpolicy:end -->"
PLAN = [("sac", "HalfCheetah-v5", 100_000), ("sac", "Hopper-v5", 100_000), ("td3", "HalfCheetah-v5", 100_000),
        ("td3", "Hopper-v5", 100_000), ("ddpg", "HalfCheetah-v5", 100_000)]
ALGOS, IMPLS = ("sac", "td3", "ddpg"), ("scgrad", "sb3")
EVAL_EPISODES, EVAL_SEED = 10, 1000
LEARNING_STARTS = 10_000
STEPS_PER_EPOCH = 5_000  # scgrad's logging period only (no test episodes, no files): any divisor of steps

# The matched settings, in neutral terms; `scgrad_settings` and `sb3_model` map them to each side.
SETTINGS: Dict[str, Dict[str, Any]] = {
    "sac": {"lr": 3e-4, "batch": 256, "buffer": 1_000_000, "tau": 0.005, "gamma": 0.99, "hidden": (256, 256),
            "critics": 2, "alpha_init": 1.0},
    "td3": {"lr": 1e-3, "batch": 256, "buffer": 1_000_000, "tau": 0.005, "gamma": 0.99, "hidden": (400, 300),
            "critics": 2, "act_noise": 0.1, "target_noise": 0.2, "noise_clip": 0.5, "policy_delay": 2},
    "ddpg": {"lr": 1e-3, "batch": 256, "buffer": 1_000_000, "tau": 0.005, "gamma": 0.99, "hidden": (400, 300),
             "critics": 1, "act_noise": 0.1, "policy_delay": 1},
}
ACTIVATION = "relu"

# What still differs between the two sides with the settings above (shown under the table).
MISMATCHES: List[str] = [
    "TD3's delayed actor step falls on critic steps 1, 3, 5, … in scgrad and 2, 4, 6, … in SB3 "
    "(one actor step more for scgrad in a run)",
    "SAC: SB3 adds 1e-6 inside log(1 − tanh²) in the squashed log-density, scgrad's is exact; "
    "SB3 halves the critic loss (Adam is scale-invariant up to its ε)",
    "SB3 keeps MuJoCo observations as float64 in its buffer and casts each minibatch to float32; "
    "scgrad stores float32",
]


# ============================================================================ runs
def action_dim(env: str) -> int:
    """Size of ``env``'s (1-D Box) action space."""
    import gymnasium as gym
    probe = gym.make(env)
    try:
        return int(np.prod(probe.action_space.shape))
    finally:
        probe.close()


def scgrad_settings(algo: str, env: str, seed: int, steps: int, learning_starts: int) -> Dict[str, Any]:
    """The keyword settings of ``scgrad.rl.algos.<algo>.<algo>(env, **settings)`` for the matched run."""
    h = SETTINGS[algo]
    settings = {"seed": seed, "steps": steps, "steps_per_epoch": STEPS_PER_EPOCH if steps % STEPS_PER_EPOCH == 0
                else steps, "num_test_episodes": 0, "hidden_sizes": tuple(h["hidden"]), "activation": ACTIVATION,
                "batch_size": h["batch"], "replay_size": h["buffer"], "start_steps": learning_starts,
                "update_after": learning_starts + 1, "update_every": 1, "polyak": 1.0 - h["tau"], "gamma": h["gamma"],
                "pi_lr": h["lr"], "q_lr": h["lr"]}
    if algo == "sac":
        settings.update(alpha=None, alpha_init=h["alpha_init"], alpha_lr=h["lr"],
                        target_entropy=-float(action_dim(env)))
    else:
        settings.update(act_noise=h["act_noise"])
    if algo == "td3":
        settings.update(target_noise=h["target_noise"], noise_clip=h["noise_clip"], policy_delay=h["policy_delay"])
    return settings


def run_scgrad(algo: str, env: str, seed: int, steps: int, learning_starts: int) -> Dict[str, Any]:
    """Train scgrad's ``algo`` (clock: the whole training call) and evaluate it."""
    settings = scgrad_settings(algo, env, seed, steps, learning_starts)
    train = getattr(importlib.import_module(f"scgrad.rl.algos.{algo}"), algo)
    start = time.perf_counter()
    result = train(env, preset="none", progress=False, **settings)  # these settings, nothing filled in
    seconds = time.perf_counter() - start
    agent = Agent(algo, result.config, result.model, result.normalizer)
    steps_done = int(result.progress[-1]["TotalEnvInteracts"])
    return {"seconds": seconds, "steps": steps_done, "settings": _jsonable(settings),
            "returns": evaluate(agent, EVAL_EPISODES, EVAL_SEED)}


def sb3_model(algo: str, env: str, seed: int, learning_starts: int):
    """SB3's ``algo`` on ``env`` with the matched settings (not trained yet)."""
    try:
        from stable_baselines3 import DDPG, SAC, TD3
        from stable_baselines3.common.env_util import make_vec_env
        from stable_baselines3.common.noise import NormalActionNoise
    except ImportError:
        raise SystemExit("the SB3 runs need stable-baselines3: pip install stable-baselines3") from None
    h = SETTINGS[algo]
    dim = action_dim(env)
    policy_kwargs = {"net_arch": list(h["hidden"]), "activation_fn": torch.nn.ReLU, "n_critics": h["critics"]}
    common = {"learning_rate": h["lr"], "buffer_size": h["buffer"], "learning_starts": learning_starts,
              "batch_size": h["batch"], "tau": h["tau"], "gamma": h["gamma"], "train_freq": 1, "gradient_steps": 1,
              "policy_kwargs": policy_kwargs, "seed": seed, "device": "cpu", "verbose": 0}
    vec_env = make_vec_env(env, n_envs=1, seed=seed)
    if algo == "sac":
        model = SAC("MlpPolicy", vec_env, ent_coef=f"auto_{h['alpha_init']}", target_entropy=-float(dim),
                    target_update_interval=1, **common)
        init_like_scgrad(model.policy)
        return model

    class NoiseAfterStart(NormalActionNoise):
        """Gaussian exploration noise that is silent in the random-action start phase."""

        model = None

        def __call__(self) -> np.ndarray:
            if self.model is not None and self.model.num_timesteps < learning_starts:
                return np.zeros(dim, dtype=np.float32)
            return super().__call__()

    noise = NoiseAfterStart(np.zeros(dim), np.full(dim, h["act_noise"]))
    if algo == "td3":
        model = TD3("MlpPolicy", vec_env, action_noise=noise, policy_delay=h["policy_delay"],
                    target_policy_noise=h["target_noise"], target_noise_clip=h["noise_clip"], **common)
    else:
        model = DDPG("MlpPolicy", vec_env, action_noise=noise, **common)  # policy delay 1, no smoothing
    noise.model = model
    init_like_scgrad(model.policy)
    return model


def _init_chain(linears: Sequence[torch.nn.Linear], output_gain: float) -> None:
    """scgrad's ``networks.mlp`` initialisation of a chain of layers: orthogonal weights, gain √2
    inside and ``output_gain`` on the last layer, zero biases."""
    for i, layer in enumerate(linears):
        torch.nn.init.orthogonal_(layer.weight, gain=output_gain if i == len(linears) - 1 else np.sqrt(2.0))
        torch.nn.init.zeros_(layer.bias)


def init_like_scgrad(policy) -> None:
    """Re-initialise an SB3 SAC/TD3/DDPG policy's networks as scgrad initialises its own
    (``scgrad.rl.nets.offpolicy``): actors' last layers gain 0.01, critics' gain 1; the
    target networks then copy them, as at construction."""
    linears = lambda module: [m for m in module.modules() if isinstance(m, torch.nn.Linear)]  # noqa: E731
    with torch.no_grad():
        actor = policy.actor
        if hasattr(actor, "latent_pi"):  # SAC: trunk, then the mean and log-std heads (one layer in scgrad)
            _init_chain(linears(actor.latent_pi), np.sqrt(2.0))
            for head in (actor.mu, actor.log_std):
                _init_chain([head], 0.01)
        else:  # TD3, DDPG: μ(s) = tanh(MLP(s))
            _init_chain(linears(actor.mu), 0.01)
        for q_net in policy.critic.q_networks:
            _init_chain(linears(q_net), 1.0)
        policy.critic_target.load_state_dict(policy.critic.state_dict())
        if hasattr(policy, "actor_target"):
            policy.actor_target.load_state_dict(policy.actor.state_dict())


def run_sb3(algo: str, env: str, seed: int, steps: int, learning_starts: int) -> Dict[str, Any]:
    """Train SB3's ``algo`` (clock: model construction and ``learn``) and evaluate it."""
    start = time.perf_counter()
    model = sb3_model(algo, env, seed, learning_starts)
    model.learn(steps)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "steps": int(model.num_timesteps),
            "settings": {"learning_starts": learning_starts, **_jsonable(SETTINGS[algo])},
            "returns": evaluate(SB3Agent(model, env), EVAL_EPISODES, EVAL_SEED)}


def _jsonable(settings: Dict[str, Any]) -> Dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}


def run_name(impl: str, algo: str, env: str, seed: int, steps: int, learning_starts: int) -> str:
    """File name of a run's record (the start phase named only when it is not the default)."""
    starts = "" if learning_starts == LEARNING_STARTS else f"_ls{learning_starts}"
    return f"{impl}_{algo}_{env.replace('/', '-')}_s{seed}_{steps}{starts}.json"


def run_piece(impl: str, algo: str, env: str, seed: int, steps: int, learning_starts: int = LEARNING_STARTS,
              runs: Path = RUNS, command: str = "", paired: bool = False) -> Dict[str, Any]:
    """Train and evaluate one run in this process and save its record."""
    single_thread()
    print(f"{impl} {algo} {env} seed {seed}, {steps} steps ...", file=sys.stderr, flush=True)
    load_start, wall_start = load_now(), time.time()
    result = (run_scgrad if impl == "scgrad" else run_sb3)(algo, env, seed, steps, learning_starts)
    load_end, wall_end = load_now(), time.time()
    record = {"impl": impl, "algo": algo, "env": env, "seed": seed, "budget": steps,
              "learning_starts": learning_starts, "command": command, "paired": paired, **result,
              "steps_per_s": result["steps"] / result["seconds"],
              "load": {"start": load_start, "end": load_end},
              "wall_clock": [round(wall_start, 1), round(wall_end, 1)],  # Unix times: a pair's overlap
              "machine": _timing.machine()}
    save_run(runs, run_name(impl, algo, env, seed, steps, learning_starts), record)
    print(f"  {impl} {algo} {env} seed {seed}: return {np.mean(result['returns']):.1f}, "
          f"{record['steps_per_s']:.1f} steps/s, load {load_start[0]:.2f} -> {load_end[0]:.2f}",
          file=sys.stderr, flush=True)
    return record


def run_pair(algo: str, env: str, seed: int, steps: int, learning_starts: int, runs: Path, command: str) -> None:
    """The scgrad and the SB3 run of (algo, env, seed) at the same time, each in its own process."""
    argv = ["--algo", algo, "--env", env, "--seeds", str(seed), "--steps", str(steps), "--learning-starts",
            str(learning_starts), "--runs", str(runs), "--no-report", "--as-pair", "--command", command]
    _rl_common.run_pair(Path(__file__).resolve(), argv, f"{algo} {env} seed {seed}", IMPLS)


# ============================================================================ report
Key = Tuple[str, str, int, int]  # algo, env, budget, learning_starts


def _row_keys(runs: List[Dict[str, Any]]) -> List[Key]:
    """One table row per (algo, env, budget, start phase): the plan's order, then the rest."""
    order = {(algo, env): i for i, (algo, env, _) in enumerate(PLAN)}
    keys = {(r["algo"], r["env"], r["budget"], r["learning_starts"]) for r in runs}
    return sorted(keys, key=lambda k: (order.get(k[:2], len(order)), ALGOS.index(k[0]), k[1], -k[2], k[3]))


def _settings_table() -> List[str]:
    """The matched settings as a markdown table, one column per algorithm."""
    def net(h: Dict[str, Any]) -> str:
        return f"{'-'.join(map(str, h['hidden']))} {ACTIVATION}, {h['critics']} critic{'s' * (h['critics'] > 1)}"

    def explore(algo: str, h: Dict[str, Any]) -> str:
        if algo == "sac":
            return f"learned α (α₀ {h['alpha_init']:g}, target entropy −dim A)"
        return f"Gaussian σ {h['act_noise']:g}"

    rows = {"learning rate (actor, critics; SAC's α)": lambda a, h: f"{h['lr']:.0e}".replace("e-0", "e-"),
            "batch · replay buffer": lambda a, h: f"{h['batch']} · {h['buffer']:,}",
            "random-action steps, then 1 update per step": lambda a, h: f"{LEARNING_STARTS:,}",
            "τ (polyak 1 − τ) · γ": lambda a, h: f"{h['tau']:g} · {h['gamma']:g}",
            "networks (actor and each critic)": lambda a, h: net(h),
            "exploration": explore,
            "target policy smoothing": lambda a, h: (f"σ {h['target_noise']:g}, clip {h['noise_clip']:g}"
                                                     if "target_noise" in h else "—"),
            "policy delay": lambda a, h: str(h.get("policy_delay", 1))}
    return ["| setting | " + " | ".join(a.upper() for a in ALGOS) + " |", "|---" * (len(ALGOS) + 1) + "|",
            *(f"| {name} | " + " | ".join(fn(a, SETTINGS[a]) for a in ALGOS) + " |" for name, fn in rows.items())]


def render(runs: List[Dict[str, Any]]) -> str:
    """The whole section (marks included) from the saved runs."""
    lines = [START_MARK, "## Off-policy RL (SAC, TD3, DDPG) against Stable-Baselines3", "",
             "Final return: mean over 10 deterministic evaluation episodes per run at the end of training, "
             "then mean ± std over seeds. " + RETURN_P_NOTE +
             "Steps/s: environment steps per second of training wall time (setup "
             "included, evaluation excluded; one torch thread per process), mean ± std over seeds; the speed "
             "ratio is scgrad's mean over SB3's. Timing *paired*: the scgrad and SB3 runs of each seed trained "
             "at the same time in two processes, under the same machine load (the slower one finishes alone); "
             "*alone*: one run at a time. Load: the 1-minute load average at the runs' starts and ends "
             "(min–max), on a machine that other jobs share.", ""]
    if runs:
        lines += ["| algo | env | steps | seeds | scgrad return | SB3 return | return p | scgrad steps/s | SB3 steps/s "
                  "| speed ratio | timing | load |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rate = lambda rs: [r["steps_per_s"] for r in rs]  # noqa: E731
    ret = lambda rs: [float(np.mean(r["returns"])) for r in rs]  # noqa: E731
    for key in _row_keys(runs):
        rows = [r for r in runs if (r["algo"], r["env"], r["budget"], r["learning_starts"]) == key]
        ours = [r for r in rows if r["impl"] == "scgrad"]
        sb3 = [r for r in rows if r["impl"] == "sb3"]
        algo, env, budget, starts = key
        steps = f"{budget:,}" + ("" if starts == LEARNING_STARTS else f" (starts {starts:,})")
        ratio = f"{np.mean(rate(ours)) / np.mean(rate(sb3)):.2f}×" if ours and sb3 else "—"
        seeds = sorted({r["seed"] for r in rows})
        lines.append(f"| {algo} | {env} | {steps} | {','.join(map(str, seeds))} | {cell(ret(ours), 1)} "
                     f"| {cell(ret(sb3), 1)} | {p_cell(ret(ours), ret(sb3))} | {cell(rate(ours), 1)} | {cell(rate(sb3), 1)} | {ratio} "
                     f"| {timing_mode(rows)} | {load_range(rows)} |")
    lines += [""] if runs else ["No runs saved yet.", ""]
    lines += ["Matched settings, passed explicitly to both sides (mapping in `benchmarks/rl_offpolicy.py`):", "",
              *_settings_table(), "", "Remaining differences: " + "; ".join(MISMATCHES) + "."]
    if runs:
        lines += footer(runs, "benchmarks/rl_offpolicy_runs/")
    else:
        lines += ["", "The full benchmark, one (algo, env) at a time:", "", "```bash",
                  *full_commands(), "```"]
    lines.append(END_MARK)
    return "\n".join(lines)


def full_commands(seeds: str = "0,1") -> List[str]:
    """The commands that run the whole plan, pairs of runs one after the other."""
    return [f"python benchmarks/rl_offpolicy.py --pair --algo {algo} --env {env} --seeds {seeds}"
            for algo, env, _ in PLAN]


# ============================================================================ command line
def _plan(algos: Sequence[str], envs: Optional[Sequence[str]]) -> List[Tuple[str, str, int]]:
    """The plan's (algo, env, steps) entries selected; an env outside the plan runs every algo given."""
    chosen = [(a, e, s) for a, e, s in PLAN if a in algos and (envs is None or e in envs)]
    planned = {e for _, e, _ in PLAN}
    extra = [(a, e, PLAN[0][2]) for e in (envs or []) if e not in planned for a in algos]
    return chosen + extra


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algo", default=",".join(ALGOS), help="comma-separated: sac, td3, ddpg")
    parser.add_argument("--env", default=None, help="comma-separated env ids (default: the plan's; an env outside "
                        "the plan, e.g. Pendulum-v1, runs every --algo)")
    parser.add_argument("--impl", default=",".join(IMPLS), help="comma-separated: scgrad, sb3 (ignored by --pair)")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--steps", type=int, default=None, help="override the plan's step budget (100,000)")
    parser.add_argument("--learning-starts", type=int, default=LEARNING_STARTS,
                        help="random-action steps before the first update, both sides (default 10,000)")
    parser.add_argument("--pair", action="store_true",
                        help="run scgrad and SB3 of each (algo, env, seed) at the same time, in two processes")
    parser.add_argument("--report-only", action="store_true", help="only rewrite the section from saved runs")
    parser.add_argument("--no-report", action="store_true", help="save the runs but leave RESULTS.md alone")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--runs", type=Path, default=RUNS, help="folder of saved runs (one JSON file each)")
    parser.add_argument("--as-pair", action="store_true", help=argparse.SUPPRESS)  # a --pair child
    parser.add_argument("--command", default=None, help=argparse.SUPPRESS)  # the parent's command line
    args = parser.parse_args(argv)
    given = argv if argv is not None else sys.argv[1:]
    command = args.command or command_line("rl_offpolicy.py", given)
    if not args.report_only:
        algos, impls = args.algo.split(","), args.impl.split(",")
        unknown = sorted(set(algos) - set(ALGOS)) + sorted(set(impls) - set(IMPLS))
        if unknown:
            parser.error(f"unknown --algo/--impl value(s): {', '.join(unknown)}")
        for algo, env, steps in _plan(algos, args.env.split(",") if args.env else None):
            steps = args.steps or steps
            if not 0 <= args.learning_starts < steps:
                parser.error(f"--learning-starts ({args.learning_starts}) must be below the steps ({steps})")
            for seed in map(int, args.seeds.split(",")):
                if args.pair:
                    run_pair(algo, env, seed, steps, args.learning_starts, args.runs, command)
                    continue
                for impl in impls:
                    run_piece(impl, algo, env, seed, steps, args.learning_starts, args.runs, command, args.as_pair)
    if not args.no_report:
        update_section(args.out, render(load_runs(args.runs)), START_MARK, END_MARK)


if __name__ == "__main__":
    main()
