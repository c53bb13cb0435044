"""Errors of the RL toolkit. Each is raised with one line that says what is wrong and how to fix it;
the command line prints that line and exits non-zero, without a traceback."""


class RLError(Exception):
    """Base class: a user-facing problem with an RL run (bad input, bad files, divergence)."""


class ConfigError(RLError, ValueError):
    """A setting is out of range or of the wrong type (e.g. a negative learning rate)."""


class EnvError(RLError, ValueError):
    """An environment id is unknown or its spaces are not supported."""


class CheckpointError(RLError):
    """A checkpoint or run folder is missing, unreadable or inconsistent."""


class TrainingDiverged(RLError, FloatingPointError):
    """A loss or parameter became NaN or infinite; the last good checkpoint, if any, was kept."""


class PeerLost(RLError, RuntimeError):
    """Another process of a data-parallel run died or could not be reached; this one stopped too
    (the last checkpoint, written before, is intact)."""
