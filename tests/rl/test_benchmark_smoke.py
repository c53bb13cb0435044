"""Smoke tests of benchmarks/rl_onpolicy.py and rl_offpolicy.py: a tiny run writes its section
and keeps the rest."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "rl_onpolicy.py"


def test_tiny_run_writes_the_rl_section(tmp_path):
    out = tmp_path / "RESULTS.md"
    out.write_text("# Benchmark results\n\n<!-- other:start -->\nkept\n<!-- other:end -->\n\n"
                   "<!-- rl_onpolicy:start -->\nSTALE\n<!-- rl_onpolicy:end -->\n")
    done = subprocess.run([sys.executable, str(SCRIPT), "--algo", "ppo", "--env", "CartPole-v1", "--impl", "scgrad",
                           "--seeds", "0", "--steps", "2048", "--runs", str(tmp_path / "runs"), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert "<!-- other:start -->\nkept" in text and "STALE" not in text
    assert text.count("<!-- rl_onpolicy:start -->") == 1
    rows = [line for line in text.splitlines() if line.startswith("| ppo | CartPole-v1 | 2,048 | 0 |")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert len(cells) == 12
    assert cells[5:7] == ["—", "—"]  # no SB3 run: no SB3 return, no return p
    assert cells[9:11] == ["—", "alone"]  # ... no speed ratio; run alone
    assert len(list((tmp_path / "runs").glob("scgrad_ppo_CartPole-v1_s0_2048.json"))) == 1


OFFPOLICY = SCRIPT.parent / "rl_offpolicy.py"


def test_tiny_offpolicy_run_writes_its_section(tmp_path):
    """SAC on Pendulum-v1, 200 steps (150 random), scgrad and (when installed) SB3, one after
    the other: both runs saved, the section rewritten with their row, other sections kept."""
    impls = ["scgrad", "sb3"] if importlib.util.find_spec("stable_baselines3") else ["scgrad"]
    out, runs = tmp_path / "RESULTS.md", tmp_path / "runs"
    out.write_text("# Benchmark results\n\n<!-- other:start -->\nkept\n<!-- other:end -->\n\n"
                   "<!-- rl_offpolicy:start -->\nSTALE\n<!-- rl_offpolicy:end -->\n")
    done = subprocess.run([sys.executable, str(OFFPOLICY), "--algo", "sac", "--env", "Pendulum-v1", "--impl",
                           ",".join(impls), "--seeds", "0", "--steps", "200", "--learning-starts", "150",
                           "--runs", str(runs), "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert "<!-- other:start -->\nkept" in text and "STALE" not in text
    assert text.count("<!-- rl_offpolicy:start -->") == 1 and text.count("<!-- rl_offpolicy:end -->") == 1
    rows = [line for line in text.splitlines() if line.startswith("| sac | Pendulum-v1 | 200 (starts 150) | 0 |")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[4] != "—" and cells[6] == "—" and cells[10] == "alone"  # scgrad's return; one seed: no p; alone
    assert (cells[9].endswith("×") and cells[5] != "—") if "sb3" in impls else cells[9] == "—"
    for impl in impls:
        record = json.loads((runs / f"{impl}_sac_Pendulum-v1_s0_200_ls150.json").read_text())
        assert record["steps"] == 200 and len(record["returns"]) == 10 and record["paired"] is False
        assert len(record["load"]["start"]) == 3 and record["steps_per_s"] > 0


BOUND = SCRIPT.parent / "rl_offpolicy_bound.py"
PARTS = SCRIPT.parent / "rl_parts.py"


def _load_benchmark(path: Path):
    """Import a benchmark script as a module (its folder on sys.path for its helpers)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def _sb3_run(runs: Path, algo: str, seed: int, steps_per_s: float, paired: bool, budget: int = 100_000) -> None:
    """A saved SB3 run record with only the fields the bound script reads."""
    record = {"impl": "sb3", "algo": algo, "env": "HalfCheetah-v5", "seed": seed, "paired": paired,
              "budget": budget, "learning_starts": 10_000, "steps_per_s": steps_per_s}
    (runs / f"sb3_{algo}_{seed}_{paired}_{budget}.json").write_text(json.dumps(record))


