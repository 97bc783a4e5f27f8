"""Differential property: the generated structs and jsonschema agree on generated and mutated configs.

Both sides are what `load_config` runs: the document is first read into JSON's data model (`to_json_data`:
non-string keys, NaN, dates, huge numbers are settled there, for both sides alike), then jsonschema gives one
verdict and `convert_document` (msgspec, strict mode, 1.0 read as 1) the other.

Documents come from `_doc_strategies` (hypothesis-jsonschema's `from_schema` takes ~46 s to canonicalise the
bundle and then fails inside hypothesis 6.170). The promise, on every document:

(a) jsonschema accepts => msgspec.convert succeeds, and msgspec.to_builtins of the struct validates again;
(b) jsonschema rejects for a reason other than the schema-only cross-field rules => msgspec rejects it too;
    documents that break only those rules are accepted by msgspec.

"Only cross-field" is decided from the schema paths of jsonschema's errors (through `$ref`s, into the branches
of a failed `oneOf`/`anyOf`), checked against a validator over the schema files with those rules blanked out.

REPORTED_DISAGREEMENTS lists disagreements that are known and not yet fixed (none at present): each is recognised
by an exact predicate and counted in the summary. FIXED_DISAGREEMENTS keeps the ones found so far, fixed in the
schema importer and the loader, as examples both sides must now agree on.
"""

from __future__ import annotations

import copy
import functools
import math
import pprint
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import msgspec
import pytest
from _doc_strategies import Case, cases, lookup, resolve
from hypothesis import Phase, given, settings
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaViolation
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ftconfig.generated.config import DPOFinetuningConfig, FinetuningConfig
from ftconfig.runtime import ConfigError
from ftconfig.runtime.config._load import convert_document, to_json_data
from ftconfig.runtime.config._schema import config_validator, root_schema, schema_documents, schema_registry

BASE = "https://ftconfig.dev/schema/"

# The cross-field rules that only the schema states: msgspec accepts documents that break only these.
KNOWN_CROSS_FIELD_RULES = {
    BASE + "finetuning.schema.json#/allOf/0": "overrides.num_train_epochs set: max_steps <= 0",
    BASE + "finetuning.schema.json#/allOf/1": "validation_data NONE: no evaluation",
    BASE + "dpo.schema.json#/allOf/0": "overrides.num_train_epochs set: max_steps <= 0 (DPO)",
    BASE + "dpo.schema.json#/allOf/1": "validation_data NONE: no evaluation (DPO)",
    BASE + "finetuning.schema.json#/allOf/2": "max_steps unset and no epochs override: num_train_epochs > 0",
    BASE + "dpo.schema.json#/allOf/2": "max_steps unset and no epochs override: num_train_epochs > 0 (DPO)",
    BASE + "run.schema.json#/$defs/ModelArguments/allOf/0": "not both dtype and torch_dtype",
    BASE + "quantization.schema.json#/$defs/BnBQuantizationConfig/allOf/0": "not both 4 and 8 bits",
    BASE + "quantization.schema.json#/$defs/BnBQuantizationConfig/allOf/1": "4 or 8 bits",
}

# Each example checks a generated document, variants of it with values drawn again, and mutants of it.
REVALUED_PER_DOCUMENT = 3
MUTANTS_PER_DOCUMENT = 16
EXAMPLES = 500  # x (1 + REVALUED_PER_DOCUMENT + MUTANTS_PER_DOCUMENT) = 10,000 documents

CHECKED: Counter[tuple[str, str]] = Counter()
ROUND_TRIPS_CHECKED: set[str] = set()


# ---------------------------------------------------------------- which rule a jsonschema error comes from


def _rule_of(error: SchemaViolation) -> str | None:
    """The `allOf` if/then rule (as `URI#pointer`) whose `then` produced this error, walking its schema path."""
    node = root_schema()  # the validator's root: it chooses the method document with if/then/else
    resolver = schema_registry().resolver(base_uri=node["$id"])
    uri, pointer = node["$id"], ""
    path = list(error.absolute_schema_path)
    if "then" not in path:
        return None
    for index, key in enumerate(path):
        # jsonschema leaves `$ref` out of schema paths: follow the reference when the key is not here.
        while isinstance(node, dict) and key not in node and "$ref" in node:
            uri, _, pointer = urljoin(uri, node["$ref"]).partition("#")
            node, resolver = resolve(node, resolver)
        if key == "then" and index >= 2 and path[index - 2] == "allOf":
            return f"{uri}#{pointer}"
        node = node[key]
        pointer += f"/{key}"
    return None


