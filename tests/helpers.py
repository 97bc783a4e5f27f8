"""What the test files share: paths, base documents, a config maker, error unpacking, chat samples.

Light on purpose (no torch at import time): schema-side tests import it too.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ftconfig.generated.config import FinetuningConfig
    from ftconfig.runtime.config._errors import ConfigError

__all__ = [
    "DATA_DIR",
    "DELETE",
    "EXAMPLES",
    "REPO_ROOT",
    "SYSTEM_USER_ASSISTANT",
    "TINY_MODEL",
    "TWO_EXCHANGES",
    "base_document",
    "load_for_inference",
    "make_config",
    "only_error",
    "tiny_run_document",
    "with_change",
    "with_changes",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples"
TINY_MODEL = EXAMPLES / "tiny-llama"
DATA_DIR = EXAMPLES / "data"

DELETE = object()  # a change value that removes the key

SYSTEM_USER_ASSISTANT = [
    {"role": "system", "content": "S"},
    {"role": "user", "content": "U"},
    {"role": "assistant", "content": "A"},
]
TWO_EXCHANGES = [
    {"role": "user", "content": "U1"},
    {"role": "assistant", "content": "A1"},
    {"role": "user", "content": "U2"},
    {"role": "assistant", "content": "A2"},
]


def base_document() -> dict[str, Any]:
    """examples/minimal.yaml as a fresh document (LoRA on the tiny model, AUTO_SPLIT validation)."""
    from ftconfig.runtime.config._load import read_document

    return read_document(EXAMPLES / "minimal.yaml")


def with_changes(document: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of `document` with each dotted path set to its value (a numeric part indexes a list; DELETE
    removes the key)."""
    result = copy.deepcopy(document)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node: Any = result
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return result


def with_change(path: str, value: Any) -> dict[str, Any]:
    """The base document with one dotted path changed (or removed with DELETE)."""
    return with_changes(base_document(), {path: value})


def make_config(
    model: Path | str = TINY_MODEL,
    *,
    tokenizer: Path | str | None = None,
    model_args: dict[str, Any] | None = None,
    data_conf: dict[str, Any] | None = None,
    **sections: Any,
) -> FinetuningConfig:
    """The base document pointed at `model` (and `tokenizer`), loaded into structs.

    `data_conf` fields are merged into the base data section; every other section given replaces the base one,
    and a section given as None is removed.
    """
    from ftconfig.runtime.config._load import load_config

    document = base_document()
    document["run_conf"]["model"] = str(model)
    if tokenizer is not None:
        document["run_conf"]["tokenizer"] = str(tokenizer)
    if model_args is not None:
        document["run_conf"]["model_args"] = model_args
    document["data_conf"].update(data_conf or {})
    for name, section in sections.items():
        if section is None:
            document.pop(name, None)
        else:
            document[name] = section
    return load_config(document)


def only_error(excinfo: pytest.ExceptionInfo[ConfigError]) -> tuple[str, str]:
    """The location and rendered message of the one error item a ConfigError carries."""
    (item,) = excinfo.value.items
    return item.location, item.render()


def tiny_run_document(output_dir: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A small, fast run config for the shipped tiny model (see tools/build_tiny_model.tiny_run_document)."""
    from ftconfig.tools.build_tiny_model import tiny_run_document as build

    return build(output_dir, EXAMPLES, **sections)


def load_for_inference(base_path: Path | str, adapter_path: Path) -> Any:
    """Run the guide's loading snippet ("New tokens and serving") with its two paths replaced, so the documented
    lines are the tested ones."""
    section = (
        (REPO_ROOT / "docs" / "guide.md")
        .read_text(encoding="utf-8")
        .split("### New tokens and serving", 1)[1]
    )
    match = re.search(r"^```python\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert match is not None, "the guide lost its loading snippet"
    code = match.group(1)
    for placeholder, path in (
        ("outputs/run/checkpoint-final", adapter_path),
        ("/local_resources/basemodel", base_path),
    ):
        assert f'"{placeholder}"' in code
        code = code.replace(f'"{placeholder}"', repr(str(path)))
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    return namespace["model"]