def test_offpolicy_bound_writes_its_section(tmp_path):
    """Two timed updates per algorithm: the FLOP counts are those of the matched settings (SAC's
    update on HalfCheetah is hundreds of MFLOP) and the bound follows from the measured rate. The
    target is 2.5× the mean of SB3's paired runs of the plan's budget only; without any, a dash."""
    out, runs = tmp_path / "RESULTS.md", tmp_path / "runs"
    runs.mkdir()
    _sb3_run(runs, "sac", 0, 90.0, paired=True)
    _sb3_run(runs, "sac", 1, 110.0, paired=True)
    _sb3_run(runs, "sac", 2, 1.0, paired=False)  # timed alone: not the paired speed
    _sb3_run(runs, "sac", 3, 1.0, paired=True, budget=5_000)  # another budget
    done = subprocess.run([sys.executable, str(BOUND), "--updates", "2", "--out", str(out), "--runs", str(runs)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    rate = float(text.split("at **")[1].split(" GFLOP/s")[0])
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
            for line in text.splitlines() if line.startswith("| sac |") or line.startswith("| td3 |")
            or line.startswith("| ddpg |")}
    assert sorted(rows) == ["ddpg", "sac", "td3"]
    for cells in rows.values():
        mflop, bound = float(cells[2].replace(",", "")), float(cells[3].replace(",", ""))
        assert 100 < mflop < 5000
        # steps/s = (GFLOP/s) / (GFLOP per update), up to the rounding of the three printed numbers
        assert abs(bound - rate * 1e3 / mflop) <= 0.5 + bound * (0.5 / rate + 0.5 / mflop)
        products_ms, products_bound = float(cells[4]), float(cells[5].replace(",", ""))
        assert abs(products_bound - 1e3 / products_ms) <= 0.5 + products_bound * 0.005 / products_ms
        assert int(cells[6]) > 10  # the update's other tensor ops: activations, losses, optimiser, ...
    sac_products_bound = float(rows["sac"][5].replace(",", ""))
    assert rows["sac"][9:11] == ["100.0", "250"]
    assert abs(float(rows["sac"][11].rstrip("%")) - 250 / sac_products_bound * 100) \
        <= 0.5 + 25_000 / sac_products_bound ** 2
    assert rows["td3"][9:] == ["—", "—", "—"] and rows["ddpg"][9:] == ["—", "—", "—"]


def test_product_recorder_counts_forward_and_backward_products():
    """A linear layer's forward is one addmm; its backward two products (input and weight
    gradients), each with the layouts autograd used (the weight enters transposed, as a view),
    which replay on fresh data of the same layout (stride-0 expanded dims included)."""
    bound = _load_benchmark(BOUND)
    layer = torch.nn.Linear(8, 4)
    x = torch.randn(16, 8, requires_grad=True)
    with bound.ProductRecorder() as recorder:
        layer(x).relu().sum().backward()
    ops = [func for func, _, _ in recorder.products.elements()]
    assert ops.count(torch.ops.aten.addmm.default) == 1 and ops.count(torch.ops.aten.mm.default) == 2
    assert recorder.other > 0  # relu, its backward, sum, ...
    layouts = {func: layouts for func, layouts, _ in recorder.products}
    assert layouts[torch.ops.aten.addmm.default][1:] == (((16, 8), (8, 1)), ((8, 4), (1, 8)))  # x, Wᵀ (a view)
    assert bound.time_products(recorder.products, per=1, rounds=1, repeats=2) > 0
    expanded = bound._tensor_like(((3, 4, 5), (0, 5, 1)))
    assert expanded.shape == (3, 4, 5) and expanded.stride() == (0, 5, 1)


FAKE_RUN = """
import os, sys, time
args = sys.argv[1:]
value = lambda name: args[args.index(name) + 1] if name in args else None
runs, impl, log, real = value("--runs"), value("--impl"), value("--log"), value("--real")
def filler_starts():
    if not os.path.exists(log):
        return 0
    with open(log) as f:
        return sum(1 for line in f if line.split()[:2] == ["start", "fast"] and line.split()[2] != real)
earlier_fillers = filler_starts() if real else 0
with open(log, "a") as f:
    f.write(f"start {impl} {runs}\\n")
if impl == "slow" and real:  # a handshake, not a race: end once a second filler has started
    deadline = time.time() + 60
    while filler_starts() < 2 and time.time() < deadline:
        time.sleep(0.05)
elif impl == "fast" and real and runs != real and earlier_fillers >= 1:
    time.sleep(60)  # the second filler: still running when the slow run ends, so it is killed
else:
    time.sleep({"fast": 0.5, "slow": 1.0}.get(impl, 0.0))
with open(log, "a") as f:
    f.write(f"end {impl} {runs}\\n")
sys.exit(1 if impl == "bad" else 0)
"""


def _run_pair_module():
    """``benchmarks/_rl_common.py``, where ``run_pair`` and the statistics live."""
    return _load_benchmark(SCRIPT.parent / "_rl_common.py")


def test_run_pair_fills_the_finished_side_until_the_other_ends(tmp_path):
    """The fast run ends first; fillers (its command, another runs folder) keep running, one
    after another, until the slow run ends, and the last is killed then; the scratch folder is
    removed. The fake slow run ends once a second filler has started (the first filler ends
    on its own after 0.5 s, the second would sleep a minute), so no timing can break this test."""
    script, log = tmp_path / "fake.py", tmp_path / "log.txt"
    script.write_text(FAKE_RUN)
    argv = ["--runs", str(tmp_path / "runs"), "--log", str(log), "--real", str(tmp_path / "runs")]
    _run_pair_module().run_pair(script, argv, "fake", impls=("fast", "slow"), fill=True)
    events = [line.split() for line in log.read_text().splitlines()]
    real = str(tmp_path / "runs")
    assert ["start", "fast", real] in events and ["end", "fast", real] in events
    assert ["end", "slow", real] in events
    fillers = [i for i, e in enumerate(events) if e[1] == "fast" and e[2] != real]
    assert len(fillers) >= 2 and events[fillers[-1]][0] == "start"  # the last one was killed before its end
    assert events.index(["end", "fast", real]) < fillers[0] < events.index(["end", "slow", real])
    assert not Path(events[fillers[0]][2]).exists()  # the scratch folder is gone


def test_run_pair_without_fill_starts_nothing_more_and_names_failures(tmp_path):
    script, log = tmp_path / "fake.py", tmp_path / "log.txt"
    script.write_text(FAKE_RUN)
    argv = ["--runs", str(tmp_path / "runs"), "--log", str(log)]
    _run_pair_module().run_pair(script, argv, "fake", impls=("fast", "slow"))
    assert sum(line.startswith("start") for line in log.read_text().splitlines()) == 2
    try:
        _run_pair_module().run_pair(script, argv, "fake pair", impls=("bad", "fast"), fill=True)
    except SystemExit as stop:
        assert "fake pair: bad failed" in str(stop)
    else:
        raise AssertionError("a failed run must stop the pair")


def test_permutation_p_exact_values_sampled_agreement_and_bad_input():
    common = _run_pair_module()
    # 20 ways to split 6 values 3/3; only the observed split and its mirror are as extreme
    assert common.permutation_p([1, 2, 3], [4, 5, 6]) == 0.1
    assert common.permutation_p([1.0, 2.0], [1.0, 2.0]) == 1.0  # no difference: every split is as extreme
    sampled = common.permutation_p([1, 2, 3], [4, 5, 6], max_exact=1)
    assert abs(sampled - 0.1) < 0.01  # 50,000 random splits: standard error 0.0013
    assert common.p_cell([1.0], [2.0, 3.0]) == "—" and common.p_cell([1, 2, 3], [4, 5, 6]) == "0.10"
    try:
        common.permutation_p([1.0], [2.0, 3.0])
    except ValueError as error:
        assert "two values" in str(error)
    else:
        raise AssertionError("one value on a side must be refused")


def test_rl_parts_writes_every_comparison(tmp_path):
    """A tiny run writes one table per comparison, each with scgrad's variant at ratio 1.00."""
    out = tmp_path / "RESULTS.md"
    done = subprocess.run([sys.executable, str(PARTS), "--rounds", "3", "--scale", "0.05", "--warm-updates", "20",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    for variant in ("FlatAdam", "optim.clip_grad_norm_", "numpy_forward", "frozen", "flushed"):
        assert f"| {variant} (scgrad) | " in text and "| 1.00 [1.00, 1.00] |" in text
    for alternative in ("Adam(fused=True)", "torch.nn.utils.clip_grad_norm_", "forward_fast", "net(x)",
                        "gradients_on", "functional_call", "not flushed"):
        assert f"| {alternative} | " in text


def test_subnormal_share_counts_only_subnormal_entries():
    """Negative control included: normal values and zeros are not subnormal."""
    parts = _load_benchmark(PARTS)
    weight = torch.nn.Parameter(torch.zeros(4))
    optimizer = torch.optim.Adam([weight])
    optimizer.state[weight] = {"step": torch.tensor(3.0), "exp_avg": torch.tensor([1e-40, 1.0, 0.0, -1e-39]),
                               "exp_avg_sq": torch.tensor([1e-30, 2.0, 0.0, 3.0])}
    assert parts.subnormal_share({"opt": optimizer}) == 2 / 8
    optimizer.state[weight]["exp_avg"] = torch.tensor([1e-30, 1.0, 0.0, -1.0])
    assert parts.subnormal_share({"opt": optimizer}) == 0.0


def test_new_benchmarks_refuse_non_positive_counts(tmp_path):
    """A zero or negative count is a usage error naming the value (status 2), not a crash
    deep in the statistics, and nothing is written."""
    out = tmp_path / "RESULTS.md"
    for script, args in [(PARTS, ["--rounds", "0"]), (PARTS, ["--scale", "-1"]), (PARTS, ["--warm-updates", "x"]),
                         (BOUND, ["--updates", "0"])]:
        done = subprocess.run([sys.executable, str(script), *args, "--out", str(out)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, (script.name, args, done.stderr[-500:])
        assert args[0] in done.stderr and (f"got {args[1]}" in done.stderr or "'x' is not an integer" in done.stderr)
        assert not out.exists()


def test_pong_benchmark_writes_its_section(tmp_path):
    """benchmarks/pong.py with tiny budgets: both Karpathy programs run on the same games, the
    environment speeds are measured, and the section lands between its marks."""
    pytest_importorskip_ale()
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "pong.py"
    out = tmp_path / "RESULTS.md"
    out.write_text("# Benchmark results\n\n## Other\nkept\n")
    done = subprocess.run([sys.executable, str(script), "--part", "karpathy,report", "--episodes", "1",
                           "--runs", str(tmp_path / "runs"), "--karpathy-run", str(tmp_path / "none"),
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert "## Other\nkept" in text and "## Pong from pixels" in text and text.count("<!-- end pong -->") == 1
    saved = json.loads((tmp_path / "runs" / "karpathy.json").read_text())
    assert saved["scgrad"]["episodes"] == saved["numpy"]["episodes"] == 1
    assert "| examples/pong/karpathy.py (scgrad, 10 games batched) |" in text
    speeds = _load_benchmark(script).env_speed(32, num_envs=2)
    assert speeds["scgrad_env_steps_per_s"] > 0 and speeds["native_env_steps_per_s"] > 0


def test_pong_benchmark_reports_a_ppo_run_and_evaluates_its_agent(tmp_path):
    """The ppo part on a run of 256 steps: its window at 2 hours, steps/s, and one full game of
    its agent, written as the section's PPO paragraph."""
    pytest_importorskip_ale()
    from scgrad.rl.cli import main

    run = tmp_path / "ppo"
    assert main(["train", "ppo", "--env", "ALE/Pong-v5", "--steps", "256", "--num_envs", "2",
                 "--steps_per_epoch", "128", "--minibatch_size", "64", "--update_epochs", "1", "--cnn", "small",
                 "--no-progress", "--out", str(run)]) == 0
    bench = _load_benchmark(Path(__file__).resolve().parents[2] / "benchmarks" / "pong.py")
    result = bench.ppo_learning(run, tmp_path / "absent", episodes=1, seed=1000)
    assert result["steps"] == 256 and result["at_2h"][0] == 256 and result["steps_per_s"] > 0
    assert result["curve"] == [] and "eval_2h" not in result
    game = result["eval_final"]
    assert game["steps"] == 256 and len(game["returns"]) == 1 and -21 <= game["returns"][0] <= 21
    text = "\n".join(bench._ppo_lines(result))
    assert "**PPO from pixels** (`ALE/Pong-v5`, protocol v5 (sticky actions 0.25" in text and "`--cnn small`" in text
    assert "won " in text


def test_hard_attention_benchmark_saves_runs_and_writes_its_section(tmp_path):
    """benchmarks/hard_attention.py with one epoch of the FC baseline and of a 2-glimpse RAM:
    each run saved with its errors and speed, the table and the sensor timing in the section."""
    import pytest

    pytest.importorskip("mlxtend")
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "hard_attention.py"
    out, runs = tmp_path / "RESULTS.md", tmp_path / "runs"
    for extra in (["--models", "fc,ram", "--glimpses", "2", "--epochs", "1", "--seeds", "0"], ["--part", "sensor"]):
        done = subprocess.run([sys.executable, str(script), *extra, "--runs", str(runs), "--out", str(out)],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    saved = json.loads((runs / "mnist-ram-hit-g2-e1-lr0.001-std0.17-constant-s0.json").read_text())
    assert saved["epochs"] == 1 and 0 <= saved["test_error"] <= 1 and saved["images_per_s"] > 0
    text = out.read_text()
    assert "| mnist | fc | — | — | — | 1 | 0.001 | — | constant | 1 |" in text
    assert "| mnist | ram | hit | rnn, random | 2 | 1 | 0.001 | 0.17 | constant | 1 |" in text
    assert ("python benchmarks/hard_attention.py --task mnist --models ram --credit hit --glimpses 2 --epochs 1 "
            "--lr 0.001 --std 0.17 --lr-schedule constant --core rnn --first random --seeds 0") in text
    assert "glimpses/s" in text and text.count("<!-- end hard attention -->") == 1


def pytest_importorskip_ale():
    import pytest

    pytest.importorskip("ale_py")
