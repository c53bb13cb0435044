"""`python -m scgrad.demo`, the README's first command, prints what it claims."""
import re

from scgrad import demo


def test_demo_rows_agree_with_the_exact_gradient_except_the_biased_one():
    lines = demo.run(runs=200, batch=16, seed=0)
    rows = {m.group(1).strip(): (m.group(2) == "True", m.group(3))
            for m in (re.match(r"(.{34}) (True|False)\s+(\S+)", line) for line in lines) if m}
    assert len(rows) == 6
    for label, (unbiased, z) in rows.items():
        if unbiased:
            # |z| < 5 per entry: false-failure rate < 9 entries x 5 rows x 5.7e-7 ≈ 3e-5 (CLT).
            assert z != "wrong" and float(z) < 5.0, label
        else:
            # Negative control: straight-through's bias is ~20 standard errors at 200 runs.
            assert float(z) > 5.0, label


def test_demo_main_prints_the_exact_gradient(capsys):
    demo.main(["--runs", "20"])
    out = capsys.readouterr().out
    assert "exact gradient (by enumeration)" in out and "StraightThrough" in out


def test_demo_runs_on_one_thread_and_gives_the_count_back(monkeypatch):
    import torch

    seen = []
    monkeypatch.setattr(demo, "run", lambda *args: seen.append(torch.get_num_threads()) or [])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        demo.main([])
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
