"""Shared fixtures of the RL tests. Without gymnasium (``pip install scgrad[rl]``) only the
pure-function tests run."""
import importlib.util
import os
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("gymnasium") is None:
    if os.environ.get("CI"):  # CI installs the rl extra: a missing gymnasium is a broken install
        raise RuntimeError("CI run without gymnasium: install with `bash scripts/install.sh`")
    collect_ignore_glob = [p.name for p in Path(__file__).parent.glob("test_*.py") if p.name != "test_returns.py"]
else:
    sys.path.insert(0, str(Path(__file__).parent))  # toy_envs, importable by name as from the CLI
    import toy_envs  # noqa: F401  (registers the toy environments)


def pytest_configure(config):
    config.addinivalue_line("markers", "learning: trains an agent to a return threshold (slow)")


@pytest.fixture
def cpu_threads():
    """One torch thread, as the command line uses: small networks run fastest so."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
