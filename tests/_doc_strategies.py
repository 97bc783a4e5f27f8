"""Hypothesis strategies for config documents: valid ones walked from the schema files, and one-change mutants."""

from __future__ import annotations

import datetime
import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from ftconfig.runtime.config._schema import METHOD_SCHEMA_NAMES, schema_documents, schema_registry

if TYPE_CHECKING:
    from referencing._core import Resolver

JSON_TYPES = frozenset({"null", "boolean", "integer", "number", "string", "array", "object"})
Path = tuple[str | int, ...]

# Free-form JSON for open bags (peft_kwargs, device_map objects, ...): anything goes there.
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)


@dataclass(frozen=True)
class Slot:
    """One place in a generated document and the schema node (with its `$ref`s followed) that produced it.

    A path gets one slot per node on the way down: the property's own schema first (`outermost`), then the
    `anyOf`/`oneOf` branch that was chosen. `tags` is set on the tag property of a tagged `oneOf` variant.
    """

    path: Path
    schema: dict[str, Any]
    resolver: Resolver
    outermost: bool
    tags: tuple[str, ...] = ()


@dataclass
class Generated:
    """A generated document and the slots it was built from."""

    document: Any
    slots: list[Slot] = field(default_factory=list)
    _present: list[tuple[Slot, Any]] | None = None
    _options: dict[str, list[tuple[Slot, Any]]] = field(default_factory=dict)

    def present(self) -> list[tuple[Slot, Any]]:
        """The slots still in the document (cross-field repairs drop some), with their values."""
        if self._present is None:
            self._present = [
                (slot, lookup(self.document, slot.path))
                for slot in self.slots
                if exists(self.document, slot.path)
            ]
        return self._present

    def options(self, kind: str) -> list[tuple[Slot, Any]]:
        """The slots where mutation `kind` applies."""
        if kind not in self._options:
            self._options[kind] = [
                (slot, value) for slot, value in self.present() if _applies(kind, slot, value)
            ]
        return self._options[kind]


@dataclass(frozen=True)
class Case:
    """A document to check: `kind` is "valid" for a generated one, else the mutation applied to it."""

    kind: str
    path: Path
    document: Any


# ---------------------------------------------------------------- schema walking


_RESOLVED: dict[int, tuple[dict[str, Any], Resolver]] = {}


def resolve(schema: dict[str, Any], resolver: Resolver) -> tuple[dict[str, Any], Resolver]:
    """Follow `$ref` until the node holds something other than a reference and annotations.

    Cached by node: every node of the (cached, never changed) schema files lives in one resource.
    """
    if "$ref" not in schema:
        return schema, resolver
    key = id(schema)
    if key not in _RESOLVED:
        while "$ref" in schema:
            resolved = resolver.lookup(schema["$ref"])
            schema, resolver = resolved.contents, resolved.resolver
        _RESOLVED[key] = schema, resolver
    return _RESOLVED[key]


def root(method: str = "sft") -> tuple[dict[str, Any], Resolver]:
    """The top-level document of one training method (the root schema only chooses between them by `method`)."""
    schema = schema_documents()[METHOD_SCHEMA_NAMES[method]]
    return schema, schema_registry().resolver(base_uri=schema["$id"])


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def allowed_types(schema: dict[str, Any], resolver: Resolver) -> frozenset[str]:
    """The JSON types some value of this node may have ("number" includes "integer")."""
    schema, resolver = resolve(schema, resolver)
    if "const" in schema:
        found = {json_type(schema["const"])}
    elif "enum" in schema:
        found = {json_type(value) for value in schema["enum"]}
    elif "type" in schema:
        declared = schema["type"]
        found = {declared} if isinstance(declared, str) else set(declared)
    elif "anyOf" in schema or "oneOf" in schema:
        found = set()
        for branch in schema.get("anyOf", []) + schema.get("oneOf", []):
            found |= allowed_types(branch, resolver)
    else:
        return JSON_TYPES
    if "number" in found:
        found.add("integer")
    return frozenset(found)


_RULE_VALIDATORS: dict[int, Draft202012Validator] = {}


def _matches(schema: dict[str, Any], instance: Any) -> bool:
    """Whether `instance` is valid under an `if`/`then` part of a cross-field rule (these hold no `$ref`)."""
    if id(schema) not in _RULE_VALIDATORS:
        _RULE_VALIDATORS[id(schema)] = Draft202012Validator(schema)
    return _RULE_VALIDATORS[id(schema)].is_valid(instance)


