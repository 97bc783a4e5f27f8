"""Bad input never crashes: a catalogue of broken configs, data and command lines, each through the real CLIs.

Every case runs `ftrun CONFIG --dry-run` (the whole preflight: schema, batch split, resume target, output_dir,
PEFT kwargs, model reference, tokenizer, pad strategy, data) in-process through `ftconfig._ftrun_cli.main`, and
pure config mistakes also run `ftschema validate CONFIG`. Each must exit 2, print no traceback, name the place of
the mistake (a JSON path or `file:line`) and write nothing: the config's output_dir is never created (or, where it
existed, is left exactly as it was). A few cases also run as real `python -m ftconfig` processes.

Broken files are data in tests/cases/ (configs/ and data/); configs that are a small change of a working one are
rows of the table below.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    DELETE,
    EXAMPLES,
    run_entry_point,
    tiny_run_document,
    tree_snapshot,
    with_changes,
    write_yaml_12,
)

CASES_DIR = Path(__file__).resolve().parent / "cases"


def _tokenizer_with_pad_token(tokenizers: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(EXAMPLES / "tiny-llama")
    tokenizer.add_special_tokens({"pad_token": "<pad>"})
    tokenizer.save_pretrained(tokenizers / "with-pad")


def _tokenizer_without_generation_markers(tokenizers: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(EXAMPLES / "tiny-llama")
    tokenizer.chat_template = (
        "{% for message in messages %}{{ '### ' + message['role'] + ':\\n' + message['content'] + '\\n' }}"
        "{% endfor %}"
    )
    tokenizer.save_pretrained(tokenizers / "no-generation-markers")


def _tokenizer_without_unk_token(tokenizers: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(EXAMPLES / "tiny-llama")
    tokenizer.unk_token = None
    tokenizer.save_pretrained(tokenizers / "without-unk")


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Copies of the tiny tokenizer that lack what a setting needs (built once, outside any output_dir)."""
    folder = tmp_path_factory.mktemp("tokenizers")
    _tokenizer_with_pad_token(folder)
    _tokenizer_without_generation_markers(folder)
    _tokenizer_without_unk_token(folder)
    return folder


def _make_fifo(name: str) -> Callable[[Path], None]:
    """A setup step: a named pipe that nobody writes to (reading it would block forever)."""

    def make(tmp: Path) -> None:
        os.mkfifo(tmp / name)

    return make


def _make_file(name: str, text: str) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        (tmp / name).write_text(text)

    return make


def _truncated_model_copy(tmp: Path) -> None:
    """A copy of the tiny model whose weights file lost its second half (an interrupted download or copy)."""
    import shutil

    shutil.copytree(EXAMPLES / "tiny-llama", tmp / "model")
    weights = tmp / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _make_finished_run(output_dir: Path) -> None:
    final = output_dir / "checkpoint-final"
    final.mkdir(parents=True)
    (final / "adapter_config.json").write_text('{"peft_type": "LORA"}\n')
    (output_dir / "resolved_config.json").write_text('{"config": {}, "resolved": {}}\n')


def _make_folder(name: str, files: dict[str, str] | None = None) -> Callable[[Path], None]:
    """A setup step: a folder in the test's tmp folder with these files (name -> text)."""

    def make(tmp: Path) -> None:
        (tmp / name).mkdir(parents=True)
        for file_name, text in (files or {}).items():
            (tmp / name / file_name).write_text(text)

    return make


@dataclass(frozen=True)
class Case:
    """One broken input and where its error message must point."""

    where: str  # the place the message names: a JSON path, `file:line`, a file or an option
    says: str  # a phrase of the message that says what is wrong or what to do instead
    changes: dict[str, Any] = field(default_factory=dict)  # dotted path (list index as a number) -> new value
    argv: tuple[str, ...] = ("--dry-run",)  # the ftrun options after CONFIG
    config_file: str | None = None  # a broken config in tests/cases/configs, used as it is
    schema: bool = False  # a pure config mistake: `ftschema validate` rejects it too (else it accepts it)
    setup: Callable[[Path], None] | None = (
        None  # prepares files in the test's tmp folder (never in output_dir)
    )
    finished_run: bool = False  # output_dir already holds a finished run, which must stay untouched
    env: dict[str, str] = field(default_factory=dict)  # environment variables set for the run


