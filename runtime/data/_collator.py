"""Data collators: pad precomputed input_ids/labels on the tokenizer's padding side, or lay packed examples out
so that none attends to another (packing)."""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import torch
from transformers import PreTrainedTokenizerBase

from ftconfig.runtime.data._encode import IGNORE_INDEX
from ftconfig.runtime.data._tokenizer import TokenizerSetup

__all__ = [
    "build_data_collator",
    "build_packed_collator",
    "pack_dataset",
    "pack_examples",
    "packed_layout",
]


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


def _input_pad_id(tokenizer: PreTrainedTokenizerBase, setup: TokenizerSetup) -> int:
    """The pad token, or EOS with `unk-convert-to-eos` (padding then looks like end-of-text to the model)."""
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token; build it with build_tokenizer")
    convert = setup.pad_strategy == "unk-convert-to-eos" and tokenizer.pad_token_id == tokenizer.unk_token_id
    return int(tokenizer.eos_token_id if convert else tokenizer.pad_token_id)


def build_data_collator(
    tokenizer: PreTrainedTokenizerBase, setup: TokenizerSetup, *, pad_to_multiple_of: int | None = None
) -> Callable[[Sequence[dict[str, Any]]], dict[str, torch.Tensor]]:
    """A collator for features with `input_ids` and `labels` (lists of ints).

    Input-side padding uses the pad token, except with `unk-convert-to-eos`, where it uses EOS so that
    padding looks like end-of-text to the model; padded labels are always -100 and the
    attention mask is 0 there. The padding side is the tokenizer's at build time. The result is a picklable
    partial, so dataloader workers can use it.
    """
    return functools.partial(
        _collate,
        input_pad_id=_input_pad_id(tokenizer, setup),
        left=tokenizer.padding_side == "left",
        pad_to_multiple_of=pad_to_multiple_of,
    )


# Attention implementations that isolate packed examples, and how: transformers builds a block-diagonal causal mask
# from position_ids that restart at 0 (eager, sdpa, flex: any batch shape, no attention_mask), while the flash kernels
# read example boundaries from position_ids (or cu_seq_lens) only in a batch of one row.
_ROW_ATTENTION = frozenset({"eager", "sdpa", "flex_attention"})


def packed_layout(attn_implementation: str | None) -> str | None:
    """How packed batches are laid out for an attention implementation: "rows" (one padded row per pack),
    "padding-free" (every example of the batch in one row, no padding at all), or None when the implementation
    is not known to keep packed examples apart."""
    if attn_implementation is None or attn_implementation in _ROW_ATTENTION:
        return "rows"  # None: transformers picks sdpa (or eager where sdpa is missing)
    if "flash" in attn_implementation:
        return "padding-free"
    return None


def pack_examples(lengths: np.ndarray, capacity: int) -> list[list[int]]:
    """Best-fit decreasing: example indices grouped into packs of at most `capacity` tokens.

    Longest first, each example goes into the open pack whose free room fits it most tightly, else into a new
    pack. Deterministic, and a Python loop over examples (never over tokens): a few µs per example.
    """
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    sorted_lengths = np.asarray(lengths, dtype=np.int64)[order].tolist()
    if sorted_lengths and sorted_lengths[0] > capacity:
        raise ValueError(f"an example of {sorted_lengths[0]} tokens does not fit in a pack of {capacity}")
    packs: list[list[int]] = []
    free_sizes: list[int] = []  # sorted distinct free room of the open packs
    by_free: dict[int, list[int]] = {}  # free room -> open packs with exactly that room
    for index, length in zip(order.tolist(), sorted_lengths, strict=True):
        at = bisect.bisect_left(free_sizes, length)
        if at < len(free_sizes):
            free = free_sizes[at]
            bucket = by_free[free]
            pack = bucket.pop()
            if not bucket:
                del by_free[free]
                del free_sizes[at]
        else:
            pack, free = len(packs), capacity
            packs.append([])
        packs[pack].append(index)
        free -= length
        if free > 0:
            if free not in by_free:
                bisect.insort(free_sizes, free)
                by_free[free] = []
            by_free[free].append(pack)
    return packs


def _pack_table(table: pa.Table, *, capacity: int) -> pa.Table:
    """`Dataset.map` worker over the whole dataset as one Arrow table: packs end to end, no per-token Python."""
    lengths = table.column("length").to_numpy()
    packs = pack_examples(lengths, capacity)
    order = np.fromiter(itertools.chain.from_iterable(packs), dtype=np.int64, count=len(lengths))
    taken = table.select(["input_ids", "labels"]).take(order).combine_chunks()
    pack_sizes = np.fromiter((len(pack) for pack in packs), dtype=np.int64, count=len(packs))
    example_offsets = np.concatenate([[0], np.cumsum(pack_sizes)])
    token_offsets = np.concatenate([[0], np.cumsum(lengths[order])])[example_offsets]
    large = token_offsets[-1] >= 2**31  # more tokens than 32-bit list offsets can address
    list_array, offset_type = (pa.LargeListArray, pa.int64()) if large else (pa.ListArray, pa.int32())
    columns = {}
    for name in ("input_ids", "labels"):
        values = taken.column(name).chunk(0).flatten() if len(order) else pa.array([], pa.int64())
        columns[name] = list_array.from_arrays(pa.array(token_offsets, offset_type), values)
    columns["seq_lengths"] = pa.ListArray.from_arrays(
        pa.array(example_offsets, pa.int32()), pa.array(lengths[order], pa.int64())
    )
    return pa.table(columns)