def _repair(instance: dict[str, Any], then: dict[str, Any]) -> None:
    """Make `instance` satisfy the `then` of a cross-field rule: set its consts, drop the other fields."""
    for key, sub in then.get("properties", {}).items():
        if "const" in sub and (key in instance or key in then.get("required", [])):
            instance[key] = sub["const"]
        elif key in instance and "properties" in sub and isinstance(instance[key], dict):
            _repair(instance[key], sub)
        elif key in instance:
            del instance[key]


# ---------------------------------------------------------------- valid documents


def _integers(schema: dict[str, Any]) -> st.SearchStrategy[int]:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    low = None if low is None else math.floor(low) + 1 if "exclusiveMinimum" in schema else math.ceil(low)
    high = None if high is None else math.ceil(high) - 1 if "exclusiveMaximum" in schema else math.floor(high)
    if low is not None and high is not None and low > high:
        return st.nothing()
    near_low = low if low is not None else -5 if high is None else high - 15
    near = st.integers(near_low, near_low + 15 if high is None else high)
    # Mostly everyday values; sometimes anything JSON allows, bigger than 64 bits included.
    return st.one_of(near, st.integers(low, high))


def _numbers(schema: dict[str, Any]) -> st.SearchStrategy[float | int]:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    floats = st.floats(
        low,
        high,
        exclude_min="exclusiveMinimum" in schema,
        exclude_max="exclusiveMaximum" in schema,
        allow_nan=False,
        allow_infinity=False,
    )
    return st.one_of(floats, _integers(schema))


def _strings(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    min_size = schema.get("minLength", 0)
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda text: len(text) >= min_size)
    return st.text(min_size=min_size, max_size=4)


def _generate(
    draw: st.DrawFn, schema: dict[str, Any], resolver: Resolver, path: Path, out: Generated, outermost: bool
) -> Any:
    schema, resolver = resolve(schema, resolver)
    out.slots.append(Slot(path, schema, resolver, outermost))
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return _pick(draw, schema["enum"])
    for keyword in ("oneOf", "anyOf"):
        if keyword in schema:
            branches = schema[keyword]
            index = draw(st.integers(0, len(branches) - 1))
            value = _generate(draw, branches[index], resolver, path, out, outermost=False)
            if keyword == "oneOf":
                _mark_tag(branches, resolver, path, value, out)
            return value
    declared = schema.get("type")
    if declared is None:
        return draw(JSON_VALUES)
    kind = declared if isinstance(declared, str) else _pick(draw, declared)
    if kind == "null":
        return None
    if kind == "boolean":
        return draw(st.booleans())
    if kind == "integer":
        return draw(_integers(schema))
    if kind == "number":
        return draw(_numbers(schema))
    if kind == "string":
        return draw(_strings(schema))
    if kind == "array":
        items = schema.get("items", {})
        size = draw(st.integers(schema.get("minItems", 0), schema.get("minItems", 0) + 2))
        return [_generate(draw, items, resolver, (*path, index), out, True) for index in range(size)]
    return _generate_object(draw, schema, resolver, path, out)


def _generate_object(
    draw: st.DrawFn, schema: dict[str, Any], resolver: Resolver, path: Path, out: Generated
) -> Any:
    properties: dict[str, Any] = schema.get("properties", {})
    if not properties:
        # Only open bags have no properties here (`additionalProperties: true` or absent).
        return draw(st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=3))
    required = set(schema.get("required", ()))
    # One draw picks the optional keys (a bit each): it shrinks towards the required keys only. Big objects
    # (training_args has 110 keys) get about a quarter of them, which keeps documents quick to validate.
    everything = 2 ** len(properties) - 1
    mask = draw(st.integers(0, everything))
    if len(properties) > 12:
        mask &= draw(st.integers(0, everything))
    instance: dict[str, Any] = {}
    for bit, (key, sub) in enumerate(properties.items()):
        if key in required or mask >> bit & 1:
            instance[key] = _generate(draw, sub, resolver, (*path, key), out, True)
    for rule in schema.get("allOf", ()):
        # Cross-field if/then rules: usually honoured, sometimes left broken on purpose.
        broken = "if" in rule and _matches(rule["if"], instance) and not _matches(rule["then"], instance)
        if broken and draw(st.integers(0, 3)) != 3:
            _repair(instance, rule["then"])
    return instance


