"""Writing one benchmark's section of benchmarks/RESULTS.md, leaving the other sections alone."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List

import _timing


def update_section(path: Path, section: str, start_mark: str, end_mark: str) -> None:
    """Replace the text between ``start_mark`` and ``end_mark`` in ``path`` with ``section``
    (which includes the marks), or append it if the marks are absent."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    start, end = text.find(start_mark), text.find(end_mark)
    if start != -1 and end > start:
        text = text[:start] + section + text[end + len(end_mark):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def made_by(command: str) -> List[str]:
    """A section's closing lines: the machine, the date, the load at the end and the command
    that made it (in a bash block)."""
    machine = _timing.machine()
    return [f"Machine: {machine['cpu']}, {machine['cpu_count']} cores, torch {machine['torch']}; "
            f"run {machine['date']}, 1-minute load average {os.getloadavg()[0]:.2f} at the end. Made by:", "",
            "```bash", command, "```"]
