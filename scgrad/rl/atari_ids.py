"""The Atari environment ids scgrad makes itself (``envs.atari``), recognised by name alone (no
import of ale-py), so settings and presets can tell them apart early."""
from __future__ import annotations

import re
from typing import Optional, Tuple

#: ``ALE/Pong-v5`` → ("pong", "v5"); ``PongNoFrameskip-v4`` → ("pong", "v4");
#: ``Karpathy/Pong-v0`` → ("pong", "karpathy") (the blog's Pong-v0 with its preprocessing)
_V5 = re.compile(r"^ALE/([A-Za-z0-9]+)-v5$")
_V4 = re.compile(r"^([A-Za-z0-9]+)NoFrameskip-v4$")
_KARPATHY = re.compile(r"^Karpathy/([A-Za-z0-9]+)-v0$")


def parse_atari_id(env_id: str) -> Optional[Tuple[str, str]]:
    """(ROM name, protocol) for an Atari id this module makes, else ``None``."""
    for pattern, protocol in ((_V5, "v5"), (_V4, "v4"), (_KARPATHY, "karpathy")):
        match = pattern.match(env_id)
        if match:
            return _rom_name(match.group(1)), protocol
    return None


def _rom_name(game: str) -> str:
    """``SpaceInvaders`` → ``space_invaders`` (ale-py's ROM names)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", game).lower()


#: What each protocol means, stated with every evaluation result.
PROTOCOL_TERMS = {
    "v5": "sticky actions 0.25, frame skip 4, full games, 108,000-frame cap, unclipped scores",
    "v4": "no sticky actions, frame skip 4, full games, 108,000-frame cap, unclipped scores",
    "karpathy": "gym Pong-v0: sticky actions 0.25, frame skip 2-4, full games, 108,000-frame cap, unclipped scores",
}


def describe_protocol(env_id: str) -> Optional[str]:
    """``"v5 (sticky actions 0.25, ...)"`` for an Atari id this module makes, else ``None``."""
    parsed = parse_atari_id(env_id)
    return None if parsed is None else f"{parsed[1]} ({PROTOCOL_TERMS[parsed[1]]})"
