"""The data collator pads precomputed ids and labels on the tokenizer's side, for every pad strategy."""

from __future__ import annotations

import pickle

import pytest
import torch

from ftconfig.runtime.data._collator import build_data_collator
from ftconfig.runtime.data._encode import IGNORE_INDEX, encode_conversations
from ftconfig.runtime.data._tokenizer import build_tokenizer
from tests.helpers import make_config

EOS, BOS, UNK = 2, 1, 0  # ids in the tiny tokenizer


def build(model_dir, **data_conf):
    config = make_config(model_dir, data_conf=data_conf)
    return build_tokenizer(config.run_conf, config.data_conf)


def features(*rows, masked_prefix=0):
    """Features as datasets yields them (with an extra column); labels mask the first `masked_prefix` ids."""
    return [
        {"input_ids": row, "labels": [IGNORE_INDEX] * masked_prefix + row[masked_prefix:], "length": len(row)}
        for row in rows
    ]


def test_right_padding_pads_after_the_tokens(tiny_model_dir):
    tokenizer, setup = build(tiny_model_dir, padding_side="right")
    batch = build_data_collator(tokenizer, setup)(features([BOS, 5, 6, EOS], [BOS, 7, EOS]))
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].tolist() == [[BOS, 5, 6, EOS], [BOS, 7, EOS, BOS]]  # bos-repurpose: pad = BOS
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["labels"].tolist() == [[BOS, 5, 6, EOS], [BOS, 7, EOS, IGNORE_INDEX]]
    assert all(tensor.dtype == torch.long for tensor in batch.values())


def test_left_padding_pads_before_the_tokens(tiny_model_dir):
    tokenizer, setup = build(tiny_model_dir, padding_side="left", missing_pad_token_strategy="unk-repurpose")
    batch = build_data_collator(tokenizer, setup)(features([BOS, 5, 6, EOS], [BOS, 7, EOS]))
    assert batch["input_ids"].tolist() == [[BOS, 5, 6, EOS], [UNK, BOS, 7, EOS]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [0, 1, 1, 1]]
    assert batch["labels"].tolist() == [[BOS, 5, 6, EOS], [IGNORE_INDEX, BOS, 7, EOS]]


def test_unk_convert_to_eos_shows_padding_as_eos_and_ignores_it_in_the_loss(tiny_model_dir):
    """Inputs [2,2,3,EOS,UNK] -> inputs [2,2,3,EOS,EOS], labels [2,2,3,EOS,-100]."""
    tokenizer, setup = build(tiny_model_dir, missing_pad_token_strategy="unk-convert-to-eos")
    batch = build_data_collator(tokenizer, setup)(features([2, 2, 3, EOS], [2, 2, 3, 4, EOS]))
    assert batch["input_ids"][0].tolist() == [2, 2, 3, EOS, EOS]
    assert batch["labels"][0].tolist() == [2, 2, 3, EOS, IGNORE_INDEX]
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 1, 0]
    assert tokenizer.pad_token_id == UNK  # the tokenizer keeps pad = UNK, as documented


def test_unk_convert_to_eos_keeps_a_real_unk_token_in_the_text(tiny_model_dir):
    tokenizer, setup = build(tiny_model_dir, missing_pad_token_strategy="unk-convert-to-eos")
    batch = build_data_collator(tokenizer, setup)(features([BOS, UNK, EOS]))
    assert batch["input_ids"].tolist() == [[BOS, UNK, EOS]]


def test_eos_repurpose_still_trains_on_eos(tiny_model_dir):
    """Labels come with the features, not from pad ids: with pad = EOS, deriving them would hide every EOS."""
    tokenizer, setup = build(tiny_model_dir, missing_pad_token_strategy="eos-repurpose")
    batch = build_data_collator(tokenizer, setup)(features([BOS, 5, EOS], [BOS, EOS]))
    assert batch["labels"].tolist() == [[BOS, 5, EOS], [BOS, EOS, IGNORE_INDEX]]


@pytest.mark.parametrize("strategy", ["bos-repurpose", "unk-convert-to-eos"])
def test_completions_only_labels_pass_through_with_padding_masked(tiny_model_dir, strategy):
    tokenizer, setup = build(
        tiny_model_dir, chat_template_name="chat-ml", missing_pad_token_strategy=strategy
    )
    conversations = [
        [{"role": "user", "content": "What is 2 plus 2?"}, {"role": "assistant", "content": "4."}],
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
    ]
    encoded = encode_conversations(tokenizer, setup, conversations, completions_only=True)
    rows = [
        {"input_ids": ids, "labels": labels}
        for ids, labels in zip(encoded["input_ids"], encoded["labels"], strict=True)
    ]
    batch = build_data_collator(tokenizer, setup)(rows)
    short = len(rows[1]["input_ids"])
    assert batch["labels"][1, :short].tolist() == rows[1]["labels"]
    assert set(batch["labels"][1, short:].tolist()) == {IGNORE_INDEX}
    expected_pad = EOS if strategy == "unk-convert-to-eos" else BOS
    assert set(batch["input_ids"][1, short:].tolist()) == {expected_pad}


def test_pad_to_multiple_of_rounds_the_width_up(tiny_model_dir):
    tokenizer, setup = build(tiny_model_dir)
    collate = build_data_collator(tokenizer, setup, pad_to_multiple_of=8)
    assert collate(features([BOS, 5, 6, EOS, 7, 8, 9, 10, 11]))["input_ids"].shape == (1, 16)
    assert collate(features([BOS, EOS]))["labels"].tolist() == [[BOS, EOS] + [IGNORE_INDEX] * 6]


def test_mismatched_labels_are_refused(tiny_model_dir):
    tokenizer, setup = build(tiny_model_dir)
    with pytest.raises(ValueError, match="row 0: 2 labels for 3 input ids"):
        build_data_collator(tokenizer, setup)([{"input_ids": [BOS, 5, EOS], "labels": [BOS, 5]}])


def test_collator_pickles_for_dataloader_workers(tiny_model_dir):
    tokenizer, setup = build(tiny_model_dir, padding_side="left")
    collate = build_data_collator(tokenizer, setup)
    rows = features([BOS, 5, 6, EOS], [BOS, 7, EOS], masked_prefix=2)
    copied = pickle.loads(pickle.dumps(collate))
    assert all(
        torch.equal(copied(rows)[key], collate(rows)[key])
        for key in ("input_ids", "attention_mask", "labels")
    )
