"""Load a config: parse (YAML 1.2 or JSON) -> apply --set -> validate (all errors) -> convert to structs.

Every caller (ftschema validate, ftrun, tests) goes through `load_config_file` / `load_config`, so a config means
the same thing everywhere. msgspec only ever sees documents jsonschema accepted.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ftconfig.runtime.config._document_limits import MAX_DEPTH, check_document_shape
from ftconfig.runtime.config._errors import ConfigError, ErrorItem
from ftconfig.runtime.config._files import special_file_problem
from ftconfig.runtime.config._migrate import old_dialect_paths
from ftconfig.runtime.config._schema import config_validator, generation_validator
from ftconfig.runtime.config._schema_errors import describe_errors

if TYPE_CHECKING:
    from typing import TypeAlias

    from ftconfig.generated.config import DPOFinetuningConfig, FinetuningConfig, GenerationConfig

    ExperimentConfig: TypeAlias = FinetuningConfig | DPOFinetuningConfig

__all__ = [
    "GENERATION_KEY",
    "apply_set_overrides",
    "convert_document",
    "is_generation_document",
    "load_any_config_file",
    "load_config",
    "load_config_file",
    "load_generation_config",
    "load_generation_config_file",
    "parse_document",
    "parse_value",
    "read_document",
    "to_json_data",
    "validate_document",
]

# The key that makes a document a generation config (required there, unknown in a finetuning config).
GENERATION_KEY = "model_conf"


def _yaml_loader() -> Any:
    from ruamel.yaml import YAML

    loader = YAML(typ="safe", pure=True)
    loader.version = (1, 2)
    return loader


def parse_value(text: str, *, name: str) -> Any:
    """Parse YAML 1.2 (JSON is a subset); a syntax error becomes one line naming `name:line:column`."""
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        _check_yaml_depth(text, name=name)
        value = _yaml_loader().load(text)
    except RecursionError:
        raise ConfigError(ErrorItem(name, _TOO_DEEP)) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        problem = exc.problem or exc.context or "not valid YAML"
        raise ConfigError(ErrorItem(where, f"YAML syntax error: {problem}")) from None
    except YAMLError as exc:
        raise ConfigError(ErrorItem(name, f"YAML error: {exc}")) from None
    check_document_shape(value, name=name)
    return value


def _check_yaml_depth(text: str, *, name: str) -> None:
    """Refuse deep nesting from the parser's event stream, before the (recursive, slow) composer sees it."""
    from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent

    depth = 0
    for event in _yaml_loader().parse(text):
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(ErrorItem(name, _TOO_DEEP))
        elif isinstance(event, CollectionEndEvent):
            depth -= 1


_TOO_DEEP = f"the document nests deeper than {MAX_DEPTH} levels; no config needs that"


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(key)


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads keeps the last of two equal keys; a config with both is ambiguous, as YAML already says."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _duplicate_key_line(text: str, key: str) -> int:
    """The line of the second `"key":` in the text (where json.loads found the duplicate)."""
    import re

    hits = [match.start() for match in re.finditer(re.escape(json.dumps(key)) + r"\s*:", text)]
    offset = hits[1] if len(hits) > 1 else (hits[0] if hits else 0)
    return text.count("\n", 0, offset) + 1


def _parse_json(text: str, *, name: str) -> Any:
    """JSON with duplicate keys refused and hostile nesting reported, each naming `name:line`."""
    try:
        value = json.loads(text, object_pairs_hook=_refuse_duplicate_keys) if text.strip() else None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            ErrorItem(f"{name}:{exc.lineno}:{exc.colno}", f"JSON syntax error: {exc.msg}")
        ) from None
    except _DuplicateKey as duplicate:
        raise ConfigError(
            ErrorItem(
                f"{name}:{_duplicate_key_line(text, duplicate.key)}",
                f"duplicate key {duplicate.key!r}: JSON would silently keep only the last one",
                "Keep one of them.",
            )
        ) from None
    except RecursionError:
        raise ConfigError(ErrorItem(name, _TOO_DEEP)) from None
    check_document_shape(value, name=name)
    return value


def parse_document(text: str, *, name: str) -> dict[str, Any]:
    """Parse a whole config document and insist that it is a non-empty mapping."""
    document = _parse_json(text, name=name) if name.endswith(".json") else parse_value(text, name=name)
    if document is None:
        raise ConfigError(
            ErrorItem(
                name, "the file is empty; a config is a mapping of sections (data_conf, training_args, ...)"
            )
        )
    if not isinstance(document, dict):
        kind = "a list" if isinstance(document, list) else f"a single value ({type(document).__name__})"
        raise ConfigError(
            ErrorItem(
                name,
                f"the document is {kind}; a config is a mapping of sections (data_conf, training_args, ...)",
            )
        )
    return document