def pack_dataset(examples: datasets.Dataset, capacity: int) -> datasets.Dataset:
    """Prepared examples (`input_ids`, `labels`, `length`) packed into rows of at most `capacity` tokens.

    A row is one pack: the `input_ids` and `labels` of its examples end to end, and `seq_lengths`, the length
    of each example (the packed collator turns them into position ids that restart at 0 per example; TRL keeps
    this column for the collator). The packs are held in memory, a copy of the token columns.
    """
    return (
        examples.select_columns(["input_ids", "labels", "length"])
        .with_format("arrow")
        .map(
            _pack_table,
            batched=True,
            batch_size=None,
            fn_kwargs={"capacity": capacity},
            remove_columns=["input_ids", "labels", "length"],
            keep_in_memory=True,
            desc="Packing examples",
        )
        .with_format(None)
    )


def _collate_packed(
    features: Sequence[dict[str, Any]],
    *,
    input_pad_id: int,
    padding_free: bool,
    pad_to_multiple_of: int | None,
) -> dict[str, torch.Tensor]:
    """Lay packs out with position ids that restart at 0 for every example, and no attention mask.

    The label of each example's first token becomes -100: in a shared row the token before it is the previous
    example's last one, which must not learn to predict it (alone, that label is never a target either). So the
    trained targets are exactly those of the examples trained one by one. "rows" pads each pack to the longest
    one; the padding forms an example of its own (position ids from 0, labels -100) that nothing real sees.
    """
    ids = [np.asarray(feature["input_ids"], dtype=np.int64) for feature in features]
    labels = [np.asarray(feature["labels"], dtype=np.int64) for feature in features]
    seq_lengths = [np.asarray(feature["seq_lengths"], dtype=np.int64) for feature in features]
    for row, (row_ids, row_labels, row_lengths) in enumerate(zip(ids, labels, seq_lengths, strict=True)):
        if len(row_labels) != len(row_ids) or int(row_lengths.sum()) != len(row_ids):
            raise ValueError(
                f"pack {row}: {len(row_ids)} input ids, {len(row_labels)} labels, {int(row_lengths.sum())} "
                "tokens in seq_lengths"
            )
    if padding_free:
        ids, labels, seq_lengths = (
            [np.concatenate(ids)],
            [np.concatenate(labels)],
            [np.concatenate(seq_lengths)],
        )
    width = max((len(row) for row in ids), default=0)
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    input_ids = np.full((len(ids), width), input_pad_id, dtype=np.int64)
    label_rows = np.full((len(ids), width), IGNORE_INDEX, dtype=np.int64)
    position_ids = np.empty((len(ids), width), dtype=np.int64)
    for row, (row_ids, row_labels, row_lengths) in enumerate(zip(ids, labels, seq_lengths, strict=True)):
        used = len(row_ids)
        if width > used:  # the padding as one more example, so that the position ids restart there too
            row_lengths = np.append(row_lengths, width - used)
        starts = np.cumsum(row_lengths) - row_lengths
        position_ids[row] = np.arange(width) - np.repeat(starts, row_lengths)
        input_ids[row, :used] = row_ids
        label_rows[row, :used] = row_labels
        label_rows[row, starts[starts < used]] = IGNORE_INDEX
    batch: dict[str, Any] = {
        "input_ids": torch.from_numpy(input_ids),
        "labels": torch.from_numpy(label_rows),
        "position_ids": torch.from_numpy(position_ids),
    }
    if padding_free:
        # What the flash kernels would otherwise derive from position_ids, with a device sync in every layer.
        starts = np.flatnonzero(position_ids[0] == 0)
        bounds = torch.from_numpy(np.append(starts, width).astype(np.int32))
        longest = int(np.diff(bounds.numpy()).max(initial=0))
        batch.update(cu_seq_lens_q=bounds, cu_seq_lens_k=bounds, max_length_q=longest, max_length_k=longest)
    return batch


def build_packed_collator(
    tokenizer: PreTrainedTokenizerBase,
    setup: TokenizerSetup,
    *,
    layout: str,
    pad_to_multiple_of: int | None = None,
) -> Callable[[Sequence[dict[str, Any]]], dict[str, Any]]:
    """A collator for `pack_dataset` rows; `layout` is what `packed_layout` chose for the model's attention.

    The input ids of padding ("rows" only) are never seen by a real token; the pad strategy's id is used so
    that the batch looks like every other batch.
    """
    if layout not in ("rows", "padding-free"):
        raise ValueError(f"unknown packed layout {layout!r}")
    return functools.partial(
        _collate_packed,
        input_pad_id=_input_pad_id(tokenizer, setup),
        padding_free=layout == "padding-free",
        pad_to_multiple_of=pad_to_multiple_of,
    )