def _explained(error: SchemaViolation, leaf: Callable[[SchemaViolation], bool]) -> bool:
    """`leaf` holds for the error, or (for a failed `oneOf`/`anyOf`) for every error of one of its branches."""
    if error.validator in ("oneOf", "anyOf"):
        branches: dict[Any, list[SchemaViolation]] = {}
        for sub in error.context or ():
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        return any(all(_explained(sub, leaf) for sub in subs) for subs in branches.values())
    return leaf(error)


def only_cross_field(error: SchemaViolation) -> bool:
    """True when the error comes only from the known cross-field rules.

    A failed `oneOf`/`anyOf` counts when some branch fails only because of those rules.
    """
    return _explained(error, lambda leaf: _rule_of(leaf) in KNOWN_CROSS_FIELD_RULES)


def _rules_in(error: SchemaViolation) -> set[str]:
    """The if/then rules behind this error or any error in its `oneOf`/`anyOf` context."""
    found = {rule for sub in error.context or () for rule in _rules_in(sub)}
    rule = _rule_of(error)
    return found | {rule} if rule is not None else found


def _if_then_rules() -> Iterator[str]:
    """Every `allOf` entry with `if` in the schema files, as `URI#pointer`."""

    def walk(node: Any, uri: str, pointer: str) -> Iterator[str]:
        if isinstance(node, dict):
            for index, rule in enumerate(node.get("allOf", ())):
                if isinstance(rule, dict) and "if" in rule:
                    yield f"{uri}#{pointer}/allOf/{index}"
            for key, value in node.items():
                yield from walk(value, uri, f"{pointer}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from walk(value, uri, f"{pointer}/{index}")

    for document in schema_documents().values():
        yield from walk(document, document["$id"], "")


@functools.cache
def validator_without_cross_field_rules() -> Draft202012Validator:
    """The config validator over copies of the schema files with the known if/then rules blanked out."""
    by_id = {document["$id"]: document for document in copy.deepcopy(schema_documents()).values()}
    for rule in KNOWN_CROSS_FIELD_RULES:
        uri, _, pointer = rule.partition("#")
        *parents, last = pointer.strip("/").split("/")
        node: Any = by_id[uri]
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last)] = {}
    registry = Registry().with_resources(
        (uri, Resource.from_contents(document, default_specification=DRAFT202012))
        for uri, document in by_id.items()
    )
    return Draft202012Validator(
        by_id[root_schema()["$id"]], registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


# ---------------------------------------------------------------- disagreements already reported


@dataclass(frozen=True)
class Verdicts:
    document: Any
    errors: list[SchemaViolation]  # jsonschema errors other than the known cross-field ones
    rejection: msgspec.ValidationError | None


def _msgspec_location(rejection: msgspec.ValidationError) -> tuple[tuple[str | int, ...], bool]:
    """The path in msgspec's message (`$.a.b[0]`), and whether it blames a mapping key (`key` in `$.a`)."""
    found = re.search(r" - at (`key` in )?`\$((?:\.[A-Za-z_$][\w$]*|\[\d+\])*)`$", str(rejection))
    if found is None:
        return (), False
    parts = re.findall(r"\.([A-Za-z_$][\w$]*)|\[(\d+)\]", found.group(2))
    return tuple(name or int(index) for name, index in parts), found.group(1) is not None


def _rejected_value(verdicts: Verdicts) -> Any:
    assert verdicts.rejection is not None
    path, _ = _msgspec_location(verdicts.rejection)
    try:
        return lookup(verdicts.document, path)
    except (KeyError, IndexError, TypeError):
        return None


def _integral_float_beyond_2_53(verdicts: Verdicts) -> bool:
    value = _rejected_value(verdicts)
    return isinstance(value, float) and value.is_integer() and abs(value) > 2**53


def _nan_in_bounded_number(verdicts: Verdicts) -> bool:
    value = _rejected_value(verdicts)
    return isinstance(value, float) and math.isnan(value)


def _int_beyond_float_range(verdicts: Verdicts) -> bool:
    value = _rejected_value(verdicts)
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > sys.float_info.max


def _non_string_key_in_open_object(verdicts: Verdicts) -> bool:
    assert verdicts.rejection is not None
    _, blames_key = _msgspec_location(verdicts.rejection)
    value = _rejected_value(verdicts)
    return blames_key and isinstance(value, dict) and any(not isinstance(key, str) for key in value)


def _wrong_scalar_type(error: SchemaViolation) -> bool:
    return error.validator == "type" and not isinstance(error.instance, (dict, list, type(None)))


def _lax_scalar(verdicts: Verdicts) -> bool:
    """Every error is a wrong scalar type that strict=False parses ("5" for 5, "true"/1 for true, "null")."""
    if not all(_explained(error, _wrong_scalar_type) for error in verdicts.errors):
        return False
    document = verdicts.document
    is_dpo = isinstance(document, dict) and document.get("method") == "dpo"
    try:
        msgspec.convert(document, DPOFinetuningConfig if is_dpo else FinetuningConfig, strict=True)
    except msgspec.ValidationError:
        return True  # strict mode rejects it: the lax parsing is what let it through
    return False


def _true_for_false_only(verdicts: Verdicts) -> bool:
    return all(
        list(error.absolute_path)[-1:] == ["trackio_static_space_id"] and error.instance is True
        for error in verdicts.errors
    )


@dataclass(frozen=True)
class Disagreement:
    name: str
    accepted_by: str  # the side that accepts the document
    matches: Callable[[Verdicts], bool]
    example: Callable[[dict[str, Any]], None]  # turns the minimal document into a pinned example


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for key in parents:
            document = document.setdefault(key, {})
        document[last] = value

    return change


FIXED_DISAGREEMENTS = (
    Disagreement(
        "integral float beyond 2**53 for an integer (YAML `max_steps: 1e16`)",
        "jsonschema",
        _integral_float_beyond_2_53,
        _set("training_args.max_steps", 1e16),
    ),
    Disagreement(
        "NaN for a number with bounds (YAML `ratio: .nan`)",
        "jsonschema",
        _nan_in_bounded_number,
        _set("data_conf.validation_data", {"type": "AUTO_SPLIT", "ratio": math.nan}),
    ),
    Disagreement(
        "integer beyond float range for a number (`learning_rate: 1` followed by 400 zeros)",
        "jsonschema",
        _int_beyond_float_range,
        _set("training_args.learning_rate", 10**400),
    ),
    Disagreement(
        "non-string key in an open object (YAML `max_memory: {0: 20GiB}`)",
        "jsonschema",
        _non_string_key_in_open_object,
        _set("run_conf.model_args", {"max_memory": {0: "20GiB", "cpu": "60GiB"}}),
    ),
    Disagreement(
        'string or 0/1 that strict=False parses ("5" for an integer, "true" or 1 for a boolean)',
        "msgspec",
        _lax_scalar,
        _set("training_args.max_steps", "5"),
    ),
    Disagreement(
        "trackio_static_space_id: true (schema: string, null or false; struct: str | bool | None)",
        "msgspec",
        _true_for_false_only,
        _set("training_args.trackio_static_space_id", True),
    ),
)
REPORTED_DISAGREEMENTS: tuple[Disagreement, ...] = ()


def _reported(verdicts: Verdicts, accepted_by: str) -> Disagreement | None:
    for disagreement in REPORTED_DISAGREEMENTS:
        if disagreement.accepted_by == accepted_by and disagreement.matches(verdicts):
            return disagreement
    return None


# ---------------------------------------------------------------- the property


def _show(case: Case, verdict: str) -> str:
    document = pprint.pformat(case.document, width=110, sort_dicts=False)
    return f"{case.kind} at {list(case.path)}: {verdict}\ndocument: {document}"


def _count(case: Case, verdict: str) -> None:
    CHECKED[case.kind, verdict] += 1


def check(case: Case) -> None:
    """Assert the promise on one document, and count it."""
    try:
        document = to_json_data(case.document)
    except ConfigError:
        return _count(case, "invalid when read (not JSON data)")
    try:
        converted = convert_document(document)
        rejection = None
    except msgspec.ValidationError as exc:
        converted, rejection = None, exc
    if rejection is not None and not validator_without_cross_field_rules().is_valid(document):
        # Quick exit for most mutants: even without the cross-field rules the schema rejects the document
        # (dropping rules only widens what validates), so jsonschema rejects it for a reason msgspec shares.
        return _count(case, "invalid")

    errors = list(config_validator().iter_errors(document))
    if not errors:
        if rejection is not None:
            known = _reported(Verdicts(document, [], rejection), "jsonschema")
            assert known is not None, _show(case, f"jsonschema accepts, msgspec rejects: {rejection}")
            return _count(case, f"valid, reported: {known.name}")
        builtins = msgspec.to_builtins(converted)
        key = repr(builtins)  # mutants such as 1.0-for-1 give the same struct again: validate it once
        if key not in ROUND_TRIPS_CHECKED:
            round_trip = list(config_validator().iter_errors(builtins))
            assert not round_trip, _show(
                case, f"msgspec.to_builtins of the struct is invalid: {round_trip[0].message}"
            )
            ROUND_TRIPS_CHECKED.add(key)
        return _count(case, "valid")

    real = [error for error in errors if not only_cross_field(error)]
    if any(_rules_in(error) for error in errors):
        # Check the path-based verdict against the schema without the rules (only where a rule is involved).
        assert (not real) == validator_without_cross_field_rules().is_valid(document), _show(
            case, "the cross-field classification disagrees with the schema stripped of those rules"
        )
    verdicts = Verdicts(document, real, rejection)
    if not real:
        if rejection is not None:
            known = _reported(verdicts, "jsonschema")
            assert known is not None, _show(
                case, f"only cross-field rules break, msgspec rejects: {rejection}"
            )
            return _count(case, f"cross-field only, reported: {known.name}")
        return _count(case, "invalid, cross-field only")
    if rejection is None:
        known = _reported(verdicts, "msgspec")
        assert known is not None, _show(case, f"jsonschema rejects ({real[0].message}), msgspec accepts")
        return _count(case, f"invalid, reported: {known.name}")
    return _count(case, "invalid")


@pytest.mark.slow  # 10,000 generated documents through both validators
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    # One example checks a batch of documents, so its run time says nothing about a slow test.
    deadline=None,
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
)
@given(cases(REVALUED_PER_DOCUMENT, MUTANTS_PER_DOCUMENT))
def test_msgspec_accepts_exactly_what_jsonschema_accepts_on_generated_documents(batch: list[Case]) -> None:
    for case in batch:
        check(case)