def read_document(path: str | Path) -> dict[str, Any]:
    """Read and parse a config file; a missing, unreadable or binary file is a ConfigError."""
    path = Path(path)
    if (problem := special_file_problem(path)) is not None:
        raise ConfigError(ErrorItem(str(path), problem))
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(ErrorItem(str(path), "file not found")) from None
    except IsADirectoryError:
        raise ConfigError(ErrorItem(str(path), "is a directory, not a config file")) from None
    except OSError as exc:
        raise ConfigError(ErrorItem(str(path), f"cannot read the file ({exc.strerror})")) from None
    if b"\x00" in raw:
        raise ConfigError(ErrorItem(str(path), "is a binary file, not a YAML or JSON config"))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(ErrorItem(str(path), f"is not UTF-8 text (byte {exc.start})")) from None
    return parse_document(text, name=str(path))


def apply_set_overrides(document: dict[str, Any], assignments: Sequence[str]) -> dict[str, Any]:
    """Apply `PATH=VALUE` assignments to a copy of the document; VALUE is parsed as YAML 1.2."""
    result = copy.deepcopy(document)
    for assignment in assignments:
        path, sep, raw_value = assignment.partition("=")
        keys = path.strip().split(".")
        if len(keys) > MAX_DEPTH:
            raise ConfigError(
                ErrorItem(f"--set {path[:60]}...", f"the path is deeper than {MAX_DEPTH} levels")
            )
        if not sep or not all(keys):
            raise ConfigError(
                ErrorItem(
                    f"--set {assignment}",
                    "expected PATH=VALUE with a dotted PATH",
                    "Example: --set training_args.learning_rate=1e-4",
                )
            )
        value = parse_value(raw_value, name=f"--set {path}")
        target = result
        for depth, key in enumerate(keys[:-1]):
            child = target.setdefault(key, {})
            if child is None:
                child = target[key] = {}
            if not isinstance(child, dict):
                where = "$." + ".".join(keys[: depth + 1])
                raise ConfigError(
                    ErrorItem(
                        f"--set {path}", f"{where} is not a mapping, so it has no key '{keys[depth + 1]}'"
                    )
                )
            target = child
        target[keys[-1]] = value
    return result


def validate_document(document: Any) -> None:
    """Raise ConfigError with every schema violation (sorted by JSON path); return None when valid."""
    errors = list(config_validator().iter_errors(document))
    if errors:
        raise ConfigError(describe_errors(errors))


_INT64_RANGE = (-(2**63), 2**64 - 1)


def to_json_data(value: Any, path: str = "$") -> Any:
    """The document in JSON's data model, which is what the schema describes.

    YAML can say more than JSON: non-string keys (`max_memory: {0: 20GiB}`), dates, NaN and infinities, numbers
    no config field can hold. Integer keys and dates become strings (what the user meant); the rest is an error
    naming the place, so that the validator and the structs never disagree about a document.
    """
    problems: list[ErrorItem] = []
    result = _json_data(value, path, problems)
    if problems:
        raise ConfigError(problems)
    return result


def _json_data(value: Any, path: str, problems: list[ErrorItem]) -> Any:
    import datetime
    import math

    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, str | int):
                problems.append(ErrorItem(path, f"key {key!r} is not a string; quote it"))
                continue
            key = str(key)
            child = f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]"
            result[key] = _json_data(item, child, problems)
        return result
    if isinstance(value, list):
        return [_json_data(item, f"{path}[{index}]", problems) for index, item in enumerate(value)]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if not _INT64_RANGE[0] <= value <= _INT64_RANGE[1]:
            problems.append(ErrorItem(path, "the number is too large for any config field"))
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            problems.append(ErrorItem(path, f"{value} is not a finite number"))
        return value
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    problems.append(
        ErrorItem(path, f"a {type(value).__name__} value is not JSON data; write a string or number")
    )
    return value


