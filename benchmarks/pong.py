"""Pong from pixels: speeds, Karpathy's agent against a plain NumPy version, and the learning runs.

Parts (``--part``, comma-separated; each saves its numbers in benchmarks/pong_runs/*.json and
the Pong section of RESULTS.md is rewritten from everything saved):

- ``speed``: agent steps per second of the Atari environments alone (8 games: scgrad's
  ``envs.atari`` on one process, and ale-py's native C++ ``AtariVectorEnv`` on one thread, the
  bound) and of PPO's whole epoch (rollout + update, the atari preset) with each CNN body;
- ``karpathy``: the same games (same seeds, same initial policy) played and learned by
  ``examples/pong/karpathy.py`` (10 games at once, one graph per update) and by
  ``examples/pong/karpathy_numpy.py`` (one game at a time, NumPy), episodes per hour of each;
- ``ppo``: the PPO run (``--ppo-run``, a run folder or its export): its learning curve from
  progress.csv, the score and steps at 2 hours of training, and an evaluation of its agent over
  full games (``--eval-episodes``, v5 protocol, the policy's mode) — and of the agent exported at
  2 hours (``--ppo-2h``) when that folder exists;
- ``report``: only rewrite the section, which also reads the Karpathy run folder
  (``--karpathy-run``) for its running reward against episodes, next to the blog's.

Every number is measured on this machine in the same run as its comparison; the load of other
processes is printed with the section.

    python benchmarks/pong.py --part speed,karpathy
    python benchmarks/pong.py --part ppo --ppo-run examples/pong/pretrained/ppo
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

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _results import made_by, update_section  # noqa: E402

RUNS = HERE / "pong_runs"
EXAMPLES = HERE.parent / "examples" / "pong"
START, END = "## Pong from pixels", "<!-- end pong -->"
DEFAULT_COMMAND = "python benchmarks/pong.py --part speed,karpathy"  # the parts saved before commands were recorded
BLOG = "about −21 at the start, slightly above 0 after about 8,000 episodes (3 nights on a laptop)"


# ------------------------------------------------------------------ speed
def env_speed(steps: int, num_envs: int = 8) -> dict:
    """Agent steps/s of random play: scgrad's vector of AtariEnv vs ale-py's AtariVectorEnv (1 thread)."""
    from ale_py.vector_env import AtariVectorEnv

    from scgrad.rl.envs.make import make_vector_env

    rng = np.random.default_rng(0)
    ours = make_vector_env("ALE/Pong-v5", num_envs)
    ours.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(steps // num_envs):
        ours.step(rng.integers(0, 6, num_envs))
    ours_rate = steps / (time.perf_counter() - t0)
    native = AtariVectorEnv(game="pong", num_envs=num_envs, num_threads=1, repeat_action_probability=0.25,
                            reward_clipping=False, autoreset_mode="SameStep")
    native.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(steps // num_envs):
        native.step(rng.integers(0, 6, num_envs))
    native_rate = steps / (time.perf_counter() - t0)
    native.close()
    return {"scgrad_env_steps_per_s": ours_rate, "native_env_steps_per_s": native_rate}


def ppo_speed(cnn: str, epochs: int) -> dict:
    """Agent steps/s of PPO's epochs (rollout + update) with the atari preset and body ``cnn``."""
    import torch

    from scgrad.rl import ppo

    torch.set_num_threads(1)
    steps = 1024 * (epochs + 1)
    result = ppo("ALE/Pong-v5", None, steps=steps, cnn=cnn, tensorboard=False, progress=False)
    times = [float(r["Time"]) for r in result.progress]
    return {"cnn": cnn, "steps_per_s": 1024 * epochs / (times[-1] - times[0])}  # the first epoch is warm-up


