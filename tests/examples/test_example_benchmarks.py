"""Smoke tests of the examples' benchmarks (benchmarks/hard_attention.py, benchmarks/rl_ntm.py):
each part runs at a toy size into a temporary folder and writes its section of a results file,
keeping the rest of the file."""
import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _run(script: str, *args: str, timeout: int = 300) -> None:
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]


def _results(tmp_path: Path) -> Path:
    out = tmp_path / "RESULTS.md"
    out.write_text("# Benchmark results\n\n## Other\nkept as is\n")
    return out


def test_rl_ntm_speed_scaling_and_training_write_their_section(tmp_path):
    out, runs = _results(tmp_path), tmp_path / "runs"
    common = ["--runs", str(runs), "--out", str(out)]
    _run("rl_ntm.py", "--part", "speed", "--speed-batches", "8", "--speed-updates", "1", *common)
    _run("rl_ntm.py", "--part", "scaling", "--cells", "16,32", "--rounds", "1", "--plot", str(tmp_path / "p.png"), *common)
    _run("rl_ntm.py", "--part", "train", "--task", "copy", "--seeds", "0", "--batch", "8", "--updates", "2", *common)
    speed = json.loads((runs / "speed.json").read_text())["examples_per_s"]
    assert list(speed) == ["8"] and speed["8"] > 0
    scaling = json.loads((runs / "scaling.json").read_text())
    assert set(scaling) == {"sampled", "soft", "command"} and set(scaling["soft"]) == {"16", "32"}
    assert (tmp_path / "p.png").stat().st_size > 0
    run = json.loads((runs / "copy-b8-s0.json").read_text())
    assert run["updates"] == 2 and run["batch"] == 8 and not run["solved"] and not run["timed_out"]
    text = out.read_text()
    assert "## Other\nkept as is" in text and text.count("<!-- end rl-ntm -->") == 1
    assert "| 8 | " in text and "| 16 | " in text and "| copy | no | 8 | 0/1 |" in text
    assert "python benchmarks/rl_ntm.py --part train --task copy --seeds 0 --batch 8 --minutes 60" in text
    assert "python benchmarks/rl_ntm.py --part scaling --rounds 1 --cells 16,32" in text
    assert "python benchmarks/rl_ntm.py --part speed --speed-batches 8 --speed-updates 1" in text


def test_hard_attention_sensor_and_a_short_training_write_their_section(tmp_path):
    out, runs = _results(tmp_path), tmp_path / "runs"
    common = ["--runs", str(runs), "--out", str(out)]
    _run("hard_attention.py", "--part", "sensor", *common)
    _run("hard_attention.py", "--part", "train", "--task", "mnist", "--models", "fc", "--epochs", "1",
         "--seeds", "0", *common)
    sensor = json.loads((runs / "sensor.json").read_text())["glimpses_per_s"]
    assert set(sensor) == {"table", "table, 8 per batch", "grid_sample"} and min(sensor.values()) > 0
    run = json.loads((runs / "mnist-fc-hit-g6-e1-lr0.001-std0.17-constant-s0.json").read_text())
    assert run["epochs"] == 1 and 0 <= run["test_error"] <= 1 and run["images_per_s"] > 0
    curve = (runs / "mnist-fc-hit-g6-e1-lr0.001-std0.17-constant-s0.progress.csv").read_text().splitlines()
    assert curve[0].startswith("Epoch,") and len(curve) == 2
    # a run saved before the RAM's core and first glimpse were settings reads back as the paper's
    legacy = {k: v for k, v in run.items() if k not in ("core", "first")}
    (runs / "mnist-fc-hit-g6-e1-lr0.001-std0.17-constant-s1.json").write_text(json.dumps({**legacy, "seed": 1}))
    _run("hard_attention.py", "--part", "train", "--task", "mnist", "--models", "ram", "--epochs", "1",
         "--glimpses", "2", "--core", "lstm", "--first", "centre", "--seeds", "0", *common)
    assert (runs / "mnist-ram-hit-g2-e1-lr0.001-std0.17-constant-lstm-firstcentre-s0.json").exists()
    text = out.read_text()
    assert "## Other\nkept as is" in text and "| mnist | fc | — | — | — | 1 |" in text and "Glimpse sensor alone" in text
    assert "| mnist | ram | hit | lstm, centre | 2 | 1 |" in text and "--core lstm --first centre --seeds 0" in text
    fc_row = next(line for line in text.splitlines() if line.startswith("| mnist | fc |"))
    assert fc_row.split("|")[10].strip() == "2"  # the legacy run and the new one: one row, two seeds
