"""`ftschema migrate`: old- and new-dialect keys become current ones, files keep their layout, reruns do nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ftconfig._ftschema_cli import cli
from ftconfig.runtime.config._load import load_config_file, read_document, validate_document
from ftconfig.runtime.config._migrate import RULES, migrate_document, old_dialect_paths

REPO = Path(__file__).resolve().parent.parent
MINIMAL = REPO / "examples" / "minimal.yaml"

OLD_YAML = """\
# yaml-language-server: $schema=../generated/ftconfig.schema.json
# A config written for transformers 4.
data_conf:
  training_data:
    type: CONCATENATION
    datasets:
      - path: examples/data/train.jsonl   # the chats
  validation_data:
    type: AUTO_SPLIT
    ratio: 0.1
training_args:
  learning_rate: 1.0e-4
  # ramp up over 3% of the steps
  warmup_ratio: 0.03  # ratio
  evaluation_strategy: "steps"
  overwrite_output_dir: true
  # the old sampler switch
  group_by_length: true
  save_steps: 50
batchsize_conf:
  total_train_batch_size: 8
  max_per_device_train_batch_size: 4
peft_conf:
  peft_type: LORA
  peft_kwargs:
    r: 8
    target_modules: [q_proj, v_proj]
run_conf:
  model: examples/tiny-llama
sft_args:
  max_seq_length: 256
