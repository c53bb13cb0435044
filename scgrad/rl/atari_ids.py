"""The Atari environment ids scgrad makes itself (``envs.atari``), recognised by name alone (no
import of ale-py), so settings and presets can tell them apart early."""
from __future__ import annotations

import re
from typing import Optional, Tuple

#: ``ALE/Pong-v5`` → ("pong", "v5"); ``PongNoFrameskip-v4`` → ("pong", "v4")
_V5 = re.compile(r"^ALE/([A-Za-z0-9]+)-v5$")
_V4 = re.compile(r"^([A-Za-z0-9]+)NoFrameskip-v4$")


def parse_atari_id(env_id: str) -> Optional[Tuple[str, str]]:
    """(ROM name, protocol) for an Atari id this module makes, else ``None``."""
    for pattern, protocol in ((_V5, "v5"), (_V4, "v4")):
        match = pattern.match(env_id)
        if match:
            return _rom_name(match.group(1)), protocol
    return None


def _rom_name(game: str) -> str:
    """``SpaceInvaders`` → ``space_invaders`` (ale-py's ROM names)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", game).lower()
