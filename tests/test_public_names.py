"""Every module of ours says what it exports, and `__all__` is the truth: each listed name is defined in the
module and public, and every public name another file imports from a module is listed there.

Each module is imported here (the torch-side ones too), so a listed name that does not exist fails as well.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

# Source folder -> package name (pyproject's package-dir). generated/ is written by a tool; __main__ runs.
PACKAGES = {"ftconfig": "ftconfig", "runtime": "ftconfig.runtime", "tools": "ftconfig.tools"}
NOT_IMPORTED = {"__main__.py"}


def our_modules() -> dict[str, Path]:
    modules = {}
    for folder, package in PACKAGES.items():
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            if path.name in NOT_IMPORTED:
                continue
            parts = path.relative_to(REPO_ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


MODULES = our_modules()


def top_level_names(path: Path) -> set[str]:
    """Functions, classes and assigned names at the top level of a source file."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def imported_public_names() -> dict[str, set[str]]:
    """module -> the public names that any file of the repository imports from it (`from module import name`)."""
    used: dict[str, set[str]] = {}
    for folder in (*PACKAGES, "tests"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module in MODULES:
                    names = {alias.name for alias in node.names if not alias.name.startswith("_")}
                    used.setdefault(node.module, set()).update(names - {f"{node.module}.{n}" for n in names})
    # `from ftconfig.runtime.data import records`-style imports name submodules, not exports.
    return {
        module: {name for name in names if f"{module}.{name}" not in MODULES}
        for module, names in used.items()
    }


def test_every_module_is_found() -> None:
    assert {"ftconfig.runtime.training._run", "ftconfig.tools._bundle", "ftconfig._ftrun_cli"} <= set(MODULES)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_all_lists_names_the_module_defines_and_that_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ lists a name twice"
    missing = [item for item in exported if not hasattr(module, item)]
    assert not missing, f"{name}.__all__ lists names it does not have: {missing}"
    assert not [item for item in exported if item.startswith("_")], f"{name}.__all__ lists a private name"
    if MODULES[name].name != "__init__.py":  # a package may re-export; a module exports its own names
        foreign = set(exported) - top_level_names(MODULES[name])
        assert not foreign, f"{name}.__all__ re-exports names defined elsewhere: {sorted(foreign)}"


def test_every_public_name_imported_from_a_module_is_in_its_all() -> None:
    unlisted = {
        module: sorted(names - set(importlib.import_module(module).__all__))
        for module, names in imported_public_names().items()
    }
    assert not {module: names for module, names in unlisted.items() if names}