# ------------------------------------------------------------------ Karpathy
def karpathy_speed(episodes: int, runs: Path) -> dict:
    """Episodes per hour of the two implementations over the same ``episodes`` games."""
    from scgrad.rl.run.folder import read_progress

    out = {}
    for name, script, args in (("scgrad", "karpathy.py", ["--out", str(runs / "karpathy-speed"),
                                                         "--episodes", str(episodes)]),
                               ("numpy", "karpathy_numpy.py", ["--episodes", str(episodes)])):
        shutil.rmtree(runs / "karpathy-speed", ignore_errors=True)
        one_thread = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                              env=one_thread)
        if done.returncode != 0:
            raise SystemExit(f"{script} failed: {done.stderr.strip().splitlines()[-1]}")
        last = dict(kv.split("=") for kv in done.stdout.strip().splitlines()[-1].split())
        # the programs' own clocks: playing and learning, not starting Python and importing torch
        seconds = (float(last["seconds"]) if "seconds" in last else
                   float(read_progress(runs / "karpathy-speed")[-1]["Time"]))
        out[name] = {"seconds": seconds, "episodes": episodes, "env_steps": int(last["env_steps"]),
                     "episodes_per_hour": episodes * 3600 / seconds}
    shutil.rmtree(runs / "karpathy-speed", ignore_errors=True)
    return out


def karpathy_curve(run: Path) -> list:
    """(episodes, running reward, hours) at every 2,000 episodes of a karpathy.py run folder."""
    import csv

    rows = list(csv.DictReader(open(run / "progress.csv")))
    picked = [r for r in rows if int(r["Episodes"]) % 2000 == 0] + rows[-1:]
    return [(int(r["Episodes"]), float(r["RunningReward"]), float(r["Time"]) / 3600) for r in picked]


# ------------------------------------------------------------------ PPO learning
TWO_HOURS, WINDOW = 7200.0, 100_000  # seconds of training; steps over which training returns are averaged


def ppo_curve(rows: list) -> list:
    """(steps, hours, mean training return) every 250k steps: the mean of the epochs' average
    returns over the last ``WINDOW`` steps (epochs in which no game ended are skipped)."""
    return [_window(rows, mark) for mark in range(250_000, int(rows[-1]["TotalEnvInteracts"]) + 1, 250_000)]


def _window(rows: list, steps: int) -> tuple:
    """(steps, hours, mean return) of the epochs in (steps − WINDOW, steps]."""
    inside = [r for r in rows if steps - WINDOW < int(r["TotalEnvInteracts"]) <= steps]
    returns = [float(r["AverageEpRet"]) for r in inside if r["AverageEpRet"] not in ("", "nan")]
    return (steps, float(inside[-1]["Time"]) / 3600 if inside else float("nan"),
            float(np.mean(returns)) if returns else float("nan"))


def ppo_learning(run: Path, run_2h: Path, episodes: int, seed: int) -> dict:
    """The PPO run's curve, its state at 2 hours, and evaluations of its agents (``eval``'s way)."""
    import torch

    from scgrad.rl.agents import load_agent
    from scgrad.rl.run.evaluate import evaluate
    from scgrad.rl.run.folder import read_config, read_progress

    torch.set_num_threads(1)
    rows = read_progress(run)
    within = [r for r in rows if float(r["Time"]) <= TWO_HOURS] or rows[:1]
    last = rows[-1]
    settings = read_config(run)[1]
    curve = ppo_curve(rows)
    result = {"env": settings["env"], "cnn": settings["cnn"], "curve": curve,
              "at_2h": _window(within, int(within[-1]["TotalEnvInteracts"])),
              "steps": int(last["TotalEnvInteracts"]), "hours": float(last["Time"]) / 3600,
              "steps_per_s": int(last["TotalEnvInteracts"]) / float(last["Time"]), "eval_seed": seed}
    positive = [c for c in curve if c[2] > 0]
    result["first_positive"] = positive[0] if positive else None
    for name, folder in (("final", run), ("2h", run_2h)):
        if (folder / "checkpoint.json").exists():
            epoch = json.loads((folder / "checkpoint.json").read_text())["epoch"]
            steps = int(next(r for r in rows if int(r["Epoch"]) == epoch)["TotalEnvInteracts"])
            hours = float(next(r for r in rows if int(r["Epoch"]) == epoch)["Time"]) / 3600
            returns = evaluate(load_agent(folder), episodes, seed)
            result[f"eval_{name}"] = {"folder": _shown(folder), "steps": steps, "hours": hours, "returns": returns}
            other = other_protocol_id(settings["env"])
            if name == "2h" and other:  # the same agent under the game's other ALE protocol
                result["eval_2h_other"] = {**result["eval_2h"], "env": other,
                                           "returns": evaluate(load_agent(folder, env=other), episodes, seed)}
    return result