DATASET0 = "data_conf.training_data.datasets.0"

CASES: dict[str, Case] = {
    # ---- the file itself
    "yaml-that-is-a-list": Case(
        "a_list.yaml", "the document is a list", config_file="a_list.yaml", schema=True
    ),
    "empty-config-file": Case("empty.yaml", "the file is empty", config_file="empty.yaml", schema=True),
    "binary-config-file": Case("binary.yaml", "binary file", config_file="binary.yaml", schema=True),
    "yaml-syntax-error": Case(
        "syntax_error.yaml:4:", "YAML syntax error", config_file="syntax_error.yaml", schema=True
    ),
    # ---- missing required parts
    "required-section-missing": Case("$.batchsize_conf", "required", {"batchsize_conf": DELETE}, schema=True),
    "validation-data-missing": Case(
        "$.data_conf.validation_data", "required", {"data_conf.validation_data": DELETE}, schema=True
    ),
    # ---- wrong types
    "learning-rate-as-string": Case(
        "$.training_args.learning_rate", "number", {"training_args.learning_rate": "1e-4"}, schema=True
    ),
    "total-batch-size-as-float": Case(
        "$.batchsize_conf.total_train_batch_size",
        "integer",
        {"batchsize_conf.total_train_batch_size": 8.5},
        schema=True,
    ),
    "completions-only-as-string": Case(
        "$.sft_args.train_on_completions_only",
        "boolean",
        {"sft_args.train_on_completions_only": "yes"},
        schema=True,
    ),
    "datasets-as-string": Case(
        "$.data_conf.training_data.datasets",
        "expected a list",
        {"data_conf.training_data.datasets": "train.jsonl"},
        schema=True,
    ),
    "peft-conf-as-list": Case("$.peft_conf", "expected a mapping", {"peft_conf": ["LORA"]}, schema=True),
    # ---- unknown and misspelled keys, at every depth
    "top-level-key-misspelled": Case(
        "$.overides", "Did you mean 'overrides'", {"overides": {"lr_multiplier": 2.0}}, schema=True
    ),
    "data-conf-key-misspelled": Case(
        "$.data_conf.chat_template",
        "Did you mean 'chat_template_name'",
        {"data_conf.chat_template": "chat-ml"},
        schema=True,
    ),
    "training-data-entry-key-misspelled": Case(
        "$.data_conf.training_data.datasets[0].sampling_weigth",
        "Did you mean 'sampling_weight'",
        {"data_conf.training_data.type": "PRECOMPUTE_WEIGHTED_MIX", f"{DATASET0}.sampling_weigth": 1.5},
        schema=True,
    ),
    "training-args-key-misspelled": Case(
        "$.training_args.learning_rat",
        "Did you mean 'learning_rate'",
        {"training_args.learning_rat": 1e-4},
        schema=True,
    ),
    "peft-conf-key-misspelled": Case(
        "$.peft_conf.task_typ", "Did you mean 'task_type'", {"peft_conf.task_typ": "CAUSAL_LM"}, schema=True
    ),
    "model-args-key-misspelled": Case(
        "$.run_conf.model_args.torch_dtyp",
        "Did you mean 'torch_dtype'",
        {"run_conf.model_args": {"torch_dtyp": "float32"}},
        schema=True,
    ),
    "run-conf-key-misspelled": Case(
        "$.run_conf.resume_from_checkpoints",
        "Did you mean 'resume_from_checkpoint'",
        {"run_conf.resume_from_checkpoints": "auto"},
        schema=True,
    ),
    "quant-conf-key-misspelled": Case(
        "$.quant_conf.bnb_4bit_quant_typ",
        "Did you mean 'bnb_4bit_quant_type'",
        {
            "quant_conf": {
                "quantization_type": "bits-and-bytes",
                "load_in_4bit": True,
                "bnb_4bit_quant_typ": "nf4",
            }
        },
        schema=True,
    ),
    "tracking-key-misspelled": Case(
        "$.tracking.experiment",
        "Did you mean 'experiment_name'",
        {"tracking": {"mlflow_server_uri": "sqlite:///mlflow.db", "experiment": "x"}},
        schema=True,
    ),
    "sft-args-key-misspelled": Case(
        "$.sft_args.max_seq_len", "Did you mean 'max_seq_length'", {"sft_args.max_seq_len": 128}, schema=True
    ),
    "overrides-key-misspelled": Case(
        "$.overrides.lr_multiplyer",
        "Did you mean 'lr_multiplier'",
        {"overrides": {"lr_multiplyer": 2.0}},
        schema=True,
    ),
    "batchsize-conf-key-misspelled": Case(
        "$.batchsize_conf.max_per_device_batch_size",
        "Did you mean 'max_per_device_train_batch_size'",
        {"batchsize_conf.max_per_device_batch_size": 4},
        schema=True,
    ),
    # ---- wrong tags of tagged unions
    "training-data-type-unknown": Case(
        "$.data_conf.training_data.type",
        "CONCATENATION",
        {"data_conf.training_data.type": "CONCAT"},
        schema=True,
    ),
    "peft-type-unknown": Case("$.peft_conf.peft_type", "LORA", {"peft_conf.peft_type": "LORRA"}, schema=True),
    "quantization-type-unknown": Case(
        "$.quant_conf.quantization_type",
        "bits-and-bytes",
        {"quant_conf": {"quantization_type": "bnb", "load_in_4bit": True}},
        schema=True,
    ),
    # ---- numbers out of range
    "total-batch-size-zero": Case(
        "$.batchsize_conf.total_train_batch_size",
        "1",
        {"batchsize_conf.total_train_batch_size": 0},
        schema=True,
    ),
    "max-seq-length-zero": Case(
        "$.sft_args.max_seq_length", "1", {"sft_args.max_seq_length": 0}, schema=True
    ),
    "lr-multiplier-zero": Case(
        "$.overrides.lr_multiplier", "0", {"overrides": {"lr_multiplier": 0}}, schema=True
    ),
    "auto-split-ratio-above-one": Case(
        "$.data_conf.validation_data.ratio",
        "1",
        {"data_conf.validation_data": {"type": "AUTO_SPLIT", "ratio": 1.5}},
        schema=True,
    ),
    "sampling-weight-negative": Case(
        "$.data_conf.training_data.datasets[0].sampling_weight",
        "0",
        {"data_conf.training_data.type": "PRECOMPUTE_WEIGHTED_MIX", f"{DATASET0}.sampling_weight": -1.0},
        schema=True,
    ),
    "datasets-empty": Case(
        "$.data_conf.training_data.datasets",
        "at least 1 item",
        {"data_conf.training_data.datasets": []},
        schema=True,
    ),
    # ---- contradictions
    "epochs-override-with-max-steps": Case(
        "$.training_args.max_steps", "num_train_epochs", {"overrides": {"num_train_epochs": 2}}, schema=True
    ),
    "eval-steps-without-validation-data": Case(
        "$.training_args.eval_strategy",
        "validation",
        {"training_args.eval_strategy": "steps", "training_args.eval_steps": 5},
        schema=True,
    ),
    "load-in-4bit-and-8bit": Case(
        "$.quant_conf",
        "load_in_8bit",
        {"quant_conf": {"quantization_type": "bits-and-bytes", "load_in_4bit": True, "load_in_8bit": True}},
        schema=True,
    ),
    "quantized-model-without-adapter": Case(
        "$.peft_conf",
        "adapter",
        {
            "quant_conf": {"quantization_type": "bits-and-bytes", "load_in_4bit": True},
            "peft_conf": {"peft_type": "NO_PEFT"},
        },
    ),
    # ---- training_args keys transformers 5 renamed, and the batch fields that belong to batchsize_conf
    "warmup-ratio-renamed": Case(
        "$.training_args.warmup_ratio", "warmup_steps", {"training_args.warmup_ratio": 0.1}, schema=True
    ),
    "evaluation-strategy-renamed": Case(
        "$.training_args.evaluation_strategy",
        "eval_strategy",
        {"training_args.evaluation_strategy": "no"},
        schema=True,
    ),
    "per-device-train-batch-in-training-args": Case(
        "$.training_args.per_device_train_batch_size",
        "batchsize_conf",
        {"training_args.per_device_train_batch_size": 4},
        schema=True,
    ),
    "per-device-eval-batch-in-training-args": Case(
        "$.training_args.per_device_eval_batch_size",
        "batchsize_conf",
        {"training_args.per_device_eval_batch_size": 4},
        schema=True,
    ),
    "gradient-accumulation-in-training-args": Case(
        "$.training_args.gradient_accumulation_steps",
        "batchsize_conf",
        {"training_args.gradient_accumulation_steps": 2},
        schema=True,
    ),
    # ---- data files
    "data-file-missing": Case(
        "$.data_conf.training_data.datasets[0].path",
        "file not found",
        {f"{DATASET0}.path": "{tmp}/gone.jsonl"},
    ),
    "validation-data-file-missing": Case(
        "$.data_conf.validation_data.datasets[0].path",
        "file not found",
        {"data_conf.validation_data": {"type": "CONCATENATION", "datasets": [{"path": "{tmp}/gone.jsonl"}]}},
    ),
    "jsonl-line-not-json": Case(
        "line_not_json.jsonl:3", "not valid JSON", {f"{DATASET0}.path": "{cases}/data/line_not_json.jsonl"}
    ),
    "row-without-messages": Case(
        "row_without_messages.jsonl:2",
        "no `messages` key",
        {f"{DATASET0}.path": "{cases}/data/row_without_messages.jsonl"},
    ),
    "message-without-role": Case(
        "message_without_role.jsonl:4",
        "no `role` key",
        {f"{DATASET0}.path": "{cases}/data/message_without_role.jsonl"},
    ),
    "messages-not-a-list": Case(
        "messages_not_a_list.jsonl:2",
        "not a list of messages",
        {f"{DATASET0}.path": "{cases}/data/messages_not_a_list.jsonl"},
    ),
    "data-file-empty": Case("empty.jsonl", "no rows", {f"{DATASET0}.path": "{cases}/data/empty.jsonl"}),
    # ---- DPO (method: dpo)
    "dpo-with-sft-args": Case("$.sft_args", "this config's method is dpo", {"method": "dpo"}, schema=True),
    "dpo-key-in-sft": Case(
        "$.training_args.beta", "set method: dpo", {"training_args.beta": 0.1}, schema=True
    ),
    "dpo-removed-trl-key": Case(
        "$.training_args.max_prompt_length",
        "write max_length instead",
        {"method": "dpo", "sft_args": DELETE, "training_args.max_prompt_length": 512},
        schema=True,
    ),
    "dpo-answer-not-from-assistant": Case(
        "preference_chosen_from_user.jsonl:2",
        "not from the assistant",
        {
            "method": "dpo",
            "sft_args": DELETE,
            f"{DATASET0}.path": "{cases}/data/preference_chosen_from_user.jsonl",
        },
    ),
    "every-example-longer-than-max-seq-length": Case(
        "$.sft_args.max_seq_length", "longer than", {"sft_args.max_seq_length": 4}
    ),
    # ---- batch split, model, tokenizer, adapter
    "world-size-does-not-divide-total-batch": Case(
        "$.batchsize_conf.total_train_batch_size", "3", argv=("--dry-run", "--world-size", "3")
    ),
    "model-path-missing": Case(
        "$.run_conf.model", "no-such-model", {"run_conf.model": "{tmp}/no-such-model"}
    ),
    "model-path-is-an-empty-folder": Case(
        "$.run_conf.model",
        "not a model folder",
        {"run_conf.model": "{tmp}/empty"},
        setup=_make_folder("empty"),
    ),
    "tokenizer-path-missing": Case(
        "$.run_conf.tokenizer", "no tokenizer folder", {"run_conf.tokenizer": "{tmp}/no-such-tokenizer"}
    ),
    "unk-convert-to-eos-with-a-pad-token": Case(
        "$.data_conf.missing_pad_token_strategy",
        "already has a pad token",
        {
            "run_conf.tokenizer": "{tokenizers}/with-pad",
            "data_conf.missing_pad_token_strategy": "unk-convert-to-eos",
        },
    ),
    "unk-repurpose-on-a-tokenizer-without-unk": Case(
        "$.data_conf.missing_pad_token_strategy",
        "no pad token and no UNK token",
        {
            "run_conf.tokenizer": "{tokenizers}/without-unk",
            "data_conf.missing_pad_token_strategy": "unk-repurpose",
        },
    ),
    "keep-original-completions-only-without-generation-markers": Case(
        "$.sft_args.train_on_completions_only",
        "{% generation %}",
        {
            "run_conf.tokenizer": "{tokenizers}/no-generation-markers",
            "data_conf.chat_template_name": "keep-original",
            "sft_args.train_on_completions_only": True,
        },
    ),
    "peft-kwargs-typo": Case("$.peft_conf.peft_kwargs.rr", "r", {"peft_conf.peft_kwargs.rr": 8}),
    "pretrained-peft-adapter-missing": Case(
        "$.peft_conf.name_or_path",
        "no adapter folder",
        {"peft_conf": {"peft_type": "PRETRAINED_PEFT", "name_or_path": "{tmp}/no-adapter"}},
    ),
    "pretrained-peft-folder-without-adapter-config": Case(
        "$.peft_conf.name_or_path",
        "no adapter_config.json",
        {"peft_conf": {"peft_type": "PRETRAINED_PEFT", "name_or_path": "{tmp}/plain"}},
        setup=_make_folder("plain", {"README.md": "not an adapter\n"}),
    ),
    "pretrained-peft-hub-id-not-in-cache": Case(
        "$.peft_conf.name_or_path",
        "not in the local Hugging Face cache",
        {"peft_conf": {"peft_type": "PRETRAINED_PEFT", "name_or_path": "someorg/no-such-adapter"}},
    ),
    "pretrained-peft-with-a-template-that-adds-tokens": Case(
        "$.peft_conf",
        "new tokens",
        {"peft_conf": {"peft_type": "PRETRAINED_PEFT", "name_or_path": "{tmp}/adapter"}},
        setup=_make_folder("adapter", {"adapter_config.json": '{"peft_type": "LORA"}\n'}),
    ),
    # ---- checkpoints and output_dir
    "resume-from-a-non-checkpoint-folder": Case(
        "$.run_conf.resume_from_checkpoint",
        "not a trainer checkpoint",
        {"run_conf.resume_from_checkpoint": "{tmp}/not-a-checkpoint"},
        setup=_make_folder("not-a-checkpoint", {"config.json": "{}\n"}),
    ),
    "resume-true-without-checkpoints": Case(
        "$.run_conf.resume_from_checkpoint", "no checkpoint", {"run_conf.resume_from_checkpoint": True}
    ),
    "output-dir-holds-a-finished-run": Case(
        "$.training_args.output_dir", "already holds a run", finished_run=True
    ),
    # ---- values the libraries reject only once training starts
    "learning-rate-negative": Case(
        "$.training_args.learning_rate", "0", {"training_args.learning_rate": -1e-4}, schema=True
    ),
    "adam-beta1-one": Case("$.training_args.adam_beta1", "1", {"training_args.adam_beta1": 1.0}, schema=True),
    "adam-beta2-negative": Case(
        "$.training_args.adam_beta2", "0", {"training_args.adam_beta2": -0.1}, schema=True
    ),
    "dataloader-num-workers-negative": Case(
        "$.training_args.dataloader_num_workers",
        "0",
        {"training_args.dataloader_num_workers": -1},
        schema=True,
    ),
    "seed-above-2-to-the-32": Case(
        "$.training_args.seed", "4294967295", {"training_args.seed": 2**32}, schema=True
    ),
    "seed-negative": Case("$.training_args.seed", "0", {"training_args.seed": -5}, schema=True),
    "auto-split-seed-negative": Case(
        "$.data_conf.validation_data.seed",
        "0",
        {"data_conf.validation_data": {"type": "AUTO_SPLIT", "ratio": 0.2, "seed": -1}},
        schema=True,
    ),
    "weighted-mix-seed-too-large": Case(
        "$.data_conf.training_data.seed",
        "4294967295",
        {"data_conf.training_data.type": "PRECOMPUTE_WEIGHTED_MIX", "data_conf.training_data.seed": 2**33},
        schema=True,
    ),
    "zero-epochs-without-max-steps": Case(
        "$.training_args.num_train_epochs",
        "train nothing",
        {"training_args.num_train_epochs": 0, "training_args.max_steps": -1},
        schema=True,
    ),
    "lora-rank-zero": Case("$.peft_conf.peft_kwargs", "r", {"peft_conf.peft_kwargs.r": 0}),
    "lora-target-modules-match-nothing": Case(
        "$.peft_conf.peft_kwargs", "no_such_proj", {"peft_conf.peft_kwargs.target_modules": ["no_such_proj"]}
    ),
    # ---- hostile documents and environments
    "yaml-alias-bomb": Case(
        "alias_bomb.yaml", "expands to more than", config_file="alias_bomb.yaml", schema=True
    ),
    "yaml-recursive-alias": Case(
        "recursive_alias.yaml", "contains itself", config_file="recursive_alias.yaml", schema=True
    ),
    "yaml-nested-1000-levels": Case(
        "nested_1000_levels.yaml", "nests deeper", config_file="nested_1000_levels.yaml", schema=True
    ),
    "json-nested-1000-levels": Case(
        "nested_1000_levels.json", "nests deeper", config_file="nested_1000_levels.json", schema=True
    ),
    "json-duplicate-keys": Case(
        "duplicate_keys.json:4",
        "duplicate key 'learning_rate'",
        config_file="duplicate_keys.json",
        schema=True,
    ),
    "set-path-1000-levels": Case(
        "--set a.a.a", "deeper than", argv=("--dry-run", "--set", ".".join(["a"] * 1000) + "=1")
    ),
    "set-value-1000-levels": Case(
        "--set training_args.x",
        "nests deeper",
        argv=("--dry-run", "--set", "training_args.x=" + "[" * 1000 + "]" * 1000),
    ),
    "data-path-is-a-fifo": Case(
        "$.data_conf.training_data.datasets[0].path",
        "named pipe",
        {f"{DATASET0}.path": "{tmp}/pipe.jsonl"},
        setup=_make_fifo("pipe.jsonl"),
    ),
    "data-file-invalid-utf8-in-a-string": Case(
        "invalid_utf8.jsonl:3", "not UTF-8", {f"{DATASET0}.path": "{cases}/data/invalid_utf8.jsonl"}
    ),
    "data-file-gzip-compressed": Case(
        "compressed.jsonl.gz", "gzip-compressed", {f"{DATASET0}.path": "{cases}/data/compressed.jsonl.gz"}
    ),
    "world-size-not-a-number": Case("WORLD_SIZE", "not a whole number", env={"WORLD_SIZE": "two"}),
    "rank-not-a-number": Case("RANK", "not a whole number", env={"RANK": "zero"}),
    "local-rank-not-a-number": Case("LOCAL_RANK", "not a whole number", env={"LOCAL_RANK": "0x"}),
    "deepspeed-config-without-deepspeed-installed": Case(
        "$.training_args.deepspeed",
        "deepspeed package is not installed",
        {"training_args.deepspeed": "{tmp}/ds.json"},
        setup=_make_file("ds.json", '{"zero_optimization": {"stage": 2}}'),
    ),
    # ---- output locations
    "output-dir-is-a-file": Case(
        "$.training_args.output_dir",
        "is a file, not a folder",
        {"training_args.output_dir": "{tmp}/taken"},
        setup=_make_file("taken", "a file\n"),
    ),
    "output-dir-under-a-file": Case(
        "$.training_args.output_dir",
        "cannot be a folder",
        {"training_args.output_dir": "{tmp}/taken/out"},
        setup=_make_file("taken", "a file\n"),
    ),
    "cache-dir-is-a-file": Case(
        "FTCONFIG_CACHE_DIR",
        "is a file",
        setup=_make_file("cache", "a file\n"),
        env={"FTCONFIG_CACHE_DIR": "{tmp}/cache"},
    ),
    "auto-resume-with-only-incomplete-checkpoints": Case(
        "$.training_args.output_dir",
        "holds only incomplete or damaged checkpoints",
        {"training_args.output_dir": "{tmp}/cut-short", "run_conf.resume_from_checkpoint": "auto"},
        setup=_make_folder("cut-short/checkpoint-8", {"model.safetensors": "half\n"}),
    ),
    # ---- data that trains nothing
    "no-conversation-has-an-assistant-turn": Case(
        "no_assistant_turn.jsonl",
        "none of its 5 conversations",
        {f"{DATASET0}.path": "{cases}/data/no_assistant_turn.jsonl"},
    ),
    "no-assistant-turn-with-completions-only": Case(
        "no_assistant_turn.jsonl",
        "has an assistant turn",
        {
            f"{DATASET0}.path": "{cases}/data/no_assistant_turn.jsonl",
            "sft_args.train_on_completions_only": True,
        },
    ),
    # ---- damaged files
    "model-weights-truncated": Case(
        "$.run_conf.model", "truncated", {"run_conf.model": "{tmp}/model"}, setup=_truncated_model_copy
    ),
    # ---- command line
    "set-without-equals": Case(
        "--set training_args.learning_rate",
        "PATH=VALUE",
        argv=("--dry-run", "--set", "training_args.learning_rate"),
    ),
    "set-into-a-value-that-is-not-a-mapping": Case(
        "--set training_args.learning_rate.x",
        "not a mapping",
        argv=("--dry-run", "--set", "training_args.learning_rate.x=1"),
    ),
    "set-value-out-of-range-names-the-set-option": Case(
        "$.training_args.learning_rate (from --set training_args.learning_rate)",
        "at least 0",
        argv=("--dry-run", "--set", "training_args.learning_rate=-1"),
    ),
    "json-without-dry-run": Case("--json", "--dry-run", argv=("--json",)),
    # ---- tracking and launchers
    "tracking-uri-file-scheme": Case(
        "$.tracking.mlflow_server_uri",
        "sqlite",
        {"tracking": {"mlflow_server_uri": "file:///{tmp}/mlruns", "experiment_name": "x"}},
    ),
    "tracking-postgresql-without-its-driver": Case(
        "$.tracking.mlflow_server_uri",
        "not installed",
        {"tracking": {"mlflow_server_uri": "postgresql://svc:pw@127.0.0.1:1/mlflow", "experiment_name": "x"}},
    ),
    "tracking-sqlite-store-under-a-file": Case(
        "$.tracking.mlflow_server_uri",
        "cannot be written",
        {"tracking": {"mlflow_server_uri": "sqlite:///{tmp}/taken/mlflow.db", "experiment_name": "x"}},
        setup=_make_file("taken", "a file\n"),
    ),
    "tracking-uri-from-the-environment-unreachable": Case(
        "MLFLOW_TRACKING_URI",
        "cannot reach",
        env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "DISABLE_MLFLOW_INTEGRATION": "false"},
    ),
    "deepspeed-config-missing": Case(
        "$.training_args.deepspeed", "no-such-ds.json", {"training_args.deepspeed": "{tmp}/no-such-ds.json"}
    ),
}


