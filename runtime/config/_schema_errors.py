"""Turn jsonschema's errors into ErrorItems users can act on: path, problem in words, what to do.

This is the only place that reads jsonschema errors. Discriminated `oneOf`s are followed into the branch whose tag
matched, so users never see "is not valid under any of the given schemas".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from jsonschema.exceptions import ValidationError

from ftconfig.runtime.config._errors import ErrorItem

__all__ = ["JSON_TYPE_WORDS", "describe_errors", "describe_value", "suggest"]

JSON_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true/false)",
    "null": "null",
}


def describe_value(value: Any) -> str:
    """A short clause naming a value and its type, e.g. `'abc' (a string)`."""
    if isinstance(value, bool):
        kind = "a boolean"
    elif value is None:
        return "null"
    elif isinstance(value, int):
        kind = "an integer"
    elif isinstance(value, float):
        kind = "a number"
    elif isinstance(value, str):
        kind = "a string"
    elif isinstance(value, list):
        return "a list"
    elif isinstance(value, dict):
        return "a mapping"
    else:
        kind = type(value).__name__
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({kind})"


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """'Did you mean ...?' for the closest candidates (difflib imported lazily, as click does)."""
    from difflib import get_close_matches

    matches = get_close_matches(word, sorted(candidates), n=3, cutoff=0.6)
    if not matches:
        return None
    return "Did you mean " + " or ".join(repr(match) for match in matches) + "?"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]"


def _type_words(expected: str | Sequence[str]) -> str:
    names = [expected] if isinstance(expected, str) else list(expected)
    return " or ".join(JSON_TYPE_WORDS.get(name, name) for name in names)


def _unknown_key_items(error: ValidationError) -> list[ErrorItem]:
    schema = error.schema if isinstance(error.schema, dict) else {}
    known = set(schema.get("properties", {}))
    forbidden: dict[str, str] = schema.get("x-ftconfig-forbidden", {})
    instance = error.instance if isinstance(error.instance, dict) else {}
    items = []
    for key in sorted(set(instance) - known, key=str):
        location = _join(error.json_path, str(key))
        if key in forbidden:
            items.append(ErrorItem(location, f"'{key}' is not allowed here", forbidden[key]))
            continue
        hint = suggest(str(key), known)
        if hint is None and known:
            hint = "Valid keys: " + ", ".join(sorted(known)) + "."
        items.append(ErrorItem(location, f"unknown key '{key}'", hint))
    return items


def _branch_errors(error: ValidationError) -> dict[int, list[ValidationError]]:
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context or []:
        branches.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    return branches


def _is_tag_const(sub: ValidationError) -> bool:
    """The branch's own `properties.<tag>.const` failed (not a const inside an if/then rule of the branch)."""
    if sub.validator != "const" or len(sub.relative_path) != 1:
        return False
    path = [part for part in list(sub.relative_schema_path)[1:] if part != "$ref"]
    return path == ["properties", sub.relative_path[0], "const"]


def _is_tag_mismatch(sub: ValidationError) -> bool:
    """The discriminator did not match, or the branch is the `null` of a nullable union."""
    if _is_tag_const(sub):
        return True
    return sub.validator == "type" and not sub.relative_path and sub.validator_value == "null"


def _union_items(error: ValidationError) -> list[ErrorItem]:
    branches = _branch_errors(error)
    matched = [errs for errs in branches.values() if not any(_is_tag_mismatch(sub) for sub in errs)]
    # A branch that fails only because the value is not an object of that shape is not a match either.
    matched = [
        errs for errs in matched if not all(sub.validator == "type" and not sub.relative_path for sub in errs)
    ]
    if len(matched) == 1:
        return describe_errors(matched[0])
    return [_tag_item(error, branches)]


def _tag_item(error: ValidationError, branches: dict[int, list[ValidationError]]) -> ErrorItem:
    """No branch's tag matched: say which tag values exist (with a suggestion for a typo)."""
    instance = error.instance
    tags: list[str] = []
    tag_key: str | None = None
    for errs in branches.values():
        for sub in errs:
            if _is_tag_const(sub):
                tag_key = str(sub.relative_path[0])
                tags.append(str(sub.validator_value))
    if not isinstance(instance, dict):
        return ErrorItem(error.json_path, f"expected a mapping, got {describe_value(instance)}")
    if tag_key is None:
        required = [sub for errs in branches.values() for sub in errs if sub.validator == "required"]
        tag_key = str(required[0].validator_value[0]) if required else "type"
        tags = _tags_from_schema(error)
    choices = ", ".join(tags)
    if tag_key not in instance:
        return ErrorItem(error.json_path, f"missing '{tag_key}'", f"Set {tag_key} to one of: {choices}.")
    value = instance[tag_key]
    hint = suggest(str(value), tags) if isinstance(value, str) else None
    return ErrorItem(
        _join(error.json_path, tag_key),
        f"{describe_value(value)} is not a valid {tag_key}",
        (hint + " " if hint else "") + f"Valid values: {choices}.",
    )


def _tags_from_schema(error: ValidationError) -> list[str]:
    """The const values of every branch, read through the validator's resolver (for a missing tag)."""
    tags: list[str] = []
    for sub in error.context or []:
        if sub.validator == "required":
            continue
        if _is_tag_const(sub):
            tags.append(str(sub.validator_value))
    return sorted(set(tags))


def _single_item(error: ValidationError) -> list[ErrorItem]:
    location = error.json_path
    schema = error.schema if isinstance(error.schema, dict) else {}
    if "x-message" in schema:
        return [ErrorItem(location, str(schema["x-message"]))]
    kind = error.validator
    value = error.instance
    expected = error.validator_value
    if kind == "additionalProperties":
        return _unknown_key_items(error)
    if kind in ("oneOf", "anyOf"):
        return _union_items(error)
    if kind == "required":
        missing = [key for key in expected if not (isinstance(value, dict) and key in value)]
        return [ErrorItem(_join(location, key), "required key is missing") for key in missing]
    if kind == "type":
        return [ErrorItem(location, f"expected {_type_words(expected)}, got {describe_value(value)}")]
    if kind == "enum":
        values = [str(option) for option in expected if option is not None]
        hint = suggest(str(value), values) if isinstance(value, str) else None
        return [
            ErrorItem(
                location,
                f"{describe_value(value)} is not allowed",
                (hint + " " if hint else "") + "Valid values: " + ", ".join(values) + ".",
            )
        ]
    if kind == "const":
        return [
            ErrorItem(
                location, f"{describe_value(value)} is not allowed; the only valid value is {expected!r}"
            )
        ]
    bounds = {
        "minimum": "at least",
        "maximum": "at most",
        "exclusiveMinimum": "greater than",
        "exclusiveMaximum": "less than",
    }
    if kind in bounds:
        return [ErrorItem(location, f"must be {bounds[kind]} {expected}, got {value!r}")]
    if kind == "minItems":
        return [ErrorItem(location, f"needs at least {expected} item{'s' if expected != 1 else ''}")]
    if kind == "minLength":
        return [
            ErrorItem(
                location, "must not be empty" if expected == 1 else f"must be at least {expected} characters"
            )
        ]
    if kind == "pattern":
        return [ErrorItem(location, f"{describe_value(value)} does not have the expected form")]
    return [ErrorItem(location, error.message)]


def describe_errors(errors: Iterable[ValidationError]) -> list[ErrorItem]:
    """All errors as items, sorted by location, without duplicates."""
    items: list[ErrorItem] = []
    for error in errors:
        items.extend(_single_item(error))
    unique = list(dict.fromkeys(items))
    return sorted(unique, key=lambda item: item.location)
