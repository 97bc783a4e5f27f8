"""peft's config classes read from peft's source, not imported: the dry run checks peft_kwargs with them.

Importing any part of peft runs its package `__init__`, which imports bitsandbytes (whose import compiles kernels
through `torch.compile`, pulling in `torch._inductor`) and transformers' modeling code: seconds that a plan does not
need. The dataclass fields of a config class and their annotations are all the kwargs check needs, and they are
plainly written in peft's `config.py` files.
"""

from __future__ import annotations

import ast
import functools
import importlib.machinery
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PeftConfigFields", "peft_config_fields"]

# Names peft's annotations use; anything else (nested config dataclasses, torch types) is left unchecked.
_ANNOTATION_NAMES: dict[str, Any] = {
    **{name: getattr(typing, name) for name in ("Any", "Literal", "Optional", "Union", "Callable")},
    **{cls.__name__: cls for cls in (bool, int, float, str, bytes, list, dict, tuple, set, type(None))},
}


@dataclass(frozen=True)
class PeftConfigFields:
    """A peft config class as its source declares it: constructor fields and their annotations (None: unknown)."""

    class_name: str
    fields: dict[str, Any]


def _peft_folder() -> Path | None:
    """peft's installed package folder, found without importing peft (nor consulting sys.modules)."""
    spec = importlib.machinery.PathFinder.find_spec("peft")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def _classes(path: Path) -> dict[str, ast.ClassDef]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def _sets_peft_type(node: ast.ClassDef, peft_type: str) -> bool:
    """The class's own methods assign `self.peft_type = PeftType.<peft_type>`."""
    for child in ast.walk(node):
        if isinstance(child, ast.Assign) and isinstance(child.value, ast.Attribute):
            target = child.targets[0]
            if (
                isinstance(target, ast.Attribute)
                and target.attr == "peft_type"
                and isinstance(child.value.value, ast.Name)
                and child.value.value.id == "PeftType"
                and child.value.attr == peft_type
            ):
                return True
    return False


def _is_init_field(statement: ast.AnnAssign) -> bool:
    """A dataclass field the constructor takes: not a ClassVar, not `field(init=False)`."""
    if "ClassVar" in ast.unparse(statement.annotation):
        return False
    value = statement.value
    if (
        isinstance(value, ast.Call)
        and getattr(value.func, "id", getattr(value.func, "attr", None)) == "field"
    ):
        for keyword in value.keywords:
            if keyword.arg == "init" and isinstance(keyword.value, ast.Constant):
                return bool(keyword.value.value)
    return True


def _annotation(node: ast.expr) -> Any:
    """The annotation as a type when it only uses builtins and typing; None when it names anything else."""
    try:
        return eval(ast.unparse(node), {"__builtins__": {}}, dict(_ANNOTATION_NAMES))
    except Exception:
        return None


def _fields(name: str, index: dict[str, ast.ClassDef], seen: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Dataclass fields of a class and its bases (bases first, as dataclasses order them)."""
    node = index.get(name)
    if node is None or name in seen:
        return {}
    fields: dict[str, Any] = {}
    for base in node.bases:
        base_name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", None)
        if base_name is not None:
            fields.update(_fields(base_name, index, seen | {name}))
    for statement in node.body:
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            if _is_init_field(statement):
                fields[statement.target.id] = _annotation(statement.annotation)
            else:
                fields.pop(statement.target.id, None)
    return fields


def _find(peft_type: str, files: list[Path]) -> PeftConfigFields | None:
    index: dict[str, ast.ClassDef] = {}
    for path in files:
        if path.is_file():
            index.update(_classes(path))
    for name, node in index.items():
        if _sets_peft_type(node, peft_type):
            return PeftConfigFields(name, _fields(name, index))
    return None


@functools.cache
def peft_config_fields(peft_type: str) -> PeftConfigFields | None:
    """The config class peft registers for `peft_type` (e.g. LORA → LoraConfig), read from peft's source.

    None when peft is not installed or its source does not have the expected shape; the caller then imports peft.
    The tuner's own folder is read first (`tuners/lora/config.py`), every tuner's (and `tuners/*.py`, where shared
    bases such as LycorisConfig live) only when a base class lives elsewhere or the folder is named differently.
    """
    folder = _peft_folder()
    if folder is None:
        return None
    base = folder / "config.py"
    found = _find(peft_type, [base, folder / "tuners" / peft_type.lower() / "config.py"])
    if found is None or "task_type" not in found.fields:
        tuners = folder / "tuners"
        found = _find(peft_type, [base, *sorted(tuners.glob("*.py")), *sorted(tuners.glob("*/config.py"))])
    return found