def _fill(value: Any, places: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, place in places.items():
            value = value.replace("{" + name + "}", place)
        return value
    if isinstance(value, dict):
        return {key: _fill(item, places) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, places) for item in value]
    return value


@dataclass
class Prepared:
    config: Path
    output_dir: Path
    argv: list[str]


def prepare_case(case: Case, tmp_path: Path, tokenizers: Path) -> Prepared:
    work = tmp_path / "work"
    work.mkdir()
    output_dir = work / "out"
    if case.setup is not None:
        case.setup(work)
    if case.finished_run:
        _make_finished_run(output_dir)
    if case.config_file is not None:
        config = CASES_DIR / "configs" / case.config_file
    else:
        places = {"tmp": str(work), "cases": str(CASES_DIR), "tokenizers": str(tokenizers)}
        document = with_changes(tiny_run_document(output_dir), _fill(case.changes, places))
        config = tmp_path / "config.yaml"
        write_yaml_12(config, document)
    return Prepared(config, output_dir, [str(config), *case.argv])


def assert_clean_user_error(code: int | str | None, output: str, case: Case) -> None:
    assert code == 2, output
    assert "Traceback" not in output, output
    assert case.where in output, f"the message does not name {case.where!r}:\n{output}"
    assert case.says in output, f"the message does not say {case.says!r}:\n{output}"


