"""The core's dependencies point one way (records ← protocol ← estimators ← surrogate ← graph ←
testing ← rl): each module imports only from its own layer or the layers below (``LAYERS``,
lowest first), late imports inside functions included. A cycle between two modules would need
one of them to import upwards, so this also keeps the core free of import cycles."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List

import scgrad

ROOT = Path(scgrad.__file__).parent

LAYERS = [
    ["errors", "_shapes"],
    ["nodes"],                                       # records: plain data
    ["protocol", "nested", "layout"],                # the extension protocol; pure helpers
    ["baselines", "distributions", "provenance", "ancestry"],
    ["estimators", "credit", "checks"],
    ["surrogate"],                                   # the mathematics of the surrogate
    ["graph"],                                       # recording
    ["testing", "demo"],
    ["rl"],
    ["__init__"],
]


def layer_of(module: str) -> int:
    """The layer of a module of scgrad, by its first dotted component."""
    for i, names in enumerate(LAYERS):
        if module.split(".")[0] in names:
            return i
    raise AssertionError(f"scgrad.{module} is in no layer: add it to LAYERS")


def imports(path: Path, module: str) -> List[str]:
    """The scgrad modules (relative to scgrad) that ``path`` (module ``module``) imports."""
    if module == "__init__":
        package = []
    else:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [".".join(base + [a.name]) for a in node.names]
            elif node.module and node.module.split(".")[0] == "scgrad":
                names = [node.module[len("scgrad."):]] if node.module != "scgrad" else [a.name for a in node.names]
            else:
                continue
            found += [n for n in names if n]
        elif isinstance(node, ast.Import):
            found += [a.name[len("scgrad."):] for a in node.names if a.name.startswith("scgrad.")]
    return found


def violations(root: Path) -> Dict[str, List[str]]:
    """module -> the imports in it that point to a higher layer."""
    bad: Dict[str, List[str]] = {}
    for path in sorted(root.rglob("*.py")):
        module = path.relative_to(root).with_suffix("").as_posix().replace("/", ".")
        if module != "__init__":
            module = module.removesuffix(".__init__")
        if module.split(".")[0] == "rl":
            continue  # the RL toolkit has its own layers (tests/rl/test_layers.py)
        own = layer_of(module)
        for target in imports(path, module):
            if target.split(".")[0] != module.split(".")[0] and layer_of(target) > own:
                bad.setdefault(module, []).append(target)
    return bad


def test_every_core_import_points_down_the_layers():
    assert violations(ROOT) == {}


def test_an_upward_import_is_caught(tmp_path):
    """Negative control: a record importing the estimators (the old cycle), and the protocol
    importing the graph late, inside a function."""
    (tmp_path / "nodes").mkdir()
    (tmp_path / "nodes" / "stochastic.py").write_text("from ..estimators.score_function import ScoreFunction\n")
    (tmp_path / "protocol.py").write_text("def f():\n    from scgrad.graph import Graph\n")
    assert violations(tmp_path) == {"nodes.stochastic": ["estimators.score_function"], "protocol": ["graph"]}
