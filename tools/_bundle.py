"""Write `generated/ftconfig.schema.json` (finetuning configs) and `generated/ftconfig-generation.schema.json`
(generation configs): each root with every schema file it can reach merged in, with only local `$ref`s.

Editors (VS Code, yaml-language-server) and CI tools get one file they can use as is, without resolving our
cross-file references.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from ftconfig.runtime.config._schema import (
    GENERATION_SCHEMA_NAME,
    ROOT_SCHEMA_NAME,
    ROOT_SCHEMA_NAMES,
    schema_documents,
)
from ftconfig.tools._paths import BUNDLE_FILE, GENERATION_BUNDLE_FILE

BUNDLE_ID = "https://ftconfig.dev/schema/ftconfig.schema.json"
GENERATION_BUNDLE_ID = "https://ftconfig.dev/schema/ftconfig-generation.schema.json"
# Each bundle: its root schema file, its $id and where it is written.
BUNDLES = (
    (ROOT_SCHEMA_NAME, BUNDLE_ID, BUNDLE_FILE),
    (GENERATION_SCHEMA_NAME, GENERATION_BUNDLE_ID, GENERATION_BUNDLE_FILE),
)


class BundleError(RuntimeError):
    """Two schema files define the same `$defs` name."""


def _definition_name(document: dict[str, Any]) -> str:
    return str(document["title"])


def _rewrite_refs(node: Any, file_names: dict[str, str]) -> Any:
    """Point every `$ref` at the bundle's own `$defs`."""
    if isinstance(node, list):
        return [_rewrite_refs(item, file_names) for item in node]
    if not isinstance(node, dict):
        return node
    result = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            target_file, _, fragment = value.partition("#")
            if target_file:
                value = "#" + fragment if fragment else "#/$defs/" + file_names[target_file]
            result[key] = value
        else:
            result[key] = _rewrite_refs(value, file_names)
    return result


def _null_first(node: Any) -> Any:
    """List "null" first in nullable type lists whose default is null.

    Same meaning; it works around yaml-language-server 2.0.0, whose completion crashes (and silently returns a
    partial list) on `{"type": ["string", "null"], "default": null}` inside an object property.
    """
    if isinstance(node, list):
        return [_null_first(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _null_first(value) for key, value in node.items()}
    types = result.get("type")
    if isinstance(types, list) and "null" in types and "default" in result and result["default"] is None:
        result["type"] = ["null", *[name for name in types if name != "null"]]
    return result


def build_bundle(root_name: str = ROOT_SCHEMA_NAME, bundle_id: str = BUNDLE_ID) -> dict[str, Any]:
    """The single-file schema of one root document, as a dict (the other root is left out)."""
    documents = {
        name: document
        for name, document in schema_documents().items()
        if name == root_name or name not in ROOT_SCHEMA_NAMES
    }
    # Files referenced as a whole (training_args) become one definition named after their title.
    whole_files = {name: _definition_name(doc) for name, doc in documents.items() if "properties" in doc}
    root = copy.deepcopy(documents[root_name])
    definitions: dict[str, Any] = {}
    for name, document in documents.items():
        document = copy.deepcopy(document)
        if name != root_name and name in whole_files:
            body = {key: value for key, value in document.items() if key not in ("$schema", "$id", "$defs")}
            definitions[whole_files[name]] = body
        for def_name, definition in document.get("$defs", {}).items():
            if def_name in definitions:
                raise BundleError(f"$defs name {def_name!r} is defined twice (second time in {name})")
            definitions[def_name] = definition
    root.pop("$defs", None)
    root["$id"] = bundle_id
    root["$defs"] = dict(sorted(definitions.items()))
    return _null_first(_rewrite_refs(root, whole_files))


def render_bundle(root_name: str = ROOT_SCHEMA_NAME, bundle_id: str = BUNDLE_ID) -> str:
    return json.dumps(build_bundle(root_name, bundle_id), indent=2, ensure_ascii=False) + "\n"


def write_bundle(*, check: bool) -> bool:
    """Write (or compare, with check) both bundles; return True when they are up to date."""
    fresh = True
    for root_name, bundle_id, target in BUNDLES:
        text = render_bundle(root_name, bundle_id)
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if check:
            fresh = fresh and current == text
        elif current != text:
            target.write_text(text, encoding="utf-8")
    return fresh
