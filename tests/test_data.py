"""Data preparation: reading chat files, mixing, splitting, length filtering, caching; real tokenizer."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import pytest

from ftconfig.runtime.config._errors import ConfigError, DataError

datasets = pytest.importorskip("datasets")

from ftconfig.runtime.data import _cache as _prepare_cache  # noqa: E402
from ftconfig.runtime.data._encode import encode_conversations  # noqa: E402
from ftconfig.runtime.data._records import read_conversations  # noqa: E402
from ftconfig.runtime.data._tokenizer import build_tokenizer  # noqa: E402
from tests.helpers import (  # noqa: E402
    concatenation,
    conversation,
    data_config,
    make_config,
    write_jsonl,
    write_source,
)

# --- helpers ------------------------------------------------------------------------------------------------


def weighted_mix(*items: tuple[Path, float], seed: int = 7) -> dict[str, Any]:
    datasets_ = [{"path": str(path), "sampling_weight": weight} for path, weight in items]
    return {"type": "PRECOMPUTE_WEIGHTED_MIX", "datasets": datasets_, "seed": seed}


@pytest.fixture
def labeller(tokenizer_and_setup: tuple[Any, Any]) -> Any:
    """Names the source conversation of every row of a prepared dataset (by its token ids)."""
    tokenizer, setup = tokenizer_and_setup

    def labels_of(dataset: Any, sources: dict[str, Any]) -> list[str]:
        names = list(sources)
        encoded = encode_conversations(tokenizer, setup, list(sources.values()), completions_only=False)
        by_ids = {tuple(ids): name for name, ids in zip(names, encoded["input_ids"], strict=True)}
        assert len(by_ids) == len(names), "test conversations must tokenise differently"
        return [by_ids[tuple(ids)] for ids in dataset["input_ids"]]

    return labels_of


def lengths_of(tokenizer_and_setup: tuple[Any, Any], sources: dict[str, Any]) -> dict[str, int]:
    tokenizer, setup = tokenizer_and_setup
    encoded = encode_conversations(tokenizer, setup, list(sources.values()), completions_only=False)
    return {name: len(ids) for name, ids in zip(sources, encoded["input_ids"], strict=True)}


# --- combining ----------------------------------------------------------------------------------------------


def test_concatenation_gives_the_files_in_order_and_rows_in_file_order(
    tmp_path: Path, tiny_model_dir: Path, prepare: Any, labeller: Any
) -> None:
    first, first_rows = write_source(tmp_path, "a", 2)
    second, second_rows = write_source(tmp_path, "b", 3)
    data = prepare(data_config(tiny_model_dir, concatenation(first, second)))
    assert labeller(data.train, first_rows | second_rows) == ["a0", "a1", "b0", "b1", "b2"]
    assert data.train.column_names == ["input_ids", "labels", "length"]
    assert data.validation is None
    assert data.source_counts == {str(first): 2, str(second): 3}
    assert data.train_tokens == sum(data.train["length"])


def test_round_robin_mix_wraps_the_shorter_files_until_the_longest_is_used_up(
    tmp_path: Path, tiny_model_dir: Path, prepare: Any, labeller: Any
) -> None:
    a, a_rows = write_source(tmp_path, "a", 3)
    b, b_rows = write_source(tmp_path, "b", 4)
    c, c_rows = write_source(tmp_path, "c", 5)
    data = prepare(data_config(tiny_model_dir, weighted_mix((a, 1.0), (b, 1.0), (c, 1.0))))
    order = labeller(data.train, a_rows | b_rows | c_rows)
    assert order == ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2", "a0", "b3", "c3", "a1", "b0", "c4"]


def test_weighted_mix_is_reproducible_and_stops_once_every_example_was_drawn(
    tmp_path: Path, tiny_model_dir: Path, prepare: Any, labeller: Any
) -> None:
    a, a_rows = write_source(tmp_path, "a", 3)
    b, b_rows = write_source(tmp_path, "b", 4)
    sources = a_rows | b_rows
    config = data_config(tiny_model_dir, weighted_mix((a, 3.0), (b, 1.0), seed=11))
    order = labeller(prepare(config).train, sources)
    assert labeller(prepare(config).train, sources) == order
    assert set(order) == set(sources)
    assert set(order[:-1]) != set(sources), "the mix went on after every example had been drawn"
    assert len(order) > len(sources), "weight 3:1 on 3 and 4 rows oversamples the first file"
    other_seed = labeller(
        prepare(data_config(tiny_model_dir, weighted_mix((a, 3.0), (b, 1.0), seed=12))).train, sources
    )
    assert other_seed != order


def test_weight_zero_dataset_is_skipped_and_never_read(
    tmp_path: Path, tiny_model_dir: Path, prepare: Any, labeller: Any
) -> None:
    a, a_rows = write_source(tmp_path, "a", 3)
    data = prepare(data_config(tiny_model_dir, weighted_mix((a, 1.0), (tmp_path / "absent.jsonl", 0.0))))
    assert labeller(data.train, a_rows) == ["a0", "a1", "a2"]


def test_all_weights_zero_is_a_config_error_at_the_datasets_list(
    tmp_path: Path, tiny_model_dir: Path, prepare: Any
) -> None:
    a, _ = write_source(tmp_path, "a", 3)
    with pytest.raises(ConfigError) as caught:
        prepare(data_config(tiny_model_dir, weighted_mix((a, 0.0), (a, 0.0))))
    assert caught.value.items[0].location == "$.data_conf.training_data.datasets"
    assert "sampling_weight 0" in caught.value.items[0].message


# --- validation ---------------------------------------------------------------------------------------------


def test_auto_split_after_an_oversampling_mix_never_puts_a_source_example_on_both_sides(
    tmp_path: Path, tiny_model_dir: Path, prepare: Any, labeller: Any
) -> None:
    a, a_rows = write_source(tmp_path, "a", 3)
    b, b_rows = write_source(tmp_path, "b", 10)
    sources = a_rows | b_rows
    split = {"type": "AUTO_SPLIT", "ratio": 0.25, "seed": 3}
    data = prepare(data_config(tiny_model_dir, weighted_mix((a, 5.0), (b, 1.0)), split))
    train, validation = labeller(data.train, sources), labeller(data.validation, sources)
    assert len(train) > len(set(train)), "the mix should duplicate rows for this test to mean anything"
    assert not set(train) & set(validation)
    assert len(validation) == len(set(validation)) == math.ceil(0.25 * 13)
    assert set(train) | set(validation) == set(sources)


@pytest.mark.parametrize(("count", "ratio", "expected"), [(10, 0.25, 3), (10, 0.7, 7), (2, 0.5, 1)])
def test_auto_split_validation_size_is_ceil_of_ratio_times_examples(
    tmp_path: Path, tiny_model_dir: Path, prepare: Any, count: int, ratio: float, expected: int
) -> None:
    a, _ = write_source(tmp_path, "a", count)
    data = prepare(data_config(tiny_model_dir, concatenation(a), {"type": "AUTO_SPLIT", "ratio": ratio}))
    assert (len(data.train), len(data.validation)) == (count - expected, expected)


def test_auto_split_that_leaves_no_training_example_is_a_data_error(
    tmp_path: Path, tiny_model_dir: Path, prepare: Any
) -> None:
    a, _ = write_source(tmp_path, "a", 2)
    with pytest.raises(DataError) as caught:
        prepare(data_config(tiny_model_dir, concatenation(a), {"type": "AUTO_SPLIT", "ratio": 0.9}))
    assert caught.value.items[0].location == "$.data_conf.validation_data.ratio"


def test_concatenation_validation_is_length_filtered_and_sorted_longest_first(
    tmp_path: Path, tiny_model_dir: Path, tokenizer_and_setup: Any, prepare: Any, labeller: Any
) -> None:
    a, a_rows = write_source(tmp_path, "a", 2)
    rows = {f"v{i}": conversation(f"v{i}", words) for i, words in enumerate([2, 9, 1, 5, 60])}
    valid = write_jsonl(tmp_path / "valid.jsonl", [{"messages": m} for m in rows.values()])
    lengths = lengths_of(tokenizer_and_setup, rows)
    limit = lengths["v1"]  # v4 is longer and must go; v1 sits exactly at the limit and stays
    assert lengths["v4"] > limit and max(lengths_of(tokenizer_and_setup, a_rows).values()) <= limit
    data = prepare(data_config(tiny_model_dir, concatenation(a), concatenation(valid), max_seq_length=limit))
    assert labeller(data.validation, rows) == ["v1", "v3", "v0", "v2"]
    assert data.validation["length"] == sorted(data.validation["length"], reverse=True)
    assert (data.dropped_train, data.dropped_validation) == (0, 1)


def test_auto_split_validation_is_sorted_longest_first(
    tmp_path: Path, tiny_model_dir: Path, prepare: Any
) -> None:
    rows = [{"messages": conversation(f"r{i}", words=1 + (i * 7) % 11)} for i in range(20)]
    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    data = prepare(data_config(tiny_model_dir, concatenation(path), {"type": "AUTO_SPLIT", "ratio": 0.5}))
    assert len(data.validation) == 10
    assert data.validation["length"] == sorted(data.validation["length"], reverse=True)


# --- length filtering ---------------------------------------------------------------------------------------


def test_length_filter_keeps_length_equal_to_the_limit_and_counts_the_dropped(
    tmp_path: Path, tiny_model_dir: Path, tokenizer_and_setup: Any, prepare: Any, labeller: Any, caplog: Any
) -> None:
    rows = {f"r{i}": conversation(f"r{i}", words) for i, words in enumerate([1, 8, 3, 20, 8, 40])}
    path = write_jsonl(tmp_path / "rows.jsonl", [{"messages": m} for m in rows.values()])
    lengths = lengths_of(tokenizer_and_setup, rows)
    limit = lengths["r1"]
    with caplog.at_level(logging.WARNING, logger="ftconfig.runtime.data._prepare"):
        data = prepare(data_config(tiny_model_dir, concatenation(path), max_seq_length=limit))
    kept = labeller(data.train, rows)
    assert kept == [name for name in rows if lengths[name] <= limit]
    assert "r1" in kept and lengths["r1"] == limit
    assert data.dropped_train == sum(length > limit for length in lengths.values()) == 2
    assert f"dropped 2 of 6 training examples longer than max_seq_length {limit}" in caplog.text
    assert max(data.train["length"]) == limit


def test_every_training_example_too_long_is_a_data_error_with_the_lengths(
    tmp_path: Path, tiny_model_dir: Path, tokenizer_and_setup: Any, prepare: Any
) -> None:
    path, rows = write_source(tmp_path, "a", 3, words=5)
    lengths = lengths_of(tokenizer_and_setup, rows)
    with pytest.raises(DataError) as caught:
        prepare(data_config(tiny_model_dir, concatenation(path), max_seq_length=min(lengths.values()) - 1))
    item = caught.value.items[0]
    assert item.location == "$.sft_args.max_seq_length"
    assert (
        f"shortest {min(lengths.values())}" in item.message
        and f"longest {max(lengths.values())}" in item.message
    )


def test_completions_only_setting_reaches_the_encoder(
    tmp_path: Path, tiny_model_dir: Path, prepare: Any
) -> None:
    path, _ = write_source(tmp_path, "a", 2)
    full = prepare(data_config(tiny_model_dir, concatenation(path)))
    masked = prepare(data_config(tiny_model_dir, concatenation(path), completions_only=True))
    assert full.train["input_ids"] == masked.train["input_ids"]
    count = lambda data: sum(label == -100 for row in data.train["labels"] for label in row)  # noqa: E731
    assert count(masked) > count(full)


# --- bad data -----------------------------------------------------------------------------------------------

GOOD_ROW = json.dumps({"messages": conversation("ok")})


@pytest.mark.parametrize(
    ("bad_row", "words"),
    [
        ('{"messages": [{"role": "user", "content": "hi"}', "not valid JSON"),
        ('[{"role": "user", "content": "hi"}]', "not an object"),
        ('{"conversation": []}', "no `messages`"),
        ('{"messages": {"role": "user", "content": "hi"}}', "not a list"),
        ('{"messages": []}', "empty list"),
        ('{"messages": [{"content": "hi"}]}', "`messages[0]` has no `role`"),
        (
            '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant"}]}',
            "`messages[1]` has no `content`",
        ),
        ('{"messages": [{"role": "user", "content": 3}]}', "`messages[0].content` is a number, not a string"),
        ('{"messages": ["hi"]}', "`messages[0]` is a string, not an object"),
    ],
)
def test_each_kind_of_bad_row_is_a_data_error_at_its_line(bad_row: str, words: str) -> None:
    raw = f"{GOOD_ROW}\n\n{bad_row}\n{GOOD_ROW}\n".encode()
    with pytest.raises(DataError) as caught:
        read_conversations(raw, name="data/train.jsonl")
    [item] = caught.value.items
    assert item.location == "data/train.jsonl:3"
    assert words in item.message


def test_extra_row_and_message_keys_are_ignored() -> None:
    row = {
        "messages": [{"role": "user", "content": "hi", "tags": ["x"]}],
        "id": "1",
        "tags": [],
        "labels": {},
        "x": 1,
    }
    assert read_conversations(json.dumps(row).encode(), name="t.jsonl") == [
        [{"role": "user", "content": "hi"}]
    ]


def test_a_json_array_file_is_read_and_its_bad_rows_are_located_by_index() -> None:
    good = {"messages": conversation("ok")}
    assert read_conversations(json.dumps([good, good]).encode(), name="d.json") == [good["messages"]] * 2
    with pytest.raises(DataError) as caught:
        read_conversations(json.dumps([good, {"messages": 3}]).encode(), name="d.json")
    assert [item.location for item in caught.value.items] == ["d.json[1]"]


def test_all_bad_rows_are_reported_up_to_a_cap(tmp_path: Path, tiny_model_dir: Path, prepare: Any) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(f"{GOOD_ROW}\n{{broken\n" for _ in range(25)))
    with pytest.raises(DataError) as caught:
        prepare(data_config(tiny_model_dir, concatenation(path)))
    items = caught.value.items
    assert [item.location for item in items[:3]] == [f"{path}:2", f"{path}:4", f"{path}:6"]
    assert len(items) == 21 and "and 5 more bad rows" in items[-1].message


def test_empty_file_is_a_data_error(tmp_path: Path, tiny_model_dir: Path, prepare: Any) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(DataError, match="no rows"):
        prepare(data_config(tiny_model_dir, concatenation(path)))


def test_missing_file_error_names_the_config_entry(
    tmp_path: Path, tiny_model_dir: Path, prepare: Any
) -> None:
    a, _ = write_source(tmp_path, "a", 2)
    missing = tmp_path / "x.jsonl"
    with pytest.raises(DataError) as caught:
        prepare(data_config(tiny_model_dir, concatenation(a, missing)))
    [item] = caught.value.items
    assert item.location == "$.data_conf.training_data.datasets[1].path"
    assert item.message == f"file not found: {missing}"


def test_fifty_thousand_rows_are_read_in_well_under_a_few_seconds() -> None:
    row = json.dumps({"messages": conversation("fast", words=30), "id": "x", "tags": ["a"]})
    raw = "\n".join([row] * 50_000).encode()
    started = time.perf_counter()
    assert len(read_conversations(raw, name="big.jsonl")) == 50_000
    assert time.perf_counter() - started < 5.0


# --- cache and workers --------------------------------------------------------------------------------------


def test_second_call_is_a_cache_hit_with_equal_data(
    tmp_path: Path, tiny_model_dir: Path, prepare: Any
) -> None:
    path, _ = write_source(tmp_path, "a", 6)
    config = data_config(tiny_model_dir, concatenation(path), {"type": "AUTO_SPLIT", "ratio": 0.5})
    first = prepare(config, cache_dir=tmp_path / "cache")
    second = prepare(config, cache_dir=tmp_path / "cache")
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert second.train.to_dict() == first.train.to_dict()
    assert second.validation.to_dict() == first.validation.to_dict()
    assert (second.dropped_train, second.train_tokens, second.source_counts) == (
        first.dropped_train,
        first.train_tokens,
        first.source_counts,
    )
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")] == []


def test_changing_max_seq_length_or_a_data_file_misses_the_cache(
    tmp_path: Path, tiny_model_dir: Path, prepare: Any
) -> None:
    path, _ = write_source(tmp_path, "a", 4)
    cache = tmp_path / "cache"
    assert not prepare(data_config(tiny_model_dir, concatenation(path)), cache_dir=cache).cache_hit
    assert not prepare(
        data_config(tiny_model_dir, concatenation(path), max_seq_length=500), cache_dir=cache
    ).cache_hit
    write_source(tmp_path, "a", 5)
    changed = prepare(data_config(tiny_model_dir, concatenation(path)), cache_dir=cache)
    assert not changed.cache_hit and len(changed.train) == 5


def test_a_damaged_cache_entry_is_ignored_and_rebuilt(
    tmp_path: Path, tiny_model_dir: Path, prepare: Any
) -> None:
    path, _ = write_source(tmp_path, "a", 4)
    config = data_config(tiny_model_dir, concatenation(path))
    cache = tmp_path / "cache"
    expected = prepare(config, cache_dir=cache).train.to_dict()
    [entry] = cache.iterdir()
    for arrow in entry.rglob("*.arrow"):
        arrow.write_bytes(b"not arrow")
    rebuilt = prepare(config, cache_dir=cache)
    assert not rebuilt.cache_hit and rebuilt.train.to_dict() == expected
    assert prepare(config, cache_dir=cache).cache_hit


def test_two_tokenising_processes_give_the_same_result_as_one(
    tmp_path: Path, tiny_model_dir: Path, data_dir: Path, prepare: Any
) -> None:
    config = data_config(
        tiny_model_dir, concatenation(data_dir / "train.jsonl"), {"type": "AUTO_SPLIT", "ratio": 0.1}
    )
    one, two = prepare(config, num_proc=1), prepare(config, num_proc=2)
    assert two.train.to_dict() == one.train.to_dict()
    assert two.validation.to_dict() == one.validation.to_dict()
    assert (len(one.train), len(one.validation)) == (360, 40)


def test_tokenizer_fingerprint_is_stable_and_follows_template_and_padding_side(tiny_model_dir: Path) -> None:
    def fingerprint(**data_conf: str) -> str:
        config = make_config(tiny_model_dir, data_conf=data_conf)
        return _prepare_cache.tokenizer_fingerprint(*build_tokenizer(config.run_conf, config.data_conf))

    default = fingerprint()
    assert fingerprint() == default, "two builds of the same tokenizer must share cache entries"
    assert fingerprint(chat_template_name="chat-ml") != default
    assert fingerprint(padding_side="left") != default


def test_prepared_columns_have_the_arrow_types_datasets_gives_python_rows(
    tiny_model_dir: Path, data_dir: Path, prepare: Any, tokenizer_and_setup: tuple[Any, Any]
) -> None:
    """The columns are built from flat arrays; cache entries and collators must see the same types and rows as
    when datasets wrote the encoder's Python rows (int32 input_ids, int64 labels and length)."""
    import datasets

    tokenizer, setup = tokenizer_and_setup
    config = data_config(tiny_model_dir, concatenation(data_dir / "train.jsonl"))
    prepared = prepare(config).train
    rows = [json.loads(line)["messages"] for line in (data_dir / "train.jsonl").read_text().splitlines()]
    completions_only = bool(config.sft_args.train_on_completions_only)
    encoded = encode_conversations(tokenizer, setup, rows, completions_only=completions_only)
    encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
    written = datasets.Dataset.from_dict(encoded)
    assert prepared.features == written.features
    assert prepared.features["input_ids"].feature.dtype == "int32"
    assert prepared.to_dict() == written.to_dict()


def test_two_workers_split_the_rows_into_two_shards_and_keep_their_order(
    tmp_path: Path, tiny_model_dir: Path, prepare: Any
) -> None:
    path, _ = write_source(tmp_path, "row", 7, words=3)
    config = data_config(tiny_model_dir, concatenation(path))
    one, two, many = (prepare(config, num_proc=count) for count in (1, 2, 16))
    assert two.train.to_dict() == one.train.to_dict() == many.train.to_dict()
    assert len(two.train) == 7