def _mark_tag(branches: list[Any], resolver: Resolver, path: Path, value: Any, out: Generated) -> None:
    """Give the tag property of a tagged `oneOf` its own slot, listing every variant's tag."""
    tags: dict[str, str] = {}
    for branch in branches:
        resolved, _ = resolve(branch, resolver)
        for key, sub in resolved.get("properties", {}).items():
            if "const" in sub and key in resolved.get("required", ()):
                tags[sub["const"]] = key
    keys = set(tags.values())
    if len(keys) == 1 and isinstance(value, dict):
        (key,) = keys
        out.slots.append(Slot((*path, key), {"const": value.get(key)}, resolver, False, tuple(tags)))


@st.composite
def documents(draw: st.DrawFn) -> Generated:
    """A document built from the schema: valid, except for cross-field rules it sometimes breaks on purpose."""
    schema, resolver = root(draw(st.sampled_from(sorted(METHOD_SCHEMA_NAMES))))
    out = Generated(None)
    out.document = _generate(draw, schema, resolver, (), out, True)
    return out


# ---------------------------------------------------------------- mutations


def lookup(document: Any, path: Path) -> Any:
    for key in path:
        document = document[key]
    return document


def exists(document: Any, path: Path) -> bool:
    try:
        lookup(document, path)
    except (KeyError, IndexError, TypeError):
        return False
    return True


def replaced(document: Any, path: Path, change: Callable[[Any], Any]) -> Any:
    """A copy of `document` with `change` applied at `path`; only the containers on the path are copied."""
    if not path:
        return change(document)
    head, *rest = path
    copy: Any = list(document) if isinstance(document, list) else dict(document)
    copy[head] = replaced(document[head], tuple(rest), change)
    return copy


def _without(key: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda instance: {name: value for name, value in instance.items() if name != key}


def _with(key: Any, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda instance: {**instance, key: value}


# Values of each JSON type for "wrong type": the strings include the ones msgspec's lax mode would parse.
WRONG_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "integer": st.sampled_from([0, 1, -1, 7]) | st.integers(),
    "number": st.sampled_from([0.5, -1.5, 1e-3]) | st.floats(allow_nan=False, allow_infinity=False),
    "string": st.sampled_from(["", "x", "1", "-3", "1.0", "0.5", "true", "False", "null", "nan"])
    | st.text(max_size=6),
    "array": st.sampled_from([[], [1], ["x"], [None]]),
    "object": st.sampled_from([{}, {"x": 1}, {"": None}]),
}


@functools.cache
def _wrong_value(types: frozenset[str]) -> st.SearchStrategy[Any] | None:
    options = [WRONG_VALUES[kind] for kind in sorted(JSON_TYPES - types)]
    if "integer" in types and "number" not in types:
        options.append(st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()))
    return st.one_of(options) if options else None


def _bounds(schema: dict[str, Any]) -> list[Any]:
    """Numbers just outside the range of a numeric node."""
    integer = schema.get("type") in ("integer", ["integer", "null"], ["null", "integer"])
    values: list[Any] = []
    if "minimum" in schema:
        low = schema["minimum"]
        values += [low - 1, -(10**6)] if integer else [low - 1, math.nextafter(low, -math.inf)]
    if "exclusiveMinimum" in schema:
        values += [schema["exclusiveMinimum"], schema["exclusiveMinimum"] - 1]
    if "maximum" in schema:
        high = schema["maximum"]
        values += [high + 1, 10**6] if integer else [high + 1, math.nextafter(high, math.inf)]
    if "exclusiveMaximum" in schema:
        values += [schema["exclusiveMaximum"], schema["exclusiveMaximum"] + 1]
    return values


BAD_STRINGS = ("", " ", "/", "a/b", "a\\b", "maybe", "TRue", "x\ny/")


def _out_of_range(schema: dict[str, Any], value: Any) -> st.SearchStrategy[Any] | None:
    kind = json_type(value)
    if kind in ("integer", "number"):
        bounds = _bounds(schema)
        return st.sampled_from(bounds) if bounds else None
    if kind == "string" and ("minLength" in schema or "pattern" in schema):
        bad = [
            text
            for text in BAD_STRINGS
            if len(text) < schema.get("minLength", 0)
            or ("pattern" in schema and not re.search(schema["pattern"], text))
        ]
        return st.sampled_from(bad) if bad else None
    if kind == "array" and schema.get("minItems", 0) > 0:
        return st.just([])
    return None


