"""The data collator: pad precomputed input_ids/labels into tensors on the tokenizer's padding side."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from ftconfig.runtime._encode import IGNORE_INDEX
from ftconfig.runtime._tokenizer import TokenizerSetup

__all__ = ["build_data_collator"]


def _collate(
    features: Sequence[dict[str, Any]], *, input_pad_id: int, left: bool, pad_to_multiple_of: int | None
) -> dict[str, torch.Tensor]:
    """Pad one batch; other columns (e.g. `length`) are ignored.

    Labels arrive precomputed (full or completions-only), so padding is the only thing masked, and a pad token
    that equals EOS or UNK never hides real tokens from the loss.
    """
    lengths = [len(feature["input_ids"]) for feature in features]
    width = max(lengths, default=0)
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    input_ids = torch.full((len(features), width), input_pad_id, dtype=torch.long)
    labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(features), width), dtype=torch.long)
    for row, (feature, length) in enumerate(zip(features, lengths, strict=True)):
        if len(feature["labels"]) != length:
            raise ValueError(f"row {row}: {len(feature['labels'])} labels for {length} input ids")
        cols = slice(width - length, width) if left else slice(0, length)
        input_ids[row, cols] = torch.as_tensor(feature["input_ids"], dtype=torch.long)
        labels[row, cols] = torch.as_tensor(feature["labels"], dtype=torch.long)
        attention_mask[row, cols] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def build_data_collator(
    tokenizer: PreTrainedTokenizerBase, setup: TokenizerSetup, *, pad_to_multiple_of: int | None = None
) -> Callable[[Sequence[dict[str, Any]]], dict[str, torch.Tensor]]:
    """A collator for features with `input_ids` and `labels` (lists of ints).

    Input-side padding uses the pad token, except with `unk-convert-to-eos`, where it uses EOS so that
    padding looks like end-of-text to the model (reference §2.7); padded labels are always -100 and the
    attention mask is 0 there. The padding side is the tokenizer's at build time. The result is a picklable
    partial, so dataloader workers can use it.
    """
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token; build it with build_tokenizer")
    convert = setup.pad_strategy == "unk-convert-to-eos" and tokenizer.pad_token_id == tokenizer.unk_token_id
    input_pad_id = tokenizer.eos_token_id if convert else tokenizer.pad_token_id
    return functools.partial(
        _collate,
        input_pad_id=int(input_pad_id),
        left=tokenizer.padding_side == "left",
        pad_to_multiple_of=pad_to_multiple_of,
    )
