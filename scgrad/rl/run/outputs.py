"""Checks on a file the command line is about to write (a plot, a video), made before the work
that fills it: a typo in the path fails at once, in one line, not after the episodes or the drawing."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from scgrad.rl.errors import RLError


def check_output_file(path: str | os.PathLike, formats: Iterable[str], flag: str) -> Path:
    """``path`` as a ``Path`` if a file of one of ``formats`` (extensions, lower case, no dot)
    can be created there; otherwise an ``RLError`` naming ``flag``, the path and the fix."""
    path = Path(path)
    formats = sorted(formats)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in formats:
        given = f"a .{suffix} file" if suffix else "a file without an extension"
        raise RLError(f"{flag} {path}: cannot write {given}; end the name with one of "
                      f"{', '.join('.' + f for f in formats)}")
    folder = path.parent
    if not folder.is_dir():
        raise RLError(f"{flag} {path}: the folder {folder} does not exist; create it or choose another")
    if path.is_dir():
        raise RLError(f"{flag} {path}: this is a folder; give a file name")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RLError(f"{flag} {path}: the folder {folder} is not writable; choose another")
    return path