"""

EXPECTED_YAML = (
    OLD_YAML.replace("  warmup_ratio: 0.03  # ratio", "  warmup_steps: 0.03  # ratio")
    .replace(
        '  evaluation_strategy: "steps"\n  overwrite_output_dir: true\n',
        '  eval_strategy: "steps"\n',
    )
    .replace("  group_by_length: true", "  train_sampling_strategy: group_by_length")
)


def migrate_cli(*args: str) -> Any:
    return CliRunner().invoke(cli, ["migrate", *args])


def test_yaml_config_is_rewritten_in_place_keeping_comments_order_and_layout(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(OLD_YAML, encoding="utf-8")
    result = migrate_cli(str(path))
    assert result.exit_code == 0, result.output
    assert path.read_text(encoding="utf-8") == EXPECTED_YAML
    for line in (
        "$.training_args.warmup_ratio: warmup_steps: 0.03",
        "$.training_args.evaluation_strategy: renamed to eval_strategy",
        "$.training_args.overwrite_output_dir: removed",
        "`ftrun --overwrite`",
        "$.training_args.group_by_length: train_sampling_strategy: 'group_by_length'",
    ):
        assert line in result.output
    validate_document(read_document(path))


def test_migrating_twice_changes_nothing_the_second_time(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(OLD_YAML, encoding="utf-8")
    assert migrate_cli(str(path)).exit_code == 0
    once = path.read_bytes()
    again = migrate_cli(str(path))
    assert again.exit_code == 0
    assert "nothing to migrate" in again.output
    assert path.read_bytes() == once


def test_check_reports_and_exits_1_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(OLD_YAML, encoding="utf-8")
    result = migrate_cli("--check", str(path))
    assert result.exit_code == 1
    assert "$.training_args.warmup_ratio" in result.output
    assert path.read_text(encoding="utf-8") == OLD_YAML
    current = tmp_path / "current.yaml"
    current.write_text(MINIMAL.read_text(encoding="utf-8"), encoding="utf-8")
    assert migrate_cli("--check", str(current)).exit_code == 0


def test_output_writes_elsewhere_and_leaves_the_original(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(OLD_YAML, encoding="utf-8")
    target = tmp_path / "out" / "new.yaml"
    result = migrate_cli("--output", str(target), str(path))
    assert result.exit_code == 0, result.output
    assert path.read_text(encoding="utf-8") == OLD_YAML
    assert target.read_text(encoding="utf-8") == EXPECTED_YAML
    two = migrate_cli("--output", str(target), str(path), str(path))
    assert two.exit_code == 2 and "exactly one FILE" in two.output


def test_unmigratable_key_exits_2_naming_it_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    text = OLD_YAML.replace("warmup_ratio: 0.03", "warmup_ratio: 1.5")
    path.write_text(text, encoding="utf-8")
    result = migrate_cli(str(path))
    assert result.exit_code == 2
    assert "$.training_args.warmup_ratio: cannot be migrated" in result.output
    assert "Traceback" not in result.output
    assert path.read_text(encoding="utf-8") == text


def test_one_bad_file_does_not_stop_the_others(tmp_path: Path) -> None:
    bad, good = tmp_path / "bad.yaml", tmp_path / "good.yaml"
    bad.write_text(
        OLD_YAML.replace('evaluation_strategy: "steps"', "evaluation_strategy: steps\n  eval_strategy: no")
    )
    good.write_text(OLD_YAML)
    result = migrate_cli(str(bad), str(good))
    assert result.exit_code == 2
    assert "both 'evaluation_strategy' and 'eval_strategy' are set" in result.output
    assert good.read_text(encoding="utf-8") == EXPECTED_YAML


def test_json_config_keeps_its_key_order_and_indentation(tmp_path: Path) -> None:
    document = read_document(MINIMAL)
    document["training_args"] = {"learning_rate": 1e-4, "evaluation_strategy": "no", "logging_steps": 5}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(document, indent=4) + "\n", encoding="utf-8")
    assert migrate_cli(str(path)).exit_code == 0
    text = path.read_text(encoding="utf-8")
    document["training_args"] = {"learning_rate": 1e-4, "eval_strategy": "no", "logging_steps": 5}
    assert text == json.dumps(document, indent=4) + "\n"


# (old training_args, the training_args after migration)
TRANSFORMERS_4_CASES = [
    ({"warmup_ratio": 0.1}, {"warmup_steps": 0.1}),
    ({"warmup_ratio": 0.1, "warmup_steps": 0}, {"warmup_steps": 0.1}),
    ({"warmup_ratio": 0.1, "warmup_steps": 20}, {"warmup_steps": 20}),
    ({"evaluation_strategy": "epoch"}, {"eval_strategy": "epoch"}),
    ({"overwrite_output_dir": False}, {}),
    ({"no_cuda": True}, {"use_cpu": True}),
    ({"no_cuda": False}, {}),
    ({"logging_dir": "logs"}, {}),
    ({"save_safetensors": True}, {}),
    ({"include_tokens_per_second": True}, {"include_num_input_tokens_seen": True}),
    ({"push_to_hub_token": "x"}, {"hub_token": "x"}),
    ({"split_batches": True}, {"accelerator_config": {"split_batches": True}}),
    (
        {"accelerator_config": {"even_batches": True}, "dispatch_batches": False},
        {"accelerator_config": {"even_batches": True, "dispatch_batches": False}},
    ),
    ({"group_by_length": True}, {"train_sampling_strategy": "group_by_length"}),
    ({"group_by_length": False}, {}),
    ({"adafactor": True}, {"optim": "adafactor"}),
    ({"adafactor": False}, {}),
    ({"optim": "adamw_torch", "adafactor": True}, {"optim": "adafactor"}),
    ({"torchdynamo": "inductor"}, {"torch_compile_backend": "inductor"}),
    ({"fp16_opt_level": "O1"}, {}),
    (
        {"fsdp": "full_shard auto_wrap", "fsdp_min_num_params": 1000},
        {"fsdp": "full_shard auto_wrap", "fsdp_config": {"min_num_params": 1000}},
    ),
    (
        {"fsdp_transformer_layer_cls_to_wrap": "LlamaDecoderLayer"},
        {"fsdp_config": {"transformer_layer_cls_to_wrap": "LlamaDecoderLayer"}},
    ),
    ({"include_inputs_for_metrics": True}, {"include_for_metrics": ["inputs"]}),
    ({"push_to_hub_model_id": "m", "push_to_hub_organization": "org"}, {"hub_model_id": "org/m"}),
    ({"push_to_hub_model_id": "m"}, {"hub_model_id": "m"}),
    ({"tpu_metrics_debug": True}, {"debug": "tpu_metrics_debug"}),
    (
        {"tpu_metrics_debug": True, "debug": "underflow_overflow"},
        {"debug": "underflow_overflow tpu_metrics_debug"},
    ),
    ({"use_legacy_prediction_loop": False}, {}),
    ({"use_ipex": False, "jit_mode_eval": False, "use_mps_device": False, "tpu_num_cores": None}, {}),
    ({"half_precision_backend": "auto", "fp16_backend": "auto", "mp_parameters": "", "past_index": -1}, {}),
    ({"ray_scope": "last"}, {}),
]


@pytest.mark.parametrize(("old", "new"), TRANSFORMERS_4_CASES, ids=lambda case: ",".join(case) or "-")
def test_transformers_4_training_args_become_valid_transformers_5_ones(old: dict, new: dict) -> None:
    document = read_document(MINIMAL)
    document["training_args"] = {"learning_rate": 1e-4, **old}
    result = migrate_document(document)
    assert not result.problems
    assert document["training_args"] == {"learning_rate": 1e-4, **new}
    assert {change.path for change in result.changes} <= {f"$.training_args.{key}" for key in old}
    validate_document(document)
    assert old_dialect_paths(document) == []


# TRL 0.x DPOConfig keys that TRL 1.16 removed, checked on the document (no DPO schema needed).
TRL_CASES = [
    ({"max_prompt_length": 512, "max_length": 1024}, {"max_length": 1024}),
    ({"max_completion_length": 256, "max_target_length": 256}, {}),
    ({"rpo_alpha": 1.0}, {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 1.0]}),
    ({"loss_type": "ipo", "rpo_alpha": 0.5}, {"loss_type": ["ipo", "sft"], "loss_weights": [1.0, 0.5]}),
    (
        {"loss_type": ["sigmoid", "bco_pair"], "loss_weights": [0.8, 0.2], "rpo_alpha": 1.0},
        {"loss_type": ["sigmoid", "bco_pair", "sft"], "loss_weights": [0.8, 0.2, 1.0]},
    ),
    ({"rpo_alpha": None}, {}),
    ({"reference_free": False}, {}),
    ({"use_num_logits_to_keep": True, "use_logits_to_keep": False}, {}),
    ({"generate_during_eval": False, "is_encoder_decoder": False}, {}),
    ({"padding_value": 0, "label_pad_token_id": -100, "force_use_ref_model": False}, {}),
    ({"ref_model_init_kwargs": None, "model_adapter_name": None, "ref_adapter_name": None}, {}),
]


@pytest.mark.parametrize(("old", "new"), TRL_CASES, ids=lambda case: ",".join(case) or "-")
def test_trl_0_dpo_keys_become_trl_1_ones(old: dict, new: dict) -> None:
    document = {"method": "dpo", "training_args": {"beta": 0.1, **old}}
    result = migrate_document(document)
    assert not result.problems
    assert document == {"method": "dpo", "training_args": {"beta": 0.1, **new}}
    assert old_dialect_paths(document) == []


@pytest.mark.parametrize(
    ("old", "path"),
    [
        ({"reference_free": True}, "$.training_args.reference_free"),
        ({"ref_adapter_name": "reference"}, "$.training_args.ref_adapter_name"),
        ({"rpo_alpha": 1.0, "loss_type": ["sigmoid", "sft"]}, "$.training_args.rpo_alpha"),
        ({"warmup_ratio": -0.1}, "$.training_args.warmup_ratio"),
        ({"accelerator_config": "accelerate.json", "split_batches": True}, "$.training_args.split_batches"),
        ({"push_to_hub_organization": "org"}, "$.training_args.push_to_hub_organization"),
    ],
)
def test_what_needs_a_decision_is_reported_not_guessed(old: dict, path: str) -> None:
    document = {"training_args": dict(old)}
    result = migrate_document(document)
    assert path in [where for where, _ in result.problems]


def test_newer_dialect_model_args_loading_keys_go_when_harmless() -> None:
    document = read_document(MINIMAL)
    document["run_conf"]["model_args"] = {
        "dtype": "bfloat16",
        "from_tf": False,
        "from_flax": False,
        "output_loading_info": False,
        "pretrained_model_name_or_path": None,
    }
    result = migrate_document(document)
    assert not result.problems
    assert document["run_conf"]["model_args"] == {"dtype": "bfloat16"}
    refused = {"run_conf": {"model_args": {"from_tf": True, "pretrained_model_name_or_path": "x"}}}
    assert len(migrate_document(refused).problems) == 2


def test_every_rule_path_is_a_literal_json_path_under_a_known_section() -> None:
    for rule in RULES:
        assert rule.path.startswith(("$.training_args.", "$.run_conf.model_args.")), rule.path
        assert rule.becomes and rule.note
    assert len({rule.path for rule in RULES}) == len(RULES)


def test_issue_keys_all_have_a_rule() -> None:
    keys = {rule.key for rule in RULES}
    assert {
        "warmup_ratio",
        "overwrite_output_dir",
        "evaluation_strategy",
        "group_by_length",
        "adafactor",
        "torchdynamo",
        "fp16_opt_level",
        "fsdp_min_num_params",
        "fsdp_transformer_layer_cls_to_wrap",
        "include_inputs_for_metrics",
        "push_to_hub_model_id",
        "push_to_hub_organization",
        "tpu_metrics_debug",
        "use_legacy_prediction_loop",
        "max_prompt_length",
        "max_completion_length",
        "reference_free",
        "rpo_alpha",
    } <= keys


def test_validate_on_an_old_config_says_to_run_migrate(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(OLD_YAML, encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    assert f"run `ftschema migrate {path}`" in result.output
    with pytest.raises(Exception, match="ftschema migrate"):
        load_config_file(path)


def test_ftrun_on_an_old_config_says_to_run_migrate(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(OLD_YAML, encoding="utf-8")
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ftrun")), str(path), "--dry-run"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert f"run `ftschema migrate {path}`" in result.stderr
    assert "Traceback" not in result.stderr


def test_migrate_imports_no_heavy_library(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(OLD_YAML, encoding="utf-8")
    blocker = "; ".join(
        f"sys.modules[{name!r}] = None"
        for name in (
            "torch",
            "transformers",
            "peft",
            "trl",
            "bitsandbytes",
            "mlflow",
            "datasets",
            "accelerate",
        )
    )
    script = (
        f"import sys; {blocker}\n"
        "from ftconfig._ftschema_cli import cli\n"
        "from click.testing import CliRunner\n"
        f"result = CliRunner().invoke(cli, ['migrate', {str(path)!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("group_by_length", True, "train_sampling_strategy"),
        ("adafactor", True, "optim: adafactor"),
        ("torchdynamo", "inductor", "torch_compile_backend"),
        ("fp16_opt_level", "O1", "delete the key"),
        ("fsdp_min_num_params", 10, "fsdp_config"),
        ("fsdp_transformer_layer_cls_to_wrap", "LlamaDecoderLayer", "fsdp_config"),
        ("include_inputs_for_metrics", True, "include_for_metrics"),
        ("push_to_hub_model_id", "m", "hub_model_id"),
        ("push_to_hub_organization", "org", "hub_model_id"),
        ("tpu_metrics_debug", True, "debug: tpu_metrics_debug"),
        ("use_legacy_prediction_loop", True, "delete the key"),
        ("overwrite_output_dir", True, "ftrun --overwrite"),
    ],
)
def test_transformers_4_keys_get_a_hint_not_the_list_of_every_key(key: str, value: Any, words: str) -> None:
    from ftconfig.runtime.config._errors import ConfigError

    document = read_document(MINIMAL)
    document["training_args"][key] = value
    with pytest.raises(ConfigError) as caught:
        validate_document(document)
    [item] = caught.value.items
    assert item.location == f"$.training_args.{key}"
    assert words in (item.hint or "") and "Valid keys" not in (item.hint or "")


def test_deleting_keys_keeps_the_comment_lines_around_them(tmp_path: Path) -> None:
    text = """\
