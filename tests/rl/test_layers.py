"""The RL toolkit's dependencies point one way: each module imports only from its own layer or
the layers below it (``LAYERS``, lowest first), late imports inside functions included."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

import scgrad.rl

ROOT = Path(scgrad.rl.__file__).parent

#: lowest first: settings and the process group; environments; networks; returns; collected data; losses and
#: optimisers; the run machinery (no algorithm in it); the algorithms; the front end.
LAYERS = [
    ["errors", "atari_ids", "presets", "config", "distributed"],
    ["envs"],
    ["nets"],
    ["returns"],
    ["data"],
    ["losses", "optim"],
    ["run"],
    ["algos"],
    ["agents", "cli", "__main__", "__init__"],
]


def layer_of(module: str) -> int:
    """The layer of ``module`` (dotted, relative to scgrad.rl): that of its first component."""
    head = module.split(".")[0]
    for i, names in enumerate(LAYERS):
        if head in names:
            return i
    raise AssertionError(f"scgrad.rl.{module} is in no layer: add it to LAYERS")


def rl_imports(path: Path) -> List[Tuple[int, str]]:
    """(line, imported module relative to scgrad.rl) for every import of scgrad.rl in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "scgrad.rl":
                found += [(node.lineno, alias.name) for alias in node.names]
            elif node.module.startswith("scgrad.rl."):
                found.append((node.lineno, node.module[len("scgrad.rl."):]))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.append((node.lineno, f"<relative import of {node.module}>"))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name[len("scgrad.rl."):]) for a in node.names if a.name.startswith("scgrad.rl.")]
    return found


def violations(root: Path) -> Dict[str, List[str]]:
    """module -> the imports in it that point to a higher layer (or are relative)."""
    bad: Dict[str, List[str]] = {}
    for path in sorted(root.rglob("*.py")):
        module = path.relative_to(root).with_suffix("").as_posix().replace("/", ".")
        module = module.removesuffix(".__init__") if module != "__init__" else module
        own = layer_of(module)
        for line, target in rl_imports(path):
            if target.startswith("<") or layer_of(target) > own:
                bad.setdefault(module, []).append(f"line {line}: {target}")
    return bad


def test_every_import_points_down_the_layers():
    assert violations(ROOT) == {}


def test_an_upward_import_is_caught(tmp_path):
    """Negative control: a network module importing the run loop, and a relative import."""
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "bad.py").write_text("def f():\n    from scgrad.rl.run.loop import run\n")
    (tmp_path / "envs.py").write_text("from .nets import bad\n")
    assert violations(tmp_path) == {"nets.bad": ["line 2: run.loop"], "envs": ["line 1: <relative import of nets>"]}


def test_a_module_outside_the_layers_is_reported(tmp_path):
    (tmp_path / "stray.py").write_text("x = 1\n")
    with pytest.raises(AssertionError, match="stray is in no layer"):
        violations(tmp_path)
