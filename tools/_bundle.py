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
from ftconfig.tools._files import write_or_check
from ftconfig.tools._paths import BUNDLE_FILE, GENERATION_BUNDLE_FILE

__all__ = ["BUNDLE_ID", "BundleError", "build_bundle", "render_bundle", "write_bundle"]

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
    bundle: dict[str, Any] = _with_user_titles(_null_first(_rewrite_refs(root, whole_files)))
    return bundle


def _tag_of(variant: dict[str, Any]) -> str | None:
    """`peft_type: LORA` for a union variant told apart by a `const` property, else None."""
    for key, node in variant.get("properties", {}).items():
        if isinstance(node, dict) and "const" in node:
            return f"{key}: {node['const']}"
    return None


def _config_paths(
    node: Any, path: str, defs: dict[str, Any], paths: dict[str, list[str]], label: str | None = None
) -> None:
    """Where in a config each definition is used (`data_conf.training_data`), in the order a config reads.

    A union variant is labelled with its tag (`peft_conf (peft_type: LORA)`); keys inside it use the plain path.
    """
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        where = paths.setdefault(name, [])
        if (label or path) not in where:
            where.append(label or path)
            _config_paths(defs[name], path, defs, paths)
    for keyword in ("then", "else"):  # the root chooses the method's document
        if isinstance(node.get(keyword), dict):
            _config_paths(node[keyword], path, defs, paths)
    for keyword in ("oneOf", "anyOf"):
        for branch in node.get(keyword, []):
            target = branch
            if isinstance(branch.get("$ref"), str) and branch["$ref"].startswith("#/$defs/"):
                target = defs[branch["$ref"].removeprefix("#/$defs/")]
            tag = _tag_of(target)
            _config_paths(branch, path, defs, paths, f"{path} ({tag})" if tag else None)
    for key, child in node.get("properties", {}).items():
        _config_paths(child, f"{path}.{key}" if path else key, defs, paths)
    if isinstance(node.get("items"), dict):
        _config_paths(node["items"], f"{path}[]", defs, paths)


def _with_user_titles(bundle: dict[str, Any]) -> dict[str, Any]:
    """Editors show a definition's `title` above the description of each key inside it. The schema files'
    titles are the generated class names (SilogenTrainingArguments); the bundle titles each definition with
    where it sits in a config (`training_args`, `peft_conf (peft_type: LORA)`) instead."""
    defs = bundle["$defs"]
    paths: dict[str, list[str]] = {}
    _config_paths(bundle, "", defs, paths)
    for name, where in paths.items():
        where = [place for place in where if place]  # "": a method's whole document, titled by its own title
        if where:
            defs[name] = {**defs[name], "title": " or ".join(where)}
    return bundle


def render_bundle(root_name: str = ROOT_SCHEMA_NAME, bundle_id: str = BUNDLE_ID) -> str:
    return json.dumps(build_bundle(root_name, bundle_id), indent=2, ensure_ascii=False) + "\n"


def write_bundle(*, check: bool) -> bool:
    """Write (or compare, with check) both bundles; return True when they are up to date."""
    fresh = True
    for root_name, bundle_id, target in BUNDLES:
        fresh = write_or_check(target, render_bundle(root_name, bundle_id), check=check) and fresh
    return fresh
