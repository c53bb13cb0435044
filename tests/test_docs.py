"""Every public module, class, function and method of the installed package has a docstring
(inherited ones count: an override documented on its base class is documented)."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import types
from typing import List

import scgrad


def undocumented(module: types.ModuleType) -> List[str]:
    """Public names defined in ``module`` (not imported into it) that have no docstring."""
    missing = [] if module.__doc__ else [module.__name__]
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if not inspect.getdoc(obj):
            missing.append(f"{module.__name__}.{name}")
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                public = not attr.startswith("_")
                if public and (inspect.isfunction(member) or isinstance(member, property)) \
                        and not inspect.getdoc(getattr(obj, attr)):
                    missing.append(f"{module.__name__}.{name}.{attr}")
    return missing


def test_every_public_name_of_scgrad_has_a_docstring():
    missing = []
    for info in pkgutil.walk_packages(scgrad.__path__, "scgrad."):
        if not info.name.endswith("__main__"):  # running it would start the command line
            missing += undocumented(importlib.import_module(info.name))
    assert not missing, f"no docstring: {missing}"


def test_the_check_finds_what_is_missing():
    """Negative control: a module with an undocumented function, class and method is flagged,
    its private and imported names are not."""
    module = types.ModuleType("fake", "A module.")
    source = ("import math\n"
              "from math import sqrt\n"
              "def f(): pass\n"
              "def _private(): pass\n"
              "def g():\n    '''Documented.'''\n"
              "class C:\n    '''Documented.'''\n    def m(self): pass\n    def _n(self): pass\n"
              "class D: pass\n")
    exec(compile(source, "fake.py", "exec"), module.__dict__)
    assert undocumented(module) == ["fake.f", "fake.C.m", "fake.D"]
