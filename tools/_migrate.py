"""`ftschema migrate`: apply the migration rules to config files, keeping their comments, order and layout.

YAML files go through ruamel's round-trip mode (comments, key order, quoting and flow style survive; the
indentation is measured from the file). JSON files keep their key order, indentation unit, and the one-line
objects and arrays they had. A file with a key that cannot be migrated is left untouched, so a run never leaves
a half-migrated config.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftconfig.runtime.config._errors import ConfigError, ErrorItem
from ftconfig.runtime.config._load import parse_document, read_document
from ftconfig.runtime.config._migrate import Change, migrate_document

__all__ = ["FileMigration", "migrate_file", "migrate_text"]


@dataclass(frozen=True)
class FileMigration:
    """What migrating one file did (or, with check, would do)."""

    path: Path
    changes: list[Change]
    text: str  # the migrated text (equal to the original when nothing changed)
    written: Path | None


def _round_trip_yaml(text: str) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.util import load_yaml_guess_indent

    _, sequence_indent, dash_offset = load_yaml_guess_indent(text)
    key_indents = [len(match.group(1)) for match in re.finditer(r"^( +)[^\s#-]", text, re.MULTILINE)]
    mapping_indent = min(key_indents, default=2)
    offset = dash_offset or 0
    yaml = YAML(typ="rt")  # YAML 1.2 by default, and no %YAML directive is written back
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long lines
    yaml.representer.add_representer(type(None), _represent_null)
    yaml.indent(mapping=mapping_indent, sequence=max(sequence_indent or 2, offset + 2), offset=offset)
    return yaml


def _represent_null(representer: Any, _: None) -> Any:
    """`null`, as configs write it (ruamel's round trip would leave the value empty)."""
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def _json_indent(text: str) -> str:
    """The indentation unit of the first indented line (spaces or a tab); two spaces for a one-line file."""
    match = re.search(r"\n([ \t]+)\S", text)
    if match is None:
        return "  "
    whitespace = match.group(1)
    return "\t" if whitespace.startswith("\t") else whitespace


def _load_json_with_layout(text: str) -> tuple[Any, set[int]]:
    """Parse JSON and note which objects and arrays were written on one line (by the id of the parsed value)."""
    import json.decoder
    import json.scanner

    # The pure-Python scanner's hooks (stable since Python 2.7; not in the type stubs).
    decoding: Any = json.decoder
    scanning: Any = json.scanner
    inline: set[int] = set()

    def parse_object(s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
        value, end = decoding.JSONObject(s_and_end, *args)
        if "\n" not in s_and_end[0][s_and_end[1] : end]:
            inline.add(id(value))
        return value, end

    def parse_array(s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
        value, end = decoding.JSONArray(s_and_end, *args)
        if "\n" not in s_and_end[0][s_and_end[1] : end]:
            inline.add(id(value))
        return value, end

    decoder: Any = json.JSONDecoder()
    decoder.parse_object = parse_object
    decoder.parse_array = parse_array
    decoder.scan_once = scanning.py_make_scanner(decoder)  # the C scanner ignores the hooks
    return decoder.decode(text), inline


def _dump_json(value: Any, unit: str, inline: set[int], level: int = 0) -> str:
    """JSON with the original layout: containers written on one line stay on one line, the rest indented."""
    if not isinstance(value, dict | list) or not value or id(value) in inline:
        return json.dumps(value, ensure_ascii=False)
    inner = unit * (level + 1)
    if isinstance(value, dict):
        parts = [
            f"{inner}{json.dumps(key, ensure_ascii=False)}: {_dump_json(item, unit, inline, level + 1)}"
            for key, item in value.items()
        ]
        return "{\n" + ",\n".join(parts) + "\n" + unit * level + "}"
    parts = [f"{inner}{_dump_json(item, unit, inline, level + 1)}" for item in value]
    return "[\n" + ",\n".join(parts) + "\n" + unit * level + "]"


def migrate_text(text: str, *, name: str) -> tuple[str, list[Change]]:
    """Migrate one config's text; raise ConfigError naming every key that cannot be migrated."""
    parse_document(text, name=name)  # syntax errors and non-mappings, reported as validate reports them
    if name.endswith(".json"):
        document, inline = _load_json_with_layout(text.lstrip("\ufeff"))
        result = migrate_document(document)
        new_text = _dump_json(document, _json_indent(text), inline)
        new_text += "\n" if text.endswith("\n") else ""
    else:
        yaml = _round_trip_yaml(text)
        document = yaml.load(text)
        result = migrate_document(document)
        stream = io.StringIO()
        yaml.dump(document, stream)
        new_text = stream.getvalue()
    if result.problems:
        raise ConfigError(
            [ErrorItem(path, f"cannot be migrated: {why}") for path, why in sorted(result.problems)]
        )
    return (new_text if result.changes else text), result.changes


def migrate_file(path: Path, *, output: Path | None = None, check: bool = False) -> FileMigration:
    """Migrate a config file in place (or into `output`); with check, write nothing."""
    read_document(path)  # missing, binary or unreadable files: the loader's messages
    text = path.read_bytes().decode("utf-8-sig")
    try:
        new_text, changes = migrate_text(text, name=str(path))
    except ConfigError as exc:
        raise exc.with_source(str(path)) from None
    target = output or path
    written = None
    if not check and (changes or output is not None):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(new_text, encoding="utf-8")
        written = target
    return FileMigration(path, changes, new_text, written)
