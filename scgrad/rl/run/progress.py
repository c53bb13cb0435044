"""A small progress bar on stderr (no dependency)."""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class ProgressBar:
    """``[#####.....]  50%  50000/100000 steps  4,210 steps/s  ETA 12s  return 123.4``.

    On a terminal it redraws one line (at most 10 times a second, as steps are reported with
    ``advance``); into a file or pipe it writes a line at every 10% so logs stay short.

    Args:
        total: the number of steps at 100%.
        start: steps already done (a resumed run).
        stream: where to draw (stderr).
        unit: what is counted: ``steps`` (environment steps), or a progress.csv column such as
            ``Episodes`` (shown in lower case).
    """

    def __init__(self, total: int, start: int = 0, stream: Optional[TextIO] = None, width: int = 24,
                 unit: str = "steps") -> None:
        self.total, self.start, self.width = max(total, 1), start, width
        self.unit = "steps" if unit in ("steps", "TotalEnvInteracts") else unit.lower()
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.perf_counter()
        self._last_draw, self._last_decile = 0.0, start * 10 // self.total
        self.done, self.note = start, ""

    def advance(self, steps: int) -> None:
        """``steps`` more steps done (called as the environments step; cheap when nothing is drawn)."""
        self.done += steps
        self.update(self.done, self.note)

    def update(self, done: int, note: str = "") -> None:
        """Show ``done`` steps finished, with an optional note (e.g. the latest mean return)."""
        self.done, self.note = done, note
        now = time.perf_counter()
        decile = done * 10 // self.total
        if self.tty and (now - self._last_draw < 0.1 and done < self.total):
            return
        if not self.tty and decile == self._last_decile and done < self.total:
            return
        self._last_draw, self._last_decile = now, decile
        rate = (done - self.start) / max(now - self.t0, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        filled = self.width * done // self.total
        line = (f"[{'#' * filled}{'.' * (self.width - filled)}] {100 * done // self.total:3d}%  "
                f"{done}/{self.total} {self.unit}  {rate:,.0f} {self.unit}/s  ETA {_duration(eta)}  {note}")
        self.stream.write(("\r" + line + "\033[K") if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line (on a terminal, where it was redrawn in place)."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
