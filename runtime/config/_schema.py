"""The one JSON Schema validator: every schema file in an in-memory registry keyed by `$id`, built once."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = [
    "CODEGEN_ROOT_NAMES",
    "GENERATION_SCHEMA_NAME",
    "METHOD_SCHEMA_NAMES",
    "ROOT_SCHEMA_NAME",
    "ROOT_SCHEMA_NAMES",
    "SECRET_KEYWORD",
    "check_schemas",
    "config_validator",
    "generation_validator",
    "root_schema",
    "schema_documents",
    "schema_registry",
    "secret_properties",
]

ROOT_SCHEMA_NAME = "experiment.schema.json"
# The document each training method is validated against; the root chooses one by the top-level `method`.
METHOD_SCHEMA_NAMES = {"sft": "finetuning.schema.json", "dpo": "dpo.schema.json"}
# A generation config (`ftmodel generate`) is the other root document; it reuses the finetuning definitions.
GENERATION_SCHEMA_NAME = "generation.schema.json"
ROOT_SCHEMA_NAMES = (ROOT_SCHEMA_NAME, GENERATION_SCHEMA_NAME)
# The documents whose structs gen-code generates side by side: each method's document and the generation config
# (the root itself only chooses a method document by `method`).
CODEGEN_ROOT_NAMES = (*METHOD_SCHEMA_NAMES.values(), GENERATION_SCHEMA_NAME)
# Our annotation keyword on a property that holds a secret: "value" (the whole value is a secret) or "uri" (a
# URI whose user:password@ and token-like query parameters are secrets). Validators ignore it.
SECRET_KEYWORD = "x-ftconfig-secret"


@functools.cache
def schema_documents() -> dict[str, dict[str, Any]]:
    """All `*.schema.json` files shipped in `ftconfig.schema`, by file name."""
    folder = resources.files("ftconfig.schema")
    return {
        entry.name: json.loads(entry.read_text(encoding="utf-8"))
        for entry in sorted(folder.iterdir(), key=lambda item: item.name)
        if entry.name.endswith(".schema.json")
    }


@functools.cache
def schema_registry() -> Registry:
    """A referencing Registry of every schema file; nothing is ever fetched."""
    pairs = [
        (document["$id"], Resource.from_contents(document, default_specification=DRAFT202012))
        for document in schema_documents().values()
    ]
    return Registry().with_resources(pairs)


def root_schema() -> dict[str, Any]:
    return schema_documents()[ROOT_SCHEMA_NAME]


@functools.cache
def config_validator() -> Draft202012Validator:
    """The cached validator for a whole finetuning config."""
    return Draft202012Validator(
        root_schema(), registry=schema_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


@functools.cache
def secret_properties() -> dict[tuple[str, ...], str]:
    """Every config path (keys from the top) whose property the schema marks with SECRET_KEYWORD, and its mark.

    Follows properties, `$ref`s, `anyOf`/`oneOf`/`allOf` and `if`/`then`/`else` branches from the root schema
    (the root chooses the method's document with if/then/else).
    """
    found: dict[tuple[str, ...], str] = {}
    seen: set[tuple[int, tuple[str, ...]]] = set()

    def walk(node: Any, resolver: Any, path: tuple[str, ...]) -> None:
        if not isinstance(node, dict) or (id(node), path) in seen:
            return
        seen.add((id(node), path))
        if isinstance(node.get("$ref"), str):
            resolved = resolver.lookup(node["$ref"])
            walk(resolved.contents, resolved.resolver, path)
        if SECRET_KEYWORD in node:
            found[path] = str(node[SECRET_KEYWORD])
        for name, child in node.get("properties", {}).items():
            walk(child, resolver, (*path, name))
        for keyword in ("anyOf", "oneOf", "allOf"):
            for branch in node.get(keyword, []):
                walk(branch, resolver, path)
        for keyword in ("if", "then", "else"):
            walk(node.get(keyword), resolver, path)

    root = root_schema()
    walk(root, schema_registry().resolver(base_uri=root["$id"]), ())
    return found


def generation_validator() -> Draft202012Validator:
    """The cached validator for a whole generation config."""
    return Draft202012Validator(
        schema_documents()[GENERATION_SCHEMA_NAME],
        registry=schema_registry(),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def check_schemas() -> None:
    """Raise jsonschema.SchemaError if any schema file is not a valid draft 2020-12 schema."""
    for document in schema_documents().values():
        Draft202012Validator.check_schema(document)