def other_protocol_id(env: str):
    """The same Atari game's id under the other ALE protocol (v4 ↔ v5), or None."""
    from scgrad.rl.atari_ids import parse_atari_id

    parsed = parse_atari_id(env)
    if parsed is None or parsed[1] not in ("v4", "v5"):
        return None
    game = env.removeprefix("ALE/").removesuffix("-v5").removesuffix("NoFrameskip-v4")
    return f"ALE/{game}-v5" if parsed[1] == "v4" else f"{game}NoFrameskip-v4"


# ------------------------------------------------------------------ the section
def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(HERE.parent))
    except ValueError:
        return str(path)


def section(command: str, karpathy_run: Path, runs: Path) -> str:
    saved = {p.stem: json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))}
    lines = [START, "",
             "Protocol: stated with each PPO result (ALE v5: sticky actions 0.25; v4: none; both full games, "
             "108k-frame cap); ALE v5 for the environment speeds; Karpathy's agent plays as the blog's Pong-v0 "
             "(frame skip 2–4, sticky 0.25). Returns are full-game, unclipped scores (−21…21).", ""]
    if "speed" in saved:
        s = saved["speed"]
        lines += ["**Speed** (agent steps per second, one process, one torch thread, while another process "
                  "trained on the other core):", "",
                  "| what | steps/s |", "|---|---|",
                  f"| 8 games, scgrad `envs.atari` (Python loop, exact state) | {s['scgrad_env_steps_per_s']:,.0f} |",
                  f"| 8 games, ale-py `AtariVectorEnv`, 1 thread (C++, the bound) | {s['native_env_steps_per_s']:,.0f} |"]
        lines += [f"| PPO epoch (rollout + update, atari preset), {p['cnn']} CNN | {p['steps_per_s']:,.0f} |"
                  for p in s["ppo"]]
        lines += [""]
    if "karpathy" in saved:
        k = saved["karpathy"]
        ratio = k["scgrad"]["episodes_per_hour"] / k["numpy"]["episodes_per_hour"]
        lines += ["**Karpathy's agent against a plain NumPy implementation** (the same games: seeds, initial "
                  f"policy and updates; {k['scgrad']['episodes']} episodes each, run one after the other, timed by each program's own clock):", "",
                  "| implementation | episodes/hour | agent steps/s |", "|---|---|---|",
                  *[f"| {name} | {v['episodes_per_hour']:,.0f} | {v['env_steps'] / v['seconds']:,.0f} |"
                    for name, v in (("examples/pong/karpathy.py (scgrad, 10 games batched)", k["scgrad"]),
                                    ("examples/pong/karpathy_numpy.py (NumPy, one game)", k["numpy"]))],
                  "", f"scgrad's is **{ratio:.2f}×** as fast per episode. The emulator bounds both: at about "
                  "4 frames per agent step it takes most of the time of each.", ""]
    if (karpathy_run / "progress.csv").exists():
        curve = karpathy_curve(karpathy_run)
        lines += [f"**Karpathy's agent learning** (`{_shown(karpathy_run)}`, seed 0, the blog's "
                  f"settings; the blog: {BLOG}):", "",
                  "| episodes | running reward | hours |", "|---|---|---|",
                  *[f"| {e:,} | {r:.2f} | {h:.2f} |" for e, r, h in curve], ""]
    for key in sorted(k for k in saved if k.startswith("ppo")):  # one part per PPO run (ppo, ppo-v4, ...)
        lines += _ppo_lines(saved[key])
    made = sorted({v.get("command", DEFAULT_COMMAND) for v in saved.values()} - {command})
    if made:
        lines += ["Earlier parts were made by:", "", "```bash", *made, "```", ""]
    lines += made_by(command) + ["", END]
    return "\n".join(lines)