def test_the_known_cross_field_rules_are_all_the_if_then_rules_in_the_schema() -> None:
    assert set(_if_then_rules()) == set(KNOWN_CROSS_FIELD_RULES)


def minimal_document() -> dict[str, Any]:
    return {
        "data_conf": {
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": "a"}]},
            "validation_data": {"type": "AUTO_SPLIT"},
        },
        "training_args": {},
        "batchsize_conf": {"total_train_batch_size": 1, "max_per_device_train_batch_size": 1},
        "peft_conf": {"peft_type": "NO_PEFT"},
        "run_conf": {},
        "sft_args": {},
    }


def test_the_minimal_document_is_accepted_by_both() -> None:
    check(Case("pinned", (), minimal_document()))


def test_an_integral_float_for_an_integer_is_accepted_by_both() -> None:
    document = minimal_document()
    document["batchsize_conf"] = {"total_train_batch_size": 8.0, "max_per_device_train_batch_size": 4.0}
    document["training_args"] = {"max_steps": -1.0, "seed": 2.0**32 - 1, "save_total_limit": 2.0**53}
    assert config_validator().is_valid(document)
    converted = convert_document(document)
    assert converted.batchsize_conf.total_train_batch_size == 8
    assert type(converted.training_args.seed) is int
    check(Case("pinned", (), document))


