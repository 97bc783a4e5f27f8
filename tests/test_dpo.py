"""DPO without training: the config document, its errors, the preference reader and the preparation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ftconfig.generated.config import DPOFinetuningConfig, FinetuningConfig
from ftconfig.runtime.config._errors import ConfigError, DataError
from ftconfig.runtime.config._load import load_config
from ftconfig.runtime.data._preference import read_preferences
from tests.helpers import EXAMPLES, tiny_run_document

PREFERENCES = EXAMPLES / "data" / "preferences.jsonl"


def dpo_document(output_dir: Path, **sections: Any) -> dict[str, Any]:
    from ftconfig.tools.build_tiny_model import tiny_dpo_document

    return tiny_dpo_document(output_dir, EXAMPLES, **sections)


def only_error(document: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(document)
    assert len(caught.value.items) == 1, str(caught.value)
    return caught.value.items[0].render()


# ---------------------------------------------------------------------------------------------- the document


def test_method_dpo_loads_the_dpo_document_with_trl_and_seed_defaults(tmp_path: Path) -> None:
    document = dpo_document(tmp_path)
    del document["training_args"]["max_length"], document["training_args"]["learning_rate"]
    config = load_config(document)
    assert isinstance(config, DPOFinetuningConfig)
    args = config.training_args
    assert args.max_length == 2048  # the seed's default, not TRL's 1024
    assert args.learning_rate == 1e-6  # TRL's DPO default
    assert args.beta == 0.1 and args.loss_type == ["sigmoid"]


def test_an_sft_config_with_or_without_method_loads_as_before(tmp_path: Path) -> None:
    document = tiny_run_document(tmp_path)
    assert isinstance(load_config(document), FinetuningConfig)
    assert load_config({**document, "method": "sft"}) == load_config(document)


def test_sft_args_in_a_dpo_config_is_one_sentence_naming_the_method(tmp_path: Path) -> None:
    document = dpo_document(tmp_path)
    document["sft_args"] = {"max_seq_length": 128}
    message = only_error(document)
    assert message.startswith("$.sft_args:") and "method is dpo" in message, message


def test_a_dpo_setting_in_an_sft_config_is_one_sentence_naming_the_method(tmp_path: Path) -> None:
    message = only_error(tiny_run_document(tmp_path, training_args={"beta": 0.2}))
    assert message.startswith("$.training_args.beta:") and "method is sft: set method: dpo" in message


def test_an_unknown_method_is_one_error_listing_both(tmp_path: Path) -> None:
    message = only_error({**tiny_run_document(tmp_path), "method": "ppo"})
    assert message.startswith("$.method:") and "'sft'" in message and "'dpo'" in message


@pytest.mark.parametrize(
    ("key", "value", "instead"),
    [
        ("max_prompt_length", 512, "write max_length instead"),
        ("max_completion_length", 512, "write max_length instead"),
        ("rpo_alpha", 1.0, "loss_type: [sigmoid, sft]"),
        ("reference_free", True, "removed in TRL 1"),
        ("per_device_train_batch_size", 4, "batchsize_conf"),
        ("warmup_ratio", 0.1, "warmup_steps"),
    ],
)
def test_keys_older_trl_had_say_what_to_write_instead(
    tmp_path: Path, key: str, value: Any, instead: str
) -> None:
    message = only_error(dpo_document(tmp_path, training_args={key: value}))
    assert message.startswith(f"$.training_args.{key}:") and instead in message, message


def test_loss_type_takes_one_name_or_a_list_of_trl_loss_names(tmp_path: Path) -> None:
    single = load_config(dpo_document(tmp_path, training_args={"loss_type": "ipo"}))
    assert single.training_args.loss_type == "ipo"
    combined = dpo_document(
        tmp_path, training_args={"loss_type": ["sigmoid", "sft"], "loss_weights": [1, 0.5]}
    )
    assert load_config(combined).training_args.loss_type == ["sigmoid", "sft"]
    with pytest.raises(ConfigError, match="loss_type"):
        load_config(dpo_document(tmp_path, training_args={"loss_type": "sigmoidd"}))


def test_dpo_resolution_splits_the_batch_scales_the_learning_rate_and_passes_the_dpo_fields(
    tmp_path: Path,
) -> None:
    from ftconfig.runtime.config._resolve import build_dpo_config, resolve_run

    document = dpo_document(
        tmp_path,
        training_args={"learning_rate": 1e-6, "beta": 0.25, "loss_type": "ipo", "max_length": 300},
        batchsize_conf={"total_train_batch_size": 16, "max_per_device_train_batch_size": 4},
        overrides={"lr_multiplier": 2.0, "lr_batch_size_scaling": "sqrt"},
    )
    config = load_config(document)
    resolved = resolve_run(config, world_size=2)
    args = build_dpo_config(config, resolved)
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (4, 2)
    assert args.learning_rate == pytest.approx(1e-6 * 2.0 * 4.0)  # multiplier, then sqrt(16)
    assert (args.beta, args.loss_type, args.max_length) == (0.25, ["ipo"], 300)
    assert config.training_args.learning_rate == 1e-6  # the config itself is never changed


# ---------------------------------------------------------------------------------------------- the reader

GOOD = {
    "prompt_messages": [{"role": "user", "content": "Hi"}],
    "chosen_messages": [{"role": "assistant", "content": "Hello"}],
    "rejected_messages": [{"role": "assistant", "content": "Go away"}],
}


def lines(*rows: Any) -> bytes:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows).encode()


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ({**GOOD, "chosen_messages": None}, "`chosen_messages`"),
        ({k: v for k, v in GOOD.items() if k != "rejected_messages"}, "no `rejected_messages` key"),
        ({**GOOD, "prompt_messages": []}, "`prompt_messages` is an empty list"),
        ({**GOOD, "chosen_messages": []}, "`chosen_messages` is an empty list"),
        (
            {**GOOD, "chosen_messages": [{"role": "user", "content": "x"}]},
            "last message of `chosen_messages`",
        ),
        (
            {**GOOD, "rejected_messages": [{"role": "system", "content": "x"}]},
            "last message of `rejected_messages` is from 'system'",
        ),
        ({**GOOD, "prompt_messages": [{"role": "user", "content": 5}]}, "content"),
        ('{"prompt_messages": [', "not valid JSON"),
    ],
)
def test_a_bad_preference_row_is_reported_at_file_line(row: Any, words: str) -> None:
    with pytest.raises(DataError) as caught:
        read_preferences(lines(GOOD, row, GOOD), name="prefs.jsonl")
    assert [item.location for item in caught.value.items] == ["prefs.jsonl:2"], str(caught.value)
    assert words in caught.value.items[0].render(), caught.value.items[0].render()


def test_optional_row_fields_are_accepted_and_a_json_array_file_works() -> None:
    row = {**GOOD, "dataset": "d", "id": 7, "tags": ["a"], "labels": {"k": 1}, "source": "ignored"}
    assert len(read_preferences(lines(row, {**row, "id": "x"}), name="p.jsonl")) == 2
    assert len(read_preferences(json.dumps([GOOD, GOOD]).encode(), name="p.json")) == 2


# ---------------------------------------------------------------------------------------------- preparation


@pytest.fixture(scope="module")
def tokenizer_and_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    from ftconfig.runtime.data._tokenizer import build_tokenizer

    config = load_config(dpo_document(tmp_path_factory.mktemp("tok")))
    return build_tokenizer(config.run_conf, config.data_conf)


def prepare(document: dict[str, Any], tokenizer_and_setup: tuple[Any, Any]) -> Any:
    from ftconfig.runtime.data._preference import prepare_preferences

    tokenizer, setup = tokenizer_and_setup
    return prepare_preferences(load_config(document), tokenizer, setup, cache_dir=None)


def write_rows(path: Path, count: int, tag: str) -> Path:
    rows = [
        {
            "prompt_messages": [{"role": "user", "content": f"{tag} question {index}"}],
            "chosen_messages": [{"role": "assistant", "content": f"{tag} good {index}"}],
            "rejected_messages": [{"role": "assistant", "content": f"{tag} bad {index}"}],
        }
        for index in range(count)
    ]
    path.write_bytes(lines(*rows))
    return path


def decoded(tokenizer: Any, dataset: Any, column: str) -> list[str]:
    return [tokenizer.decode(ids, skip_special_tokens=True) for ids in dataset[column]]


def test_prompt_plus_answer_ids_are_the_tokenisation_of_the_rendered_pair(
    tmp_path: Path, tokenizer_and_setup: tuple[Any, Any]
) -> None:
    tokenizer, _ = tokenizer_and_setup
    data = prepare(dpo_document(tmp_path), tokenizer_and_setup)
    rows = [json.loads(line) for line in PREFERENCES.read_text().splitlines()]
    for index in (0, 1, 57):
        row, prepared = rows[index], data.train[index]
        for side in ("chosen", "rejected"):
            conversation = row["prompt_messages"] + row[f"{side}_messages"]
            text = tokenizer.apply_chat_template(conversation, tokenize=False)
            assert prepared["prompt_ids"] + prepared[f"{side}_ids"] == tokenizer(text)["input_ids"]
        answer = tokenizer.decode(prepared["chosen_ids"], skip_special_tokens=False)
        # No generation prompt: the assistant header starts the answer, and the prompt ends before it.
        assert answer.startswith("<|im_start|>assistant\n" + row["chosen_messages"][-1]["content"]), answer
        assert tokenizer.decode(prepared["prompt_ids"]).endswith("<|im_end|>\n")


def test_concatenation_weighted_mix_auto_split_and_none_work_on_preference_rows(
    tmp_path: Path, tokenizer_and_setup: tuple[Any, Any]
) -> None:
    tokenizer, _ = tokenizer_and_setup
    first, second = write_rows(tmp_path / "a.jsonl", 3, "A"), write_rows(tmp_path / "b.jsonl", 2, "B")
    concatenated = prepare(
        dpo_document(
            tmp_path,
            data_conf={
                "training_data": {
                    "type": "CONCATENATION",
                    "datasets": [{"path": str(first)}, {"path": str(second)}],
                },
                "validation_data": {"type": "NONE"},
            },
        ),
        tokenizer_and_setup,
    )
    answers = decoded(tokenizer, concatenated.train, "chosen_ids")
    assert [answer.split()[-1] for answer in answers] == ["0", "1", "2", "0", "1"]
    assert [answer.split()[-3] for answer in answers] == ["A", "A", "A", "B", "B"]
    assert concatenated.validation is None

    mixed = prepare(
        dpo_document(
            tmp_path,
            data_conf={
                "training_data": {
                    "type": "PRECOMPUTE_WEIGHTED_MIX",
                    "datasets": [{"path": str(first), "sampling_weight": 1.0}, {"path": str(second)}],
                },
                "validation_data": {"type": "AUTO_SPLIT", "ratio": 0.4, "seed": 3},
            },
        ),
        tokenizer_and_setup,
    )
    # Round robin until every file is exhausted (3 + 3 rows), then 40 % of the 5 distinct rows held out.
    train_rows = decoded(tokenizer, mixed.train, "prompt_ids")
    validation_rows = decoded(tokenizer, mixed.validation, "prompt_ids")
    assert len(validation_rows) == 2 and not set(train_rows) & set(validation_rows)
    assert len(set(train_rows) | set(validation_rows)) == 5

    validated = prepare(
        dpo_document(
            tmp_path,
            data_conf={"validation_data": {"type": "CONCATENATION", "datasets": [{"path": str(second)}]}},
        ),
        tokenizer_and_setup,
    )
    assert len(validated.train) == 160 and len(validated.validation) == 2


def test_rows_whose_prompt_fills_max_length_are_dropped_and_all_dropped_is_an_error(
    tmp_path: Path, tokenizer_and_setup: tuple[Any, Any]
) -> None:
    data = prepare(dpo_document(tmp_path, training_args={"max_length": 24}), tokenizer_and_setup)
    assert 0 < data.dropped_train < 160 and len(data.train) == 160 - data.dropped_train
    assert all(len(ids) < 24 for ids in data.train["prompt_ids"])
    with pytest.raises(DataError) as caught:
        prepare(dpo_document(tmp_path, training_args={"max_length": 4}), tokenizer_and_setup)
    assert caught.value.items[0].location == "$.training_args.max_length"


def test_bad_preference_data_is_reported_with_file_line_through_preparation(
    tmp_path: Path, tokenizer_and_setup: tuple[Any, Any]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(lines(GOOD, {**GOOD, "chosen_messages": [{"role": "user", "content": "x"}]}))
    document = dpo_document(
        tmp_path, data_conf={"training_data": {"type": "CONCATENATION", "datasets": [{"path": str(bad)}]}}
    )
    with pytest.raises(DataError) as caught:
        prepare(document, tokenizer_and_setup)
    assert [item.location for item in caught.value.items] == [f"{bad}:2"]