def _near_misses(word: str) -> list[str]:
    return [word.upper(), word.lower(), word.capitalize(), word + "x", word[:-1], f" {word}", word + " "]


def _bad_enum(schema: dict[str, Any], value: Any) -> st.SearchStrategy[Any] | None:
    choices = schema["enum"] if "enum" in schema else [schema["const"]]
    if isinstance(value, str):
        misses = [word for word in _near_misses(value) if word not in choices]
        return st.sampled_from(misses) | st.text(max_size=6).filter(lambda text: text not in choices)
    if isinstance(value, bool):
        return st.just(not value) if (not value) not in choices else None
    if isinstance(value, int):
        return st.just(max(number for number in choices if isinstance(number, int)) + 1)
    return None


def _bad_tag(slot: Slot, value: Any) -> st.SearchStrategy[Any]:
    others = [tag for tag in slot.tags if tag != value]
    return st.one_of(
        st.sampled_from(others),  # another variant's tag: valid whenever the fields fit that variant too
        st.sampled_from(_near_misses(value)),
        st.text(max_size=6).filter(lambda text: text not in slot.tags),
        st.sampled_from([None, 1, True, [], {}]),
    )


def _unknown_keys(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    if id(schema) not in _UNKNOWN_KEYS:
        _UNKNOWN_KEYS[id(schema)] = _build_unknown_keys(schema)
    return _UNKNOWN_KEYS[id(schema)]


_UNKNOWN_KEYS: dict[int, st.SearchStrategy[str]] = {}


def _build_unknown_keys(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    known = set(schema.get("properties", {}))
    # Typos of the real keys, and the Python name of `$schema` in the generated struct.
    typos = [miss for name in sorted(known) for miss in _near_misses(name)[2:5]] + ["field_schema"]
    return st.one_of(st.sampled_from(typos or ["x"]), st.text(max_size=6)).filter(
        lambda key: key not in known
    )


# Mapping keys that YAML (not JSON) can hold: `max_memory: {0: 20GiB}` has the int key 0.
NON_STRING_KEYS = st.sampled_from([0, 1, -1, True, None, 1.5])

# Values that only YAML can hold: timestamps, !!binary, !!set.
YAML_VALUES = st.sampled_from(
    [datetime.date(2024, 1, 1), datetime.datetime(2024, 1, 1, 12, 30), b"\x00\x01", frozenset({"a"})]
).map(lambda value: set(value) if isinstance(value, frozenset) else value)

# Edge numbers that YAML (not JSON) can hold, integral floats beyond 2**53, and ints beyond float range.
EDGE_FLOATS = (math.nan, math.inf, -math.inf)
EDGE_INTEGRAL_FLOATS = (1e16, 2.0**53 + 2, -1e19, 1e300)


@functools.cache
def _edge_number(types: frozenset[str]) -> st.SearchStrategy[Any] | None:
    if "number" in types:
        return st.sampled_from([*EDGE_FLOATS, 10**400, -(10**400)])
    if "integer" in types:
        return st.sampled_from([*EDGE_FLOATS, *EDGE_INTEGRAL_FLOATS])
    return None


MUTATIONS = (
    "wrong_type",
    "unknown_key",
    "drop_required",
    "out_of_range",
    "bad_enum",
    "bad_tag",
    "int_as_float",
    "bool_for_int",
    "null_for_non_nullable",
    "edge_number",
    "non_string_key",
    "yaml_value",
)


def _types(slot: Slot) -> frozenset[str]:
    """The types the property at this slot takes (empty for inner slots: their path has an outer one)."""
    if not slot.outermost:
        return frozenset()
    if id(slot.schema) not in _TYPES:
        _TYPES[id(slot.schema)] = allowed_types(slot.schema, slot.resolver)
    return _TYPES[id(slot.schema)]


_TYPES: dict[int, frozenset[str]] = {}
_NUMERIC_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _applies(kind: str, slot: Slot, value: Any) -> bool:
    """Whether `kind` can change the value at `slot` (cheap: the change itself is built only when chosen)."""
    schema, value_type = slot.schema, json_type(value)
    if kind == "wrong_type":
        return slot.outermost and (_types(slot) != JSON_TYPES)
    if kind == "null_for_non_nullable":
        return slot.outermost and "null" not in _types(slot)
    if kind == "unknown_key":
        return value_type == "object" and schema.get("additionalProperties") is False
    if kind == "drop_required":
        return value_type == "object" and any(key in value for key in schema.get("required", ()))
    if kind == "out_of_range":
        if value_type in ("integer", "number"):
            return any(keyword in schema for keyword in _NUMERIC_KEYWORDS)
        if value_type == "string":
            return "minLength" in schema or "pattern" in schema
        return value_type == "array" and schema.get("minItems", 0) > 0
    if kind == "bad_enum":
        return (
            not slot.tags and ("enum" in schema or "const" in schema) and _bad_enum(schema, value) is not None
        )
    if kind == "bad_tag":
        return bool(slot.tags)
    if kind == "int_as_float":
        return value_type == "integer"
    if kind == "bool_for_int":
        return value_type in ("integer", "number")
    if kind == "edge_number":
        return bool(_types(slot) & {"integer", "number"})
    if kind == "non_string_key":
        return value_type == "object"
    if kind == "yaml_value":
        return slot.outermost
    raise ValueError(kind)


def _new_value(kind: str, slot: Slot, value: Any) -> st.SearchStrategy[Any]:
    """The replacement values `kind` puts at `slot`."""
    schema = slot.schema
    strategy: st.SearchStrategy[Any] | None
    if kind == "wrong_type":
        strategy = _wrong_value(_types(slot))
    elif kind == "null_for_non_nullable":
        strategy = st.none()
    elif kind == "out_of_range":
        strategy = _out_of_range(schema, value)
    elif kind == "bad_enum":
        strategy = _bad_enum(schema, value)
    elif kind == "bad_tag":
        strategy = _bad_tag(slot, value)
    elif kind == "bool_for_int":
        strategy = st.booleans()
    elif kind == "int_as_float":
        strategy = st.just(float(value))
    elif kind == "yaml_value":
        strategy = YAML_VALUES
    else:
        strategy = _edge_number(_types(slot))
    assert strategy is not None, (kind, slot.path)
    return strategy


def _pick(draw: st.DrawFn, items: list[Any]) -> Any:
    """`sampled_from` without building a strategy per call (an index draw shrinks the same way)."""
    return items[draw(st.integers(0, len(items) - 1))]


@st.composite
def mutants(draw: st.DrawFn, generated: Generated) -> Case:
    """One mutation of a generated document: the kind first, then a place where that kind applies."""
    first = draw(st.integers(0, len(MUTATIONS) - 1))
    for kind in MUTATIONS[first:] + MUTATIONS[:first]:
        options = generated.options(kind)
        if not options:
            continue
        slot, value = _pick(draw, options)
        change: Callable[[Any], Any]
        if kind == "unknown_key":
            change = _with(draw(_unknown_keys(slot.schema)), draw(WRONG_VALUES["integer"]))
        elif kind == "non_string_key":
            change = _with(draw(NON_STRING_KEYS), draw(st.sampled_from(["20GiB", 0, None])))
        elif kind == "drop_required":
            change = _without(_pick(draw, [key for key in slot.schema["required"] if key in value]))
        else:
            new = draw(_new_value(kind, slot, value))
            change = lambda _, new=new: new  # noqa: E731
        return Case(kind, slot.path, replaced(generated.document, slot.path, change))
    raise AssertionError("no mutation applies")  # the root alone always takes a wrong type


@st.composite
def revalued(draw: st.DrawFn, generated: Generated) -> Case:
    """The document with one to three of its values drawn again from their schema: valid like the original."""
    document, places = generated.document, [slot for slot, _ in generated.present() if slot.outermost]
    paths: list[Path] = []
    for _ in range(draw(st.integers(1, 3))):
        slot = _pick(draw, places)
        # A slot under a value drawn again belongs to the old value's schema (maybe another oneOf variant).
        if not any(slot.path[: len(done)] == done for done in paths):
            value = _generate(draw, slot.schema, slot.resolver, slot.path, Generated(None), True)
            document = replaced(document, slot.path, lambda _, value=value: value)
            paths.append(slot.path)
    return Case("revalued", paths[0] if len(paths) == 1 else (), document)


@st.composite
def cases(draw: st.DrawFn, revalued_per_document: int, mutants_per_document: int) -> list[Case]:
    """A generated document, then variants with a few values drawn again, then one-change mutants of it."""
    generated = draw(documents())
    found = [Case("valid", (), generated.document)]
    found += [draw(revalued(generated)) for _ in range(revalued_per_document)]
    found += [draw(mutants(generated)) for _ in range(mutants_per_document)]
    return found