def _ppo_lines(p: dict) -> list:
    """The PPO part of the section."""
    steps, hours, score = p["at_2h"]
    from scgrad.rl.atari_ids import describe_protocol

    lines = [f"**PPO from pixels** (`{p['env']}`, protocol {describe_protocol(p['env'])}, `--cnn {p['cnn']}`, "
             f"{p.get('settings_note', 'the atari preset')}, "
             f"2 torch threads; {p['steps']:,} steps in {p['hours']:.2f} h of training, "
             f"{p['steps_per_s']:,.0f} steps/s including updates). Training returns (full games, unclipped, "
             f"mean over the last {WINDOW:,} steps):", "",
             "| steps | hours | mean training return |", "|---|---|---|",
             *[f"| {s:,} | {h:.2f} | {r:.1f} |" for s, h, r in p["curve"]], "",
             f"The last progress row within 2 hours of training: {steps:,} steps at {hours:.2f} h, mean training "
             f"return {score:.1f}."]
    if p.get("first_positive"):
        s, h, r = p["first_positive"]
        lines[-1] += f" First window above 0: {s:,} steps ({h:.2f} h)."
    for name in ("2h", "2h_other", "final"):
        e = p.get(f"eval_{name}")
        if e:
            r = np.array(e["returns"])
            where = f" under {e['env']} ({describe_protocol(e['env'])})" if "env" in e else ""
            lines += ["", f"Evaluation of `{e['folder']}`{where} (the agent after {e['steps']:,} steps, {e['hours']:.2f} h): "
                      f"{len(r)} full games from seeds {p['eval_seed']}… (the policy's mode): mean **{r.mean():+.2f}** "
                      f"± {r.std():.2f}, won {int((r > 0).sum())} of {len(r)}; returns {', '.join(f'{x:+.0f}' for x in r)}."]
    return lines + [""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", default="speed,karpathy", help="comma-separated: speed, karpathy, ppo, report")
    parser.add_argument("--env-steps", type=int, default=8000, help="agent steps per environment speed measurement")
    parser.add_argument("--ppo-epochs", type=int, default=2, help="timed PPO epochs of 1,024 steps per CNN")
    parser.add_argument("--episodes", type=int, default=40, help="games per Karpathy implementation")
    parser.add_argument("--karpathy-run", default=str(EXAMPLES / "pretrained" / "karpathy"))
    parser.add_argument("--ppo-run", default=str(EXAMPLES / "pretrained" / "ppo"))
    parser.add_argument("--ppo-2h", default=str(EXAMPLES / "pretrained" / "ppo-2h"))
    parser.add_argument("--eval-episodes", type=int, default=10, help="full games per PPO evaluation")
    parser.add_argument("--ppo-label", default="ppo", help="the PPO run's name in the saved results (ppo, ppo-v4, ...)")
    parser.add_argument("--ppo-note", default="the atari preset", help="how the PPO run was set up, for the text")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--runs", default=str(RUNS), help="folder of the saved measurements")
    args = parser.parse_args(argv)
    runs = Path(args.runs)
    for name, value in (("--env-steps", args.env_steps), ("--ppo-epochs", args.ppo_epochs), ("--episodes", args.episodes)):
        if value < 1:
            parser.error(f"{name} must be > 0, got {value}")
    parts = set(args.part.split(","))
    known = {"speed", "karpathy", "ppo", "report"}
    if parts - known:
        parser.error(f"unknown part(s): {sorted(parts - known)}")
    runs.mkdir(exist_ok=True)
    command = "python benchmarks/pong.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if "speed" in parts:
        speed = env_speed(args.env_steps)
        speed["ppo"] = [ppo_speed(cnn, args.ppo_epochs) for cnn in ("small", "nature")]
        speed["command"] = command
        (runs / "speed.json").write_text(json.dumps(speed, indent=1))
        print(speed)
    if "karpathy" in parts:
        result = {**karpathy_speed(args.episodes, runs), "command": command}
        (runs / "karpathy.json").write_text(json.dumps(result, indent=1))
        print(result)
    if "ppo" in parts:
        result = {**ppo_learning(Path(args.ppo_run), Path(args.ppo_2h), args.eval_episodes, seed=1000),
                  "command": command, "settings_note": args.ppo_note}
        (runs / f"{args.ppo_label}.json").write_text(json.dumps(result, indent=1))
        print(result)
    update_section(Path(args.out), section(command, Path(args.karpathy_run), runs), START, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
