"""Write `docs/config.md`, the config reference, from the schema files, with our own small Markdown renderer.

The page is read by people, so every JSON Schema construct is put into words (`list of string`, `≥ 1`, a
link for a nested section), and nothing in it depends on the clock or the machine: two runs give the same
bytes, which is what `ftschema gen-docs --check` compares.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ftconfig.runtime.config._schema import (
    METHOD_SCHEMA_NAMES,
    ROOT_SCHEMA_NAME,
    schema_documents,
    schema_registry,
)
from ftconfig.tools._files import write_or_check
from ftconfig.tools._paths import DOCS_DIR

if TYPE_CHECKING:
    from referencing._core import Resolver

__all__ = ["CONFIG_DOC", "SHARED_LINK", "method_heading", "render_docs", "write_docs"]

CONFIG_DOC = DOCS_DIR / "config.md"
TABLE_HEAD = (
    "| Property | Type | Required | Possible values | Default | Description |\n|---|---|---|---|---|---|"
)
SHARED_LINK = "Its properties are listed once, under"
# Union variants that differ only in their tag are documented with one shared table when there are this many.
MIN_SHARED_GROUP = 3

INTRO = """\
# Finetuning config reference

<!-- Generated from schema/*.schema.json by `ftschema gen-docs`. Edit the schema and regenerate. -->

This page lists every key of an ftconfig finetuning config, the YAML 1.2 (or JSON) file that `ftrun`
trains from and `ftschema validate` checks. It is generated from the JSON Schema in `schema/`, so it says
exactly what the validator accepts. How to write, check and run a config is in the [user guide](guide.md).

Additional properties are not allowed: a key that is not listed here is an error, and the message suggests
the nearest valid key. Only a value whose type is a plain `object` (such as `peft_conf.peft_kwargs`) takes
any keys.

Editors complete and check a config when it names the bundled schema, e.g. with the first line
`# yaml-language-server: $schema=<path or URL of generated/ftconfig.schema.json>`
(see [pointing your editor at the schema](guide.md#point-your-editor-at-the-schema)).

A generation config (`ftmodel generate CONFIG OUTPUT`, recognised by its top-level `model_conf`) is
described under [GenerationConfig](#generationconfig); editors use `generated/ftconfig-generation.schema.json`
for it.

Each table gives a key's type (a link for a nested section), whether it is required (✅), the values it
accepts, its default as JSON (empty when there is none) and what it does.
"""


@dataclass(frozen=True)
class Definition:
    """A documented schema node, with the resolver that knows the `$ref`s of its file."""

    name: str
    schema: dict[str, Any]
    resolver: Resolver[Any]


# ---------------------------------------------------------------- small helpers


def _anchor(name: str) -> str:
    """GitHub's heading anchor for our definition names (letters and digits only)."""
    return "#" + name.lower()


def _link(name: str) -> str:
    return f"[{name}]({_anchor(name)})"


def _code(value: Any) -> str:
    """A schema value as users write it: strings bare, everything else as JSON."""
    return f"`{value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}`"


def _cell(text: str) -> str:
    """Make text safe inside a table cell: escaped pipes, line breaks as <br>."""
    return text.strip().replace("|", "\\|").replace("\r\n", "\n").replace("\n", "<br>")


def _unique(words: list[str]) -> list[str]:
    """Drop repeats, keep the order, and put `null` last where people expect it."""
    seen = list(dict.fromkeys(words))
    return [word for word in seen if word != "null"] + (["null"] if "null" in seen else [])


def _json_type(value: Any) -> str:
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
    return "list" if isinstance(value, list) else "object"


def _resolve(node: dict[str, Any], resolver: Resolver[Any]) -> tuple[dict[str, Any], Resolver[Any]]:
    resolved = resolver.lookup(node["$ref"])
    return resolved.contents, resolved.resolver


def _branches(node: dict[str, Any]) -> list[dict[str, Any]]:
    return list(node.get("oneOf") or node.get("anyOf") or [])


def _is_union(node: dict[str, Any]) -> bool:
    """A union of named definitions (PeftConfig & co.), as opposed to `X or null` on one property."""
    return bool(_branches(node)) and all("$ref" in branch for branch in _branches(node))


def _title(target: dict[str, Any], ref: str) -> str:
    return str(target.get("title") or ref.rsplit("/", 1)[-1])


# ---------------------------------------------------------------- one property in words


def type_words(node: dict[str, Any], resolver: Resolver[Any]) -> str:
    """The Type column: `string or null`, `list of [DatasetDefinition](#datasetdefinition)`, ..."""
    return " or ".join(_type_parts(node, resolver))


def _type_parts(node: dict[str, Any], resolver: Resolver[Any]) -> list[str]:
    if "$ref" in node:
        target, _ = _resolve(node, resolver)
        return [_link(_title(target, node["$ref"]))]
    if _branches(node):
        return _unique([part for branch in _branches(node) for part in _type_parts(branch, resolver)])
    if "const" in node:
        return [_json_type(node["const"])]
    declared = node.get("type")
    if declared is None and "enum" in node:
        return _unique([_json_type(value) for value in node["enum"]])
    words = []
    for name in [declared] if isinstance(declared, str) else declared or []:
        if name == "array":
            items = node.get("items")
            words.append("list of " + (type_words(items, resolver) if items else "values"))
        else:
            words.append(str(name))
    return _unique(words) or ["any value"]


def values_words(node: dict[str, Any], resolver: Resolver[Any]) -> str:
    """The Possible values column: enum values, the tag of a variant, ranges and lengths in words."""
    if "$ref" in node:
        target, target_resolver = _resolve(node, resolver)
        own = _constraint_words(node, resolver)
        if "properties" in target or _branches(target):  # a nested section: its own table says the rest
            return own
        return ", ".join(part for part in (values_words(target, target_resolver), own) if part)
    if _branches(node):
        phrases = [
            (values_words(branch, resolver), type_words(branch, resolver))
            for branch in _branches(node)
            if branch.get("type") != "null"
        ]
        if not any(phrase for phrase, _ in phrases):
            return ""
        return ", or ".join(dict.fromkeys(_branch_phrase(phrase, words) for phrase, words in phrases))
    return _constraint_words(node, resolver)


def _branch_phrase(phrase: str, words: str) -> str:
    """A union branch in words: its values, after its type when they are only limits (`string matching`)."""
    if not phrase:
        return words
    return phrase if phrase.startswith(("`", "list of")) else f"{words} {phrase}"


def _sentence(text: str) -> str:
    text = str(text).strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _constraint_words(node: dict[str, Any], resolver: Resolver[Any]) -> str:
    if "const" in node:
        return _code(node["const"])
    parts = []
    if "enum" in node:
        parts.append(" or ".join(_code(value) for value in node["enum"] if value is not None))
    bounds = [
        f"{sign} {json.dumps(node[key])}"
        for key, sign in (
            ("minimum", "≥"),
            ("exclusiveMinimum", ">"),
            ("maximum", "≤"),
            ("exclusiveMaximum", "<"),
        )
        if key in node
    ]
    if bounds:
        parts.append(" and ".join(bounds))
    if node.get("minLength") == 1:
        parts.append("non-empty")
    elif "minLength" in node:
        parts.append(f"at least {node['minLength']} characters")
    if "pattern" in node:
        parts.append(f"matching `{node['pattern']}`")
    if "items" in node and (item_words := values_words(node["items"], resolver)):
        parts.append(f"list of {item_words}")
    if "minItems" in node:
        parts.append(f"at least {node['minItems']} item{'s' if node['minItems'] != 1 else ''}")
    return ", ".join(parts)


def property_row(name: str, node: dict[str, Any], required: bool, resolver: Resolver[Any]) -> str:
    """One table row; every cell escaped."""
    cells = [
        f"`{name}`",
        type_words(node, resolver),
        "✅" if required else "",
        values_words(node, resolver),
        f"`{json.dumps(node['default'], ensure_ascii=False)}`" if "default" in node else "",
        str(node.get("description", "")),
    ]
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def property_rows(schema: dict[str, Any], resolver: Resolver[Any], skip: str = "") -> list[str]:
    required = set(schema.get("required", []))
    properties = schema.get("properties", {}).items()
    return [property_row(name, node, name in required, resolver) for name, node in properties if name != skip]


def properties_table(schema: dict[str, Any], resolver: Resolver[Any]) -> str:
    return "\n".join([TABLE_HEAD, *property_rows(schema, resolver)])


# ---------------------------------------------------------------- rules and forbidden keys


def _rule_leaves(node: dict[str, Any], path: tuple[str, ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(dotted path, constraint) for every property constraint a `then` imposes."""
    for name, child in node.get("properties", {}).items():
        if "properties" in child:
            yield from _rule_leaves(child, (*path, name))
        else:
            yield ".".join((*path, name)), child


def rules_list(schema: dict[str, Any], resolver: Resolver[Any]) -> str:
    """The schema's if/then cross-field rules, in the words of their `x-message`s."""
    lines = []
    for rule in schema.get("allOf", []):
        for path, leaf in _rule_leaves(rule.get("then", {}), ()):
            message = leaf.get("x-message") or f"must be {_constraint_words(leaf, resolver)}"
            lines.append(f"- `{path}`: {_sentence(message)}")
    return "**Rules:**\n\n" + "\n".join(lines) if lines else ""


def forbidden_list(schema: dict[str, Any]) -> str:
    """`x-ftconfig-forbidden`: keys users bring from elsewhere, with what to write instead."""
    forbidden = schema.get("x-ftconfig-forbidden", {})
    lines = [f"- `{key}`: {_sentence(why)}" for key, why in forbidden.items()]
    return "**Not allowed here:**\n\n" + "\n".join(lines) if lines else ""


# ---------------------------------------------------------------- unions


def _variants(union: Definition) -> list[Definition]:
    return [
        Definition(_title(target, branch["$ref"]), target, resolver)
        for branch in _branches(union.schema)
        for target, resolver in [_resolve(branch, union.resolver)]
    ]


def _tag_name(variants: list[Definition]) -> str | None:
    """The discriminating property: a `const` that every variant requires."""
    for name in variants[0].schema.get("properties", {}):
        if all(
            name in variant.schema.get("required", [])
            and "const" in variant.schema["properties"].get(name, {})
            for variant in variants
        ):
            return str(name)
    return None


def _tag_value(variant: Definition, tag: str) -> Any:
    return variant.schema["properties"][tag]["const"]


def _shared_groups(variants: list[Definition], tag: str | None) -> list[list[Definition]]:
    """Variants whose schemas are equal apart from the tag, when there are enough of them to share a table."""
    if tag is None:
        return []
    groups: dict[str, list[Definition]] = {}
    for variant in variants:
        shape = {key: value for key, value in variant.schema.items() if key not in ("title", "description")}
        shape["properties"] = {key: value for key, value in shape.get("properties", {}).items() if key != tag}
        groups.setdefault(json.dumps(shape, sort_keys=True), []).append(variant)
    return [group for group in groups.values() if len(group) >= MIN_SHARED_GROUP]


def _shared_table(group: list[Definition], tag: str) -> str:
    first = group[0]
    tag_descriptions = {str(variant.schema["properties"][tag].get("description", "")) for variant in group}
    tag_cells = [
        f"`{tag}`",
        type_words(first.schema["properties"][tag], first.resolver),
        "✅",
        " or ".join(_code(_tag_value(variant, tag)) for variant in group),
        "",
        tag_descriptions.pop()
        if len(tag_descriptions) == 1
        else "Selects the variant (see the table above).",
    ]
    tag_row = "| " + " | ".join(_cell(cell) for cell in tag_cells) + " |"
    rows = [tag_row, *property_rows(first.schema, first.resolver, skip=tag)]
    return (
        f"**Shared properties.** The {len(group)} variants whose `{tag}` is listed in the first row below "
        "have the same properties:\n\n" + "\n".join([TABLE_HEAD, *rows])
    )


def union_section(union: Definition) -> str:
    """A union: which variant each tag value selects, plus the tables its look-alike variants share."""
    variants = _variants(union)
    tag = _tag_name(variants)
    parts = []
    if tag is None:
        parts.append("One of: " + ", ".join(_link(variant.name) for variant in variants) + ".")
    else:
        rows = [f"| {_code(_tag_value(variant, tag))} | {_link(variant.name)} |" for variant in variants]
        parts.append(
            f"One of the following, chosen by `{tag}`:\n\n| `{tag}` | Definition |\n|---|---|\n"
            + "\n".join(rows)
        )
    parts.extend(_shared_table(group, tag) for group in _shared_groups(variants, tag) if tag)
    return "\n\n".join(part for part in parts if part)


# ---------------------------------------------------------------- sections and the page


def definitions() -> list[Definition]:
    """Every `$defs` entry and every whole-file object schema except the root and the method documents (the
    top-level sections), in the order a reader meets them in a config: the top-level properties in their order,
    each section followed by its own types (depth first), then anything no property reaches, alphabetically."""
    registry = schema_registry()
    found: dict[str, Definition] = {}
    for file_name, document in schema_documents().items():
        if file_name == ROOT_SCHEMA_NAME:
            continue
        resolver = registry.resolver(base_uri=document["$id"])
        if file_name not in METHOD_SCHEMA_NAMES.values() and "properties" in document:
            found[str(document["title"])] = Definition(str(document["title"]), document, resolver)
        for key, node in document.get("$defs", {}).items():
            name = str(node.get("title", key))
            found[name] = Definition(name, node, resolver)
    ordered: dict[str, Definition] = {}
    for method_document in METHOD_SCHEMA_NAMES.values():  # the root only chooses one of these by `method`
        document = schema_documents()[method_document]
        _visit_references(document, registry.resolver(base_uri=document["$id"]), found, ordered)
    rest = sorted(
        (definition for name, definition in found.items() if name not in ordered),
        key=lambda definition: (definition.name.casefold(), definition.name),
    )
    return [*ordered.values(), *rest]


def _visit_references(
    node: Any, resolver: Resolver[Any], found: dict[str, Definition], ordered: dict[str, Definition]
) -> None:
    """Add the definitions `node` refers to, in the order they appear in it, each followed by its own."""
    if isinstance(node, list):
        for item in node:
            _visit_references(item, resolver, found, ordered)
        return
    if not isinstance(node, dict):
        return
    if isinstance(node.get("$ref"), str):
        target = resolver.lookup(node["$ref"])
        name = _title(target.contents, node["$ref"])
        if name in found and name not in ordered:
            ordered[name] = found[name]
            _visit_references(target.contents, target.resolver, found, ordered)
    for key, value in node.items():
        if key not in ("$defs", "$ref"):
            _visit_references(value, resolver, found, ordered)


def _shared_variants() -> dict[str, tuple[str, str, Any]]:
    """Variant name -> (union name, tag, tag value) for variants documented in their union's shared table."""
    shared = {}
    for union in definitions():
        if not _is_union(union.schema):
            continue
        variants = _variants(union)
        tag = _tag_name(variants)
        for group in _shared_groups(variants, tag):
            for variant in group:
                shared[variant.name] = (union.name, str(tag), _tag_value(variant, str(tag)))
    return shared


def section(definition: Definition, shared: dict[str, tuple[str, str, Any]]) -> str:
    """`## Name` and the body that suits the node: a table, a union map, a pointer or a value list."""
    schema, resolver = definition.schema, definition.resolver
    parts = [f"## {definition.name}", str(schema.get("description", ""))]
    if definition.name in shared:
        union_name, tag, value = shared[definition.name]
        parts.append(f"Chosen by `{tag}: {value}`. {SHARED_LINK} {_link(union_name)}.")
    elif "properties" in schema:
        parts += [properties_table(schema, resolver), rules_list(schema, resolver), forbidden_list(schema)]
    elif _is_union(schema):
        parts.append(union_section(definition))
    else:
        parts.append(f"Type: {type_words(schema, resolver)}.")
        if values := values_words(schema, resolver):
            parts.append(f"Possible values: {values}.")
    return "\n\n".join(part.strip() for part in parts if part.strip())


def method_heading(method: str) -> str:
    """The heading of the top-level table of one training method."""
    return f"Top-level properties for method {method}"


def render_docs() -> str:
    """The whole of docs/config.md; byte-identical for the same schema files."""
    documents = schema_documents()
    root = documents[ROOT_SCHEMA_NAME]
    shared = _shared_variants()
    blocks = [INTRO, "## Top-level properties", str(root.get("description", ""))]
    blocks.append(
        "Tables: "
        + ", ".join(
            f"[method {method}](#top-level-properties-for-method-{method})" for method in METHOD_SCHEMA_NAMES
        )
        + "."
    )
    for method, file_name in METHOD_SCHEMA_NAMES.items():
        document = documents[file_name]
        resolver = schema_registry().resolver(base_uri=document["$id"])
        blocks += [
            f"## {method_heading(method)}",
            str(document.get("description", "")),
            properties_table(document, resolver),
            rules_list(document, resolver),
            forbidden_list(document),
        ]
    blocks += [section(definition, shared) for definition in definitions()]
    return "\n\n".join(block.strip() for block in blocks if block.strip()) + "\n"


def write_docs(*, check: bool) -> bool:
    """Write docs/config.md (with `check`, only compare); True when it was written or already fresh."""
    return write_or_check(CONFIG_DOC, render_docs(), check=check)