training_args:
  # about the first key
  overwrite_output_dir: true  # goes with its key
  # about learning_rate
  learning_rate: 1.0e-4
  fsdp_config:
    min_num_params: 1   # kept
  logging_dir: logs   # goes too
  # about the next section
# run_conf follows
run_conf:
  model: x
"""
    path = tmp_path / "comments.yaml"
    path.write_text(text, encoding="utf-8")
    assert migrate_cli(str(path)).exit_code == 0
    result = path.read_text(encoding="utf-8")
    for line in ("# about the first key", "# about learning_rate", "# kept", "# about the next section"):
        assert line in result
    assert "# run_conf follows\nrun_conf:" in result
    assert "goes" not in result and "overwrite_output_dir" not in result and "logging_dir" not in result


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("missing.yaml", None, "file not found"),
        ("broken.yaml", "training_args: [1\n", "YAML syntax error"),
        ("list.yaml", "- 1\n", "the document is a list"),
        ("broken.json", "{", "JSON syntax error"),
    ],
)
def test_unreadable_files_exit_2_with_the_loaders_message(
    name: str, content: str | None, words: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = migrate_cli(str(path))
    assert result.exit_code == 2
    assert words in result.output and "Traceback" not in result.output


def test_json_keeps_its_one_line_objects_and_arrays(tmp_path: Path) -> None:
    text = """{
\t"training_args": {"warmup_ratio": 0.1, "logging_steps": 5},
\t"peft_conf": {
\t\t"peft_type": "LORA",
\t\t"peft_kwargs": {"target_modules": ["q_proj", "v_proj"]}
\t},
\t"run_conf": {
\t\t"model_args": {
\t\t\t"dtype": "bfloat16",
\t\t\t"from_tf": false
\t\t}
\t}
}
"""
    path = tmp_path / "tabs.json"
    path.write_text(text, encoding="utf-8")
    assert migrate_cli(str(path)).exit_code == 0
    expected = (
        text.replace('"warmup_ratio": 0.1', '"warmup_steps": 0.1')
        .replace('"dtype": "bfloat16",\n', '"dtype": "bfloat16"\n')
        .replace('\t\t\t"from_tf": false\n', "")
    )
    assert path.read_text(encoding="utf-8") == expected