def test_the_catalogue_holds_at_least_40_cases_on_both_sides_of_the_schema() -> None:
    assert len(CASES) >= 40
    assert sum(case.schema for case in CASES.values()) >= 20
    assert sum(case.schema is False for case in CASES.values()) >= 20


@pytest.mark.slow  # every case runs the whole ftrun dry run in-process (tokenizer, data, plan)
@pytest.mark.parametrize("name", list(CASES))
def test_ftrun_dry_run_exits_2_naming_the_place_without_traceback_or_writes(
    name: str,
    tmp_path: Path,
    tokenizers: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ftconfig._ftrun_cli import main

    case = CASES[name]
    prepared = prepare_case(case, tmp_path, tokenizers)
    for variable, value in case.env.items():
        monkeypatch.setenv(variable, value.replace("{tmp}", str(tmp_path / "work")))
    monkeypatch.chdir(tmp_path / "work")  # relative paths a run might write land where the snapshot looks
    before = tree_snapshot(tmp_path)
    code, output = run_entry_point(main, ["ftrun", *prepared.argv], monkeypatch, capsys)
    assert_clean_user_error(code, output, case)
    assert tree_snapshot(tmp_path) == before, "the failed run wrote files"
    assert prepared.output_dir.exists() == case.finished_run


@pytest.mark.parametrize("name", list(CASES))
def test_ftschema_validate_rejects_exactly_the_pure_config_mistakes(
    name: str,
    tmp_path: Path,
    tokenizers: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ftconfig._ftschema_cli import main

    case = CASES[name]
    if case.config_file is None and not case.changes:
        pytest.skip("the config itself is valid; the mistake is on the command line or in output_dir")
    prepared = prepare_case(case, tmp_path, tokenizers)
    code, output = run_entry_point(main, ["ftschema", "validate", str(prepared.config)], monkeypatch, capsys)
    if case.schema:
        assert_clean_user_error(code, output, case)
    else:
        # The mistake needs runtime facts (files, tokenizer, world size): the schema alone accepts the config.
        assert code == 0, output
        assert "valid" in output
    assert not prepared.output_dir.exists()


SUBPROCESS_CASES = [
    "training-args-key-misspelled",
    "jsonl-line-not-json",
    "model-path-missing",
    "yaml-alias-bomb",
    "data-path-is-a-fifo",
    "world-size-not-a-number",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_python_m_ftconfig_process_exits_2_with_the_message_and_no_traceback(
    name: str, tmp_path: Path, tokenizers: Path
) -> None:
    case = CASES[name]
    prepared = prepare_case(case, tmp_path, tokenizers)
    before = tree_snapshot(tmp_path)
    environment = {
        **os.environ,
        **{key: value.replace("{tmp}", str(tmp_path / "work")) for key, value in case.env.items()},
    }
    result = subprocess.run(
        [sys.executable, "-m", "ftconfig", *prepared.argv],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path / "work",
        timeout=300,
        check=False,
    )
    assert_clean_user_error(result.returncode, result.stdout + result.stderr, case)
    assert result.stdout == ""
    assert tree_snapshot(tmp_path) == before
    assert not prepared.output_dir.exists()
