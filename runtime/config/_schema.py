"""The one JSON Schema validator: every schema file in an in-memory registry keyed by `$id`, built once."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

ROOT_SCHEMA_NAME = "finetuning.schema.json"
# A generation config (`ftmodel generate`) is the other root document; it reuses the finetuning definitions.
GENERATION_SCHEMA_NAME = "generation.schema.json"
ROOT_SCHEMA_NAMES = (ROOT_SCHEMA_NAME, GENERATION_SCHEMA_NAME)


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