DELETE = object()  # a breaker's value that removes the key

CROSS_FIELD_BREAKERS: dict[str, dict[str, Any]] = {
    BASE + "finetuning.schema.json#/allOf/0": {
        "overrides": {"num_train_epochs": 2},
        "training_args": {"max_steps": 5},
    },
    BASE + "finetuning.schema.json#/allOf/1": {
        "data_conf": {**minimal_document()["data_conf"], "validation_data": {"type": "NONE"}},
        "training_args": {"eval_strategy": "steps", "load_best_model_at_end": True},
    },
    BASE + "dpo.schema.json#/allOf/0": {
        "method": "dpo",
        "sft_args": DELETE,
        "overrides": {"num_train_epochs": 2},
        "training_args": {"max_steps": 5},
    },
    BASE + "dpo.schema.json#/allOf/1": {
        "method": "dpo",
        "sft_args": DELETE,
        "data_conf": {**minimal_document()["data_conf"], "validation_data": {"type": "NONE"}},
        "training_args": {"eval_strategy": "steps", "load_best_model_at_end": True},
    },
    BASE + "finetuning.schema.json#/allOf/2": {"training_args": {"num_train_epochs": 0}},
    BASE + "dpo.schema.json#/allOf/2": {
        "method": "dpo",
        "sft_args": DELETE,
        "training_args": {"num_train_epochs": 0},
    },
    BASE + "run.schema.json#/$defs/ModelArguments/allOf/0": {
        "run_conf": {
            **minimal_document()["run_conf"],
            "model_args": {"dtype": "auto", "torch_dtype": "bfloat16"},
        }
    },
    BASE + "quantization.schema.json#/$defs/BnBQuantizationConfig/allOf/0": {
        "quant_conf": {"quantization_type": "bits-and-bytes", "load_in_4bit": True, "load_in_8bit": True}
    },
    BASE + "quantization.schema.json#/$defs/BnBQuantizationConfig/allOf/1": {
        "quant_conf": {"quantization_type": "bits-and-bytes"}
    },
}


