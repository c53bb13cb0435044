"""Smoke test of benchmarks/rl_onpolicy.py: a tiny run writes its section and keeps the rest."""
import subprocess
import sys
from pathlib import Path

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
    assert len(rows) == 1 and rows[0].endswith("| — |")  # no SB3 run: no ratio
    assert len(list((tmp_path / "runs").glob("scgrad_ppo_CartPole-v1_s0_2048.json"))) == 1
