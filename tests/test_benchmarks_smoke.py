"""Smoke tests of the estimator benchmarks (estimators.py, long_sequences.py,
estimator_models.py): each --quick run writes its section and keeps the rest."""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "estimators.py"
#: estimator -> scgrad rows expected: one per problem it supports (5 problems: three Bernoulli toys,
#: 200 bits, a Categorical)
ESTIMATOR_ROWS = {"ScoreFunction": 5, "ScoreFunction + LeaveOneOut": 5, "ScoreFunction + MovingAverage(0.9)": 5,
                  "Enumerate": 4, "GumbelSoftmax(t=0.5)": 4, "GumbelSoftmax(t=1.0)": 4, "StraightThrough": 4,
                  "ARM": 4, "DisARM": 4, "REBAR(t=0.5, η=1)": 5, "RELAX (MLP control variate)": 5}


def _storch_installed() -> bool:
    return importlib.util.find_spec("storch") is not None


def _table_rows(text: str, first_cell: str) -> list:
    """Markdown table rows of ``text`` whose first cell is ``first_cell``."""
    return [line for line in text.splitlines() if line.startswith(f"| {first_cell} |")]


def test_quick_run_writes_the_estimators_section(tmp_path):
    out = tmp_path / "RESULTS.md"
    out.write_text("# Benchmark results\n\n<!-- other:start -->\n## Other\nkept as is\n<!-- other:end -->\n\n"
                   "<!-- estimators:start -->\nSTALE\n<!-- estimators:end -->\n")
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()

    assert "## Other\nkept as is" in text and "STALE" not in text
    assert text.count("<!-- estimators:start -->") == 1 and text.count("<!-- estimators:end -->") == 1
    for heading in ["## Estimators", "### Overhead: one REINFORCE training step",
                    "### Gradient variance at matched cost evaluations", "#### Bernoulli toy",
                    "#### 200 bits", "#### Categorical latent"]:
        assert heading in text
    assert "--quick" in text and "torch " in text  # the command and the machine are recorded

    for batch in ["64", "4096"]:  # overhead rows: | threads | batch | variant | rounds | ...
        for variant in ["hand-written", "scgrad tracked", "scgrad untracked"]:
            assert re.search(rf"\| 1 \| {batch} \| {variant} \| \d+ \| \d+ \|", text), (batch, variant)
    for label, problems in ESTIMATOR_ROWS.items():  # one scgrad row per problem it supports
        assert sum("| scgrad |" in row for row in _table_rows(text, label)) == problems, label
    if _storch_installed():
        assert sum("| storchastic | 8 |" in row for row in _table_rows(text, "ScoreFunction")) == 5
        assert "| 1 | 4096 | storchastic |" in text


def test_long_sequences_quick_run_writes_its_table(tmp_path):
    """benchmarks/long_sequences.py --quick: one row per length, the ratio and the command."""
    script = SCRIPT.parent / "long_sequences.py"
    out = tmp_path / "RESULTS.md"
    out.write_text("# Benchmark results\n\n## Other\nkept as is\n")
    done = subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert "## Other\nkept as is" in text and text.count("<!-- end long sequences -->") == 1
    rows = [line for line in text.splitlines() if re.match(r"\| (10|50) \| 5 \| ", line)]
    assert len(rows) == 2
    for row in rows:  # | T | rounds | hand ms | scgrad ms | ratio [low, high] | ...
        cells = [c.strip() for c in row.strip("|").split("|")]
        hand, ours = float(cells[2]), float(cells[3])
        ratio, low, high = map(float, re.findall(r"[\d.]+", cells[4]))
        assert hand > 0 and ours > 0 and low <= ratio <= high
        assert abs(ratio - ours / hand) <= 0.01 + 0.01 * ratio  # the ratio is of the medians shown
    assert "python benchmarks/long_sequences.py --quick" in text


def test_estimator_models_quick_run_writes_both_tables(tmp_path):
    """benchmarks/estimator_models.py --quick: a VAE row per model and estimator, a logistic
    regression row per estimator, finite numbers, the command."""
    import pytest

    pytest.importorskip("mlxtend")
    pytest.importorskip("sklearn")
    script = SCRIPT.parent / "estimator_models.py"
    out = tmp_path / "RESULTS.md"
    done = subprocess.run([sys.executable, str(script), "--quick", "--models", "linear", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    vae = [line for line in text.splitlines() if line.startswith("| linear |")]
    assert len(vae) == 8 and any("| DisARM | 2 | 20 |" in row for row in vae)
    logistic = [line for line in text.splitlines() if re.match(r"\| (ScoreFunction|Reparam|MeasureValued)", line)]
    assert len(logistic) == 4 and "| MeasureValued | 4,700 | 20 |" in text
    for row in vae + logistic:
        numbers = [float(x.replace(",", "")) for x in re.findall(r"-?[\d,]+\.?\d*(?:e[+-]\d+)?", row.split("|", 3)[-1])]
        assert all(np.isfinite(numbers)), row
    assert "python benchmarks/estimator_models.py --quick --models linear" in text