@pytest.mark.parametrize("rule", sorted(KNOWN_CROSS_FIELD_RULES))
def test_a_document_breaking_only_one_cross_field_rule_is_accepted_by_msgspec(rule: str) -> None:
    document = {**minimal_document(), **CROSS_FIELD_BREAKERS[rule]}
    document = {key: value for key, value in document.items() if value is not DELETE}
    errors = list(config_validator().iter_errors(document))
    assert errors
    assert {found for error in errors for found in _rules_in(error)} == {rule}
    assert all(only_cross_field(error) for error in errors)
    assert validator_without_cross_field_rules().is_valid(document)
    convert_document(document)


@pytest.mark.parametrize(
    "disagreement", FIXED_DISAGREEMENTS, ids=[item.name.split(" (")[0] for item in FIXED_DISAGREEMENTS]
)
def test_a_formerly_reported_disagreement_now_agrees(disagreement: Disagreement) -> None:
    document = minimal_document()
    disagreement.example(document)
    try:
        data = to_json_data(document)
    except ConfigError:
        return  # both sides reject: the document is not JSON data (NaN, a number too large, ...)
    schema_accepts = config_validator().is_valid(data)
    try:
        convert_document(data)
        structs_accept = True
    except msgspec.ValidationError:
        structs_accept = False
    assert schema_accepts == structs_accept, (schema_accepts, structs_accept)


def test_zz_summary_of_checked_documents(capsys: pytest.CaptureFixture[str]) -> None:
    if not any(kind != "pinned" for kind, _ in CHECKED):
        pytest.skip("the property test did not run in this session")
    total = sum(CHECKED.values())
    valid = sum(count for (_, verdict), count in CHECKED.items() if verdict.startswith("valid"))
    lines = [f"differential: {total} documents checked; jsonschema: {valid} valid, {total - valid} invalid"]
    lines += [f"  {kind:22} {verdict} {count}" for (kind, verdict), count in sorted(CHECKED.items())]
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert total >= 10_000
