"""The schema spine: shipped configs validate, broken ones fail at the right place, structs agree with jsonschema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from ftconfig._ftschema_cli import cli
from ftconfig.runtime import ConfigError, load_config, parse_document, validate_document
from ftconfig.runtime.config._load import apply_set_overrides, convert_document, read_document
from ftconfig.runtime.config._structs import variant_tag
from ftconfig.tools._bundle import build_bundle
from tests.helpers import DELETE, EXAMPLES, base_document, with_change

# (change path, value, expected JSON path of the error, a word the message must contain)
INVALID_CASES = [
    ("training_args.learnin_rate", 1e-4, "$.training_args.learnin_rate", "learning_rate"),
    ("training_args.learning_rate", "high", "$.training_args.learning_rate", "number"),
    (
        "training_args.per_device_train_batch_size",
        4,
        "$.training_args.per_device_train_batch_size",
        "batchsize_conf",
    ),
    (
        "training_args.gradient_accumulation_steps",
        2,
        "$.training_args.gradient_accumulation_steps",
        "batchsize_conf",
    ),
    ("training_args.warmup_ratio", 0.1, "$.training_args.warmup_ratio", "warmup_steps"),
    ("training_args.evaluation_strategy", "steps", "$.training_args.evaluation_strategy", "eval_strategy"),
    ("training_args.lr_scheduler_type", "cosine_wrong", "$.training_args.lr_scheduler_type", "cosine"),
    ("batchsize_conf.total_train_batch_size", 0, "$.batchsize_conf.total_train_batch_size", "at least 1"),
    (
        "batchsize_conf.max_per_device_train_batch_size",
        2.5,
        "$.batchsize_conf.max_per_device_train_batch_size",
        "integer",
    ),
    ("batchsize_conf.total_train_batch_size", DELETE, "$.batchsize_conf.total_train_batch_size", "missing"),
    ("data_conf.chat_template_name", "chat-mll", "$.data_conf.chat_template_name", "chat-ml"),
    ("data_conf.padding_side", "top", "$.data_conf.padding_side", "left"),
    (
        "data_conf.missing_pad_token_strategy",
        "pad",
        "$.data_conf.missing_pad_token_strategy",
        "bos-repurpose",
    ),
    (
        "data_conf.validation_data",
        {"type": "AUTO_SPLIT", "ratio": 1.5},
        "$.data_conf.validation_data.ratio",
        "less than 1",
    ),
    (
        "data_conf.validation_data",
        {"type": "PRECOMPUTE_WEIGHTED_MIX", "datasets": [{"path": "a"}]},
        "$.data_conf.validation_data.type",
        "AUTO_SPLIT",
    ),
    (
        "data_conf.training_data",
        {"type": "CONCATENATION", "datasets": []},
        "$.data_conf.training_data.datasets",
        "at least 1",
    ),
    (
        "data_conf.training_data",
        {"type": "PRECOMPUTE_WEIGHTED_MIX", "datasets": [{"path": "a", "sampling_weight": -1}]},
        "$.data_conf.training_data.datasets[0].sampling_weight",
        "at least 0",
    ),
    (
        "data_conf.training_data",
        {"type": "CONCATENATION", "datasets": [{"paht": "a"}]},
        "$.data_conf.training_data.datasets[0].paht",
        "path",
    ),
    ("data_conf.training_data", {"datasets": [{"path": "a"}]}, "$.data_conf.training_data", "type"),
    ("peft_conf", {"peft_type": "LORAX"}, "$.peft_conf.peft_type", "LORA"),
    ("peft_conf", {"peft_type": "LORA", "rank": 8}, "$.peft_conf.rank", "unknown key"),
    ("peft_conf", {"peft_type": "LORA", "peft_kwargs": "r=8"}, "$.peft_conf.peft_kwargs", "mapping"),
    ("peft_conf", {"peft_type": "PRETRAINED_PEFT"}, "$.peft_conf.name_or_path", "missing"),
    (
        "quant_conf",
        {"quantization_type": "bits-and-bytes", "load_in_4bit": True, "load_in_8bit": True},
        "$.quant_conf.load_in_8bit",
        "both",
    ),
    ("quant_conf", {"quantization_type": "bits-and-bytes"}, "$.quant_conf.load_in_4bit", "load_in_4bit"),
    (
        "quant_conf",
        {"quantization_type": "bits-and-bytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf8"},
        "$.quant_conf.bnb_4bit_quant_type",
        "nf4",
    ),
    ("run_conf.model_args", {"torch_dtype": "fp8"}, "$.run_conf.model_args.torch_dtype", "bfloat16"),
    ("run_conf.final_checkpoint_name", "a/b", "$.run_conf.final_checkpoint_name", "form"),
    ("tracking", {"mlflow_server_uri": "http://x"}, "$.tracking.experiment_name", "missing"),
    (
        "tracking",
        {"mlflow_server_uri": "http://x", "experiment_name": "e", "hf_mlflow_log_artifacts": "maybe"},
        "$.tracking.hf_mlflow_log_artifacts",
        "form",
    ),
    ("overrides", {"num_train_epochs": 2}, "$.training_args.max_steps", None),
    ("overrides", {"lr_multiplier": 0}, "$.overrides.lr_multiplier", "greater than 0"),
    ("overrides", {"lr_batch_size_scaling": "cubic"}, "$.overrides.lr_batch_size_scaling", "sqrt"),
    ("sft_args.max_seq_length", 0, "$.sft_args.max_seq_length", "at least 1"),
    ("sft_args", DELETE, "$.sft_args", "missing"),
    ("method", "ppo", "$.method", "'sft' (the default) or 'dpo'"),
    ("method", "dpo", "$.sft_args", "method is dpo"),
    ("training_args.beta", 0.1, "$.training_args.beta", "method is sft: set method: dpo"),
    ("training_args.max_length", 64, "$.training_args.max_length", "sft_args.max_seq_length"),
    ("data_conf.validation_data", {"type": "NONE"}, None, None),  # valid on its own; see the next case
]


@pytest.mark.parametrize(
    ("path", "value", "location", "word"),
    INVALID_CASES,
    ids=[f"{case[0]}={case[1]!r}"[:60] for case in INVALID_CASES],
)
def test_invalid_config_fails_at_its_json_path(
    path: str, value: Any, location: str | None, word: str | None
) -> None:
    document = with_change(path, value)
    if path == "overrides":
        document["training_args"]["max_steps"] = 10
    if location is None:
        validate_document(document)
        return
    with pytest.raises(ConfigError) as caught:
        validate_document(document)
    locations = [item.location for item in caught.value.items]
    assert location in locations, str(caught.value)
    item = caught.value.items[locations.index(location)]
    if word:
        assert word in item.render(), item.render()
    assert "is not valid under any of the given schemas" not in str(caught.value)


def test_evaluation_without_validation_data_is_rejected() -> None:
    document = with_change("data_conf.validation_data", {"type": "NONE"})
    document["training_args"]["eval_strategy"] = "steps"
    with pytest.raises(ConfigError, match="validation_data is NONE"):
        validate_document(document)


def test_every_error_is_reported_at_once() -> None:
    document = with_change("training_args.learnin_rate", 1)
    document["batchsize_conf"]["total_train_batch_size"] = 0
    document["data_conf"]["chat_template_name"] = "nope"
    with pytest.raises(ConfigError) as caught:
        validate_document(document)
    assert len(caught.value.items) == 3


@pytest.mark.parametrize(
    "name", sorted(path.name for path in EXAMPLES.glob("*.yaml") if path.name != "generate.yaml")
)
def test_shipped_example_configs_validate(name: str) -> None:
    config = load_config(read_document(EXAMPLES / name))
    assert config.method == ("dpo" if name.startswith("dpo") else "sft")


def test_loaded_config_is_a_struct_with_schema_defaults_filled_in() -> None:
    config = load_config(base_document())
    assert isinstance(config, msgspec.Struct)
    assert config.data_conf.chat_template_name == "mistral-with-system"
    assert config.data_conf.missing_pad_token_strategy == "bos-repurpose"
    assert config.overrides.lr_multiplier == 1.0 and config.overrides.num_train_epochs is None
    assert variant_tag(config.quant_conf) == "no-quantization"
    assert config.run_conf.final_checkpoint_name == "checkpoint-final"
    assert config.run_conf.model_args.torch_dtype == "auto"
    assert config.tracking is None
    assert config.training_args.num_train_epochs == 3.0
    assert config.sft_args.max_seq_length == 256


def test_yaml_is_read_as_yaml_1_2() -> None:
    text = (EXAMPLES / "minimal.yaml").read_text().replace("learning_rate: 1.0e-4", "learning_rate: 2e-5")
    config = load_config(parse_document(text, name="c.yaml"))
    assert config.training_args.learning_rate == pytest.approx(2e-5)


def test_integral_float_is_accepted_for_an_integer_like_json_schema_says() -> None:
    config = load_config(with_change("batchsize_conf.total_train_batch_size", 8.0))
    assert config.batchsize_conf.total_train_batch_size == 8


def test_a_string_number_is_not_coerced() -> None:
    with pytest.raises(ConfigError, match="learning_rate"):
        load_config(with_change("training_args.learning_rate", "1e-4"))


def test_set_overrides_parse_yaml_values_and_create_missing_objects() -> None:
    document = apply_set_overrides(
        base_document(),
        [
            "training_args.learning_rate=3e-4",
            'peft_conf={"peft_type": "NO_PEFT"}',
            "tracking.mlflow_server_uri=http://127.0.0.1:5000",
            "tracking.experiment_name=exp",
            "sft_args.train_on_completions_only=true",
        ],
    )
    config = load_config(document)
    assert config.training_args.learning_rate == pytest.approx(3e-4)
    assert variant_tag(config.peft_conf) == "NO_PEFT"
    assert config.tracking is not None and config.tracking.experiment_name == "exp"
    assert config.sft_args.train_on_completions_only is True
    assert base_document()["peft_conf"]["peft_type"] == "LORA"


def test_set_without_equals_sign_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="PATH=VALUE"):
        apply_set_overrides(base_document(), ["training_args.learning_rate"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("- a\n- b\n", "list"),
        ("just a string\n", "single value"),
        ("a: [1,\n", "YAML syntax error"),
        ("a: 1\na: 2\n", "a"),
    ],
)
def test_unusable_documents_get_one_line_messages(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(content)
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_validate_reports_every_file_and_exits_2_if_any_is_invalid(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("data_conf: 1\n")
    result = CliRunner().invoke(
        cli, ["validate", str(EXAMPLES / "minimal.yaml"), str(tmp_path / "missing.yaml"), str(bad)]
    )
    assert result.exit_code == 2
    assert "minimal.yaml: valid" in result.output
    assert "missing.yaml: file not found" in result.output
    assert "$.data_conf: expected a mapping" in result.output


def test_validate_of_a_binary_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x00\x01\x02\xff")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2 and "binary" in result.output


def test_init_writes_a_starter_config_that_names_the_schema_and_validates(tmp_path: Path) -> None:
    target = tmp_path / "run.yaml"
    result = CliRunner().invoke(cli, ["init", str(target)])
    assert result.exit_code == 0, result.output
    text = target.read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    schema_ref = text.splitlines()[0].split("$schema=", 1)[1]
    assert (target.parent / schema_ref).resolve().name == "ftconfig.schema.json"
    assert (target.parent / schema_ref).resolve().is_file()
    load_config(parse_document(text, name=str(target)))
    again = CliRunner().invoke(cli, ["init", str(target)])
    assert again.exit_code == 2 and "already exists" in again.output


def test_bundle_accepts_and_rejects_what_the_multi_file_schema_does() -> None:
    bundle = Draft202012Validator(build_bundle())
    assert bundle.is_valid(base_document())
    for path, value, location, _ in INVALID_CASES:
        if location is None:
            continue
        document = with_change(path, value)
        if path == "overrides":
            document["training_args"]["max_steps"] = 10
        assert not bundle.is_valid(document), path


def test_msgspec_rejects_what_jsonschema_rejects_for_typed_fields() -> None:
    # msgspec is never shown to users, but a struct that accepted garbage would let it reach the libraries.
    for path, value, location, _ in INVALID_CASES:
        if location is None or path in ("overrides", "quant_conf") or "eval" in path:
            continue  # cross-field rules live only in the schema
        with pytest.raises(msgspec.ValidationError):
            convert_document(with_change(path, value))