def _integral_floats_as_ints(value: Any) -> Any:
    """1.0 -> 1 everywhere: JSON Schema counts 1.0 as an integer, msgspec's strict mode does not."""
    if isinstance(value, dict):
        return {key: _integral_floats_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_ints(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def convert_document(document: dict[str, Any]) -> ExperimentConfig:
    """Convert JSON data that the schema accepted into the structs (raises msgspec.ValidationError otherwise).

    `method` picks the struct: dpo is a DPOFinetuningConfig, sft or no method a FinetuningConfig (msgspec's tagged
    unions need the tag in every document, and an SFT config may leave `method` out). Strict mode, so no string is
    read as a number or boolean: the structs accept exactly what the schema does.
    """
    from ftconfig.generated.config import DPOFinetuningConfig, FinetuningConfig

    data = _integral_floats_as_ints(document)
    if isinstance(document, dict) and document.get("method") == "dpo":
        return msgspec.convert(data, DPOFinetuningConfig, strict=True)
    return msgspec.convert(data, FinetuningConfig, strict=True)


def load_config(document: dict[str, Any]) -> ExperimentConfig:
    """Validate a parsed document and convert it into the generated structs (defaults filled in)."""
    data = to_json_data(document)
    validate_document(data)
    try:
        return convert_document(data)
    except msgspec.ValidationError as exc:
        raise RuntimeError(
            f"internal error: the schema accepted this config but the generated structs did not ({exc}). "
            "Please report it: schema and generated code disagree."
        ) from exc


def load_config_file(path: str | Path, sets: Sequence[str] = ()) -> ExperimentConfig:
    """Read, override, validate and convert a config file: the one way every caller loads a config."""
    document = apply_set_overrides(read_document(path), sets)
    try:
        return load_config(document)
    except ConfigError as exc:
        raise _attributed(_with_migrate_hint(exc, document, path), str(path), sets) from None


def _with_migrate_hint(error: ConfigError, document: Any, path: str | Path) -> ConfigError:
    """The error, plus one line naming the keys of an older or newer dialect and the command that rewrites them."""
    old_keys = old_dialect_paths(document)
    if not old_keys:
        return error
    return ConfigError(
        [
            *error.items,
            ErrorItem(
                "",
                f"{', '.join(old_keys)} {'is' if len(old_keys) == 1 else 'are'} from an older or newer "
                f"config dialect; run `ftschema migrate {path}` to rewrite the config",
            ),
        ]
    )


def _attributed(error: ConfigError, source: str, sets: Sequence[str]) -> ConfigError:
    """Name the --set option for a mistake in a value it set; the config file for the rest."""
    set_paths = [assignment.partition("=")[0].strip() for assignment in sets]
    items: list[ErrorItem] = []
    from_file = False
    for item in error.items:
        origin = next((path for path in reversed(set_paths) if _is_under(item.location, "$." + path)), None)
        if origin is None:
            from_file = True
            items.append(item)
        else:
            items.append(ErrorItem(f"{item.location} (from --set {origin})", item.message, item.hint))
    attributed = ConfigError(items)
    return attributed.with_source(source) if from_file else attributed


def _is_under(location: str, prefix: str) -> bool:
    return location == prefix or location.startswith((prefix + ".", prefix + "["))


def is_generation_document(document: dict[str, Any]) -> bool:
    """Whether a parsed document is a generation config rather than a finetuning config."""
    return GENERATION_KEY in document


def load_generation_config(document: dict[str, Any]) -> GenerationConfig:
    """Validate a parsed generation config (all errors at once) and convert it into its struct."""
    from ftconfig.generated.config import GenerationConfig

    data = to_json_data(document)
    errors = list(generation_validator().iter_errors(data))
    if errors:
        raise ConfigError(describe_errors(errors))
    try:
        return msgspec.convert(_integral_floats_as_ints(data), GenerationConfig, strict=True)
    except msgspec.ValidationError as exc:
        raise RuntimeError(
            f"internal error: the schema accepted this generation config but the generated structs did not "
            f"({exc}). Please report it: schema and generated code disagree."
        ) from exc


def load_generation_config_file(path: str | Path) -> GenerationConfig:
    """Read, validate and convert a generation config file (`ftmodel generate`)."""
    try:
        return load_generation_config(read_document(path))
    except ConfigError as exc:
        raise exc.with_source(str(path)) from None


def load_any_config_file(path: str | Path) -> ExperimentConfig | GenerationConfig:
    """A finetuning or a generation config, told apart by the generation config's `model_conf` key."""
    document = read_document(path)
    try:
        if is_generation_document(document):
            return load_generation_config(document)
        return load_config(document)
    except ConfigError as exc:
        raise _with_migrate_hint(exc, document, path).with_source(str(path)) from None
