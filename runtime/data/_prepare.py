"""Prepare training and validation data: read, mix, tokenise each source example once, filter, split."""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets
import msgspec
import numpy as np
import pyarrow as pa

from ftconfig.generated.config import (
    AutoSplitDataInput,
    ConcatenationDataInput,
    FinetuningConfig,
    NoneDataInput,
    WeightedMixDataInput,
)
from ftconfig.runtime.config._errors import ConfigError, DataError, ErrorItem
from ftconfig.runtime.data._cache import (
    cache_key,
    load_prepared,
    store_prepared,
    tokenizer_fingerprint,
)
from ftconfig.runtime.data._encode import ConversationEncoder, EncodedBatch, conversation_encoder
from ftconfig.runtime.data._records import (
    PLACEHOLDER,
    Conversation,
    certainly_too_long,
    check_assistant_turns,
    longest_token_chars,
    read_conversations,
    read_file_bytes,
)

if TYPE_CHECKING:
    from ftconfig.runtime.data._tokenizer import TokenizerSetup

__all__ = ["PreparedData", "RowPlan", "load_cached", "plan_rows", "prepare_data", "store_cached"]

logger = logging.getLogger(__name__)

_COLUMNS = ["input_ids", "labels", "length"]


@dataclass(frozen=True)
class PreparedData:
    """Tokenised datasets (columns `input_ids`, `labels`, `length`) and the counts a dry run reports."""

    train: datasets.Dataset
    validation: datasets.Dataset | None
    dropped_train: int
    dropped_validation: int
    train_tokens: int
    cache_hit: bool
    source_counts: dict[str, int]  # training examples drawn from each data file (as written in the config)


@dataclass(frozen=True)
class _Entry:
    """One `datasets[i]` item of the config: the file it names, where it is in the config, its weight."""

    path: str
    location: str
    weight: float = 1.0


@dataclass
class _Sources:
    """Each distinct data file once, conversations end to end: a global id is (file offset + row)."""

    names: list[str]
    offsets: np.ndarray
    sizes: np.ndarray
    conversations: list[Any]  # Conversation rows for SFT, PreferenceRow for DPO

    def ids(self, path: str) -> np.ndarray:
        index = self.names.index(path)
        return np.arange(self.offsets[index], self.offsets[index] + self.sizes[index], dtype=np.int64)


def prepare_data(
    config: FinetuningConfig,
    tokenizer: Any,
    setup: TokenizerSetup,
    *,
    num_proc: int = 1,
    cache_dir: Path | None,
) -> PreparedData:
    """Build the training and validation datasets the config describes, or load them from the cache.

    Rank logic stays with the caller: run this on the main process first, then on the others (they hit the
    cache).
    `cache_dir=None` disables caching.
    """
    data_conf, sft_args = config.data_conf, config.sft_args
    training = _training_entries(data_conf.training_data)
    validation = _validation_entries(data_conf.validation_data)
    raw = _read_files([*training, *validation])
    key = cache_key(
        files=[(path, hashlib.sha256(content).hexdigest()) for path, content in raw.items()],
        data_conf=data_conf,
        sft_args=msgspec.structs.replace(sft_args, packing=False),  # packing happens after preparation
        tokenizer_digest=tokenizer_fingerprint(tokenizer, setup),
    )
    if cache_dir is not None and (cached := load_cached(cache_dir, key)) is not None:
        return cached
    prepared = _prepare(config, tokenizer, setup, training, validation, raw, num_proc=num_proc, key=key)
    if cache_dir is not None:
        store_cached(cache_dir, key, prepared)
    return prepared


def load_cached(cache_dir: Path, key: str, columns: list[str] = _COLUMNS) -> PreparedData | None:
    """The prepared data stored under `key`, or None when the cache has no intact entry for it."""
    stored = load_prepared(cache_dir, key, columns=columns)
    if stored is None:
        return None
    splits, meta = stored
    logger.info("prepared data loaded from the cache %s", cache_dir / key)
    return PreparedData(
        train=splits["train"],
        validation=splits.get("validation"),
        dropped_train=meta["dropped_train"],
        dropped_validation=meta["dropped_validation"],
        train_tokens=meta["train_tokens"],
        cache_hit=True,
        source_counts=meta["source_counts"],
    )


def store_cached(cache_dir: Path, key: str, prepared: PreparedData) -> None:
    """Store prepared data under `key` (atomically: a reader sees the whole entry or none)."""
    splits = {"train": prepared.train}
    if prepared.validation is not None:
        splits["validation"] = prepared.validation
    meta = {
        "dropped_train": prepared.dropped_train,
        "dropped_validation": prepared.dropped_validation,
        "train_tokens": prepared.train_tokens,
        "source_counts": prepared.source_counts,
    }
    store_prepared(cache_dir, key, splits, meta)
    logger.info("prepared data tokenised and cached in %s", cache_dir / key)


def _training_entries(training_data: ConcatenationDataInput | WeightedMixDataInput) -> list[_Entry]:
    """The training files in config order; weight-0 files of a weighted mix are skipped (never read)."""
    where = "$.data_conf.training_data.datasets"
    if isinstance(training_data, ConcatenationDataInput):
        return [_Entry(item.path, f"{where}[{i}].path") for i, item in enumerate(training_data.datasets)]
    entries = [
        _Entry(item.path, f"{where}[{i}].path", float(item.sampling_weight))
        for i, item in enumerate(training_data.datasets)
        if item.sampling_weight != 0.0
    ]
    if not entries:
        raise ConfigError(
            ErrorItem(
                where,
                "every dataset has sampling_weight 0, so nothing would be sampled",
                "Give at least one dataset a positive sampling_weight",
            )
        )
    return entries


def _validation_entries(validation_data: Any) -> list[_Entry]:
    if isinstance(validation_data, ConcatenationDataInput):
        where = "$.data_conf.validation_data.datasets"
        return [_Entry(item.path, f"{where}[{i}].path") for i, item in enumerate(validation_data.datasets)]
    return []


def _read_files(entries: list[_Entry]) -> dict[str, bytes]:
    """The bytes of each distinct file (in first-use order); every missing file is reported at once."""
    raw: dict[str, bytes] = {}
    problems: list[ErrorItem] = []
    for entry in entries:
        if entry.path in raw:
            continue
        try:
            raw[entry.path] = read_file_bytes(Path(entry.path), location=entry.location, shown=entry.path)
        except DataError as exc:
            problems += exc.items
    if problems:
        raise DataError(problems)
    return raw


def _parse_files(raw: dict[str, bytes], reader: Callable[..., list[Any]] = read_conversations) -> _Sources:
    """Decode every file with `reader`, collecting the bad rows of all files into one DataError."""
    conversations: list[Any] = []
    sizes: list[int] = []
    problems: list[ErrorItem] = []
    for path, content in raw.items():
        try:
            rows = reader(content, name=path)
            if reader is read_conversations:  # preference rows always end in an assistant answer
                check_assistant_turns(rows, name=path)
        except DataError as exc:
            problems += exc.items
            rows = []
        conversations += rows
        sizes.append(len(rows))
    if problems:
        raise DataError(problems)
    size_array = np.asarray(sizes, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(size_array)[:-1]]).astype(np.int64)
    return _Sources(list(raw), offsets, size_array, conversations)


def _prepare(
    config: FinetuningConfig,
    tokenizer: Any,
    setup: TokenizerSetup,
    training: list[_Entry],
    validation: list[_Entry],
    raw: dict[str, bytes],
    *,
    num_proc: int,
    key: str,
) -> PreparedData:
    data_conf, max_length = config.data_conf, int(config.sft_args.max_seq_length)
    sources = _parse_files(raw)
    truncate = config.sft_args.length_handling == "truncate"
    # Rows that cannot fit are dropped before they are rendered (flat memory whatever the row size); truncation
    # keeps every row, so there the rows are rendered whole.
    overlong = certainly_too_long(
        sources.conversations,
        max_seq_length=max_length if not truncate else 2**62,
        token_chars=longest_token_chars(tokenizer),
    )
    conversations = [
        PLACEHOLDER if skip else messages
        for messages, skip in zip(sources.conversations, overlong, strict=True)
    ]
    encoded = _tokenise(
        conversations,
        tokenizer,
        setup,
        completions_only=bool(config.sft_args.train_on_completions_only),
        num_proc=num_proc,
        fingerprint=key,
    )
    if truncate:
        encoded = _truncate(encoded, max_length, fingerprint=key)
    lengths = _column(encoded, "length")
    lengths[overlong] = max_length + 1  # dropped by the length filter, counted like any too-long example
    plan = plan_rows(data_conf, training, validation, sources, lengths, max_length=max_length)
    return PreparedData(
        train=_select(encoded, plan.train_ids),
        validation=None if plan.validation_ids is None else _select(encoded, plan.validation_ids),
        dropped_train=plan.dropped_train,
        dropped_validation=plan.dropped_validation,
        train_tokens=int(lengths[plan.train_ids].sum()),
        cache_hit=False,
        source_counts=plan.source_counts,
    )


@dataclass(frozen=True)
class RowPlan:
    """Which source rows make up each split (in order), and what the length filter dropped."""

    train_ids: np.ndarray
    validation_ids: np.ndarray | None
    dropped_train: int
    dropped_validation: int
    source_counts: dict[str, int]


def plan_rows(
    data_conf: Any,
    training: list[_Entry],
    validation: list[_Entry],
    sources: _Sources,
    lengths: np.ndarray,
    *,
    max_length: int | None,
) -> RowPlan:
    """Mix (concatenation or weighted), length-filter (unless max_length is None) and split the source rows.

    Only indices move: SFT and DPO rows go through the same steps with the same semantics.
    """
    training_data = data_conf.training_data
    if isinstance(training_data, WeightedMixDataInput):
        train_ids = _weighted_mix(training, sources, seed=int(training_data.seed))
    else:
        train_ids = np.concatenate([sources.ids(entry.path) for entry in training])
    dropped_train = 0
    if max_length is not None:
        train_ids, dropped_train = _length_filter(train_ids, lengths, max_length, what="training")

    validation_ids: np.ndarray | None = None
    dropped_validation = 0
    validation_data = data_conf.validation_data
    if isinstance(validation_data, AutoSplitDataInput):
        train_ids, validation_ids = _auto_split(
            train_ids, ratio=float(validation_data.ratio), seed=int(validation_data.seed)
        )
    elif isinstance(validation_data, ConcatenationDataInput):
        validation_ids = np.concatenate([sources.ids(entry.path) for entry in validation])
        if max_length is not None:
            validation_ids, dropped_validation = _length_filter(
                validation_ids, lengths, max_length, what="validation"
            )
    else:
        assert isinstance(validation_data, NoneDataInput)
    if validation_ids is not None:
        # Longest first: batches of similar length, and an out-of-memory shows up at the first evaluation.
        validation_ids = validation_ids[np.argsort(-lengths[validation_ids], kind="stable")]

    file_of = np.searchsorted(sources.offsets, train_ids, side="right") - 1
    counts = np.bincount(file_of, minlength=len(sources.names))
    used = {entry.path for entry in training}
    return RowPlan(
        train_ids=train_ids,
        validation_ids=validation_ids,
        dropped_train=dropped_train,
        dropped_validation=dropped_validation,
        source_counts={
            name: int(count) for name, count in zip(sources.names, counts, strict=True) if name in used
        },
    )


# Conversations per encoder call: large enough that the per-call costs vanish, small enough for the Encodings.
_BATCH = 1000
# Values per Arrow list chunk: list offsets are 32-bit.
_MAX_CHUNK_VALUES = 2**31 - 1
# The conversations a forked worker encodes (inherited, never pickled); set only around the pool's lifetime.
_WORKER_INPUT: tuple[ConversationEncoder, list[Conversation]] | None = None


def _encode_range(encoder: ConversationEncoder, conversations: list[Conversation]) -> EncodedBatch:
    """Encode conversations in batches of _BATCH and join the flat arrays."""
    parts = [
        encoder.encode(conversations[i : i + _BATCH])  # type: ignore[arg-type]  # a ChatMessage TypedDict is the plain dict the encoder takes
        for i in range(0, len(conversations), _BATCH)
    ]
    if not parts:
        return encoder.encode([])
    lengths = np.concatenate([part.lengths for part in parts])
    bounds = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=bounds[1:])
    return EncodedBatch(
        np.concatenate([part.input_ids for part in parts]),
        np.concatenate([part.labels for part in parts]),
        bounds,
    )


def _encode_shard(shard: tuple[int, int]) -> EncodedBatch:
    """Pool worker: encode conversations[start:stop] of the inherited input."""
    assert _WORKER_INPUT is not None
    encoder, conversations = _WORKER_INPUT
    return _encode_range(encoder, conversations[shard[0] : shard[1]])


def _encode_parallel(
    encoder: ConversationEncoder, conversations: list[Conversation], workers: int
) -> EncodedBatch:
    """Contiguous shards in forked worker processes (one per worker), joined in order."""
    global _WORKER_INPUT
    edges = [int(edge) for edge in np.linspace(0, len(conversations), workers + 1)]
    shards = list(itertools.pairwise(edges))
    _WORKER_INPUT = (encoder, conversations)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_encode_shard, shards, chunksize=1)
    finally:
        _WORKER_INPUT = None
    lengths = np.concatenate([part.lengths for part in parts])
    bounds = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=bounds[1:])
    return EncodedBatch(
        np.concatenate([part.input_ids for part in parts]),
        np.concatenate([part.labels for part in parts]),
        bounds,
    )


def _cut_batch(batch: dict[str, list[Any]], max_length: int) -> dict[str, list[Any]]:
    """`Dataset.map` worker: keep the first max_length tokens and their labels (the mask stays as computed)."""
    return {
        "input_ids": [ids[:max_length] for ids in batch["input_ids"]],
        "labels": [labels[:max_length] for labels in batch["labels"]],
        "length": [min(length, max_length) for length in batch["length"]],
    }


def _truncate(encoded: datasets.Dataset, max_length: int, *, fingerprint: str) -> datasets.Dataset:
    """sft_args.length_handling truncate: examples longer than max_seq_length are cut on the right, not dropped."""
    longer = int((_column(encoded, "length") > max_length).sum())
    if not longer:
        return encoded
    logger.warning(
        "truncated %d of %d distinct examples longer than max_seq_length %d to that length",
        longer,
        len(encoded),
        max_length,
    )
    return encoded.map(
        _cut_batch,
        batched=True,
        fn_kwargs={"max_length": max_length},
        new_fingerprint=f"{fingerprint}-truncated",
        desc="Truncating to max_seq_length",
    )


def _tokenise(
    conversations: list[Conversation],
    tokenizer: Any,
    setup: TokenizerSetup,
    *,
    completions_only: bool,
    num_proc: int,
    fingerprint: str,
) -> datasets.Dataset:
    """Tokenise every distinct source example once; mixes and splits then only move indices around.

    The flat id and label arrays become Arrow list columns without a Python row in between; `num_proc` > 1
    encodes contiguous shards in forked processes (on Linux and macOS; one process elsewhere).
    """
    del setup  # the installed template and tokens live on the tokenizer
    encoder = conversation_encoder(tokenizer, completions_only=completions_only)
    workers = max(1, min(num_proc, len(conversations)))
    logger.info("tokenising %d conversations (%d worker%s)", len(conversations), workers, "s"[: workers > 1])
    if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
        encoded = _encode_parallel(encoder, conversations, workers)
    else:
        encoded = _encode_range(encoder, conversations)
    table = pa.table(
        {
            # int32 ids, int64 labels: the types datasets gives these columns when it writes Python rows.
            "input_ids": _list_column(encoded.bounds, encoded.input_ids.astype(np.int32), pa.int32()),
            "labels": _list_column(encoded.bounds, encoded.labels, pa.int64()),
            "length": pa.array(encoded.lengths),
        }
    )
    return datasets.Dataset(table, fingerprint=fingerprint)


def _list_column(bounds: np.ndarray, values: np.ndarray, value_type: pa.DataType) -> pa.ChunkedArray:
    """Rows `values[bounds[i]:bounds[i + 1]]` as an Arrow list column, in chunks whose 32-bit offsets cannot
    overflow."""
    chunks = []
    first = 0
    while first < len(bounds) - 1:
        # The last row that still starts a chunk below 2**31 - 1 values from this chunk's first value.
        last = int(np.searchsorted(bounds, bounds[first] + _MAX_CHUNK_VALUES, side="right")) - 1
        last = min(max(last, first + 1), len(bounds) - 1)
        offsets = (bounds[first : last + 1] - bounds[first]).astype(np.int32)
        chunks.append(
            pa.ListArray.from_arrays(pa.array(offsets), pa.array(values[bounds[first] : bounds[last]]))
        )
        first = last
    return pa.chunked_array(chunks, type=pa.list_(value_type))


def _weighted_mix(entries: list[_Entry], sources: _Sources, *, seed: int) -> np.ndarray:
    """Interleave the source ids with `datasets.interleave_datasets` (all exhausted, seeded).

    Every weight exactly 1.0 means round robin (no probabilities); otherwise the weights are normalised.
    """
    weights = [entry.weight for entry in entries]
    probabilities = None if all(w == 1.0 for w in weights) else [w / sum(weights) for w in weights]
    parts = [datasets.Dataset.from_dict({"id": sources.ids(entry.path)}) for entry in entries]
    mixed = datasets.interleave_datasets(
        parts, probabilities=probabilities, seed=seed, stopping_strategy="all_exhausted"
    )
    return _column(mixed, "id")


def _length_filter(
    ids: np.ndarray, lengths: np.ndarray, max_length: int, *, what: str
) -> tuple[np.ndarray, int]:
    """Keep examples with length <= max_seq_length (special tokens counted); all dropped is a DataError."""
    keep = lengths[ids] <= max_length
    dropped = int(ids.size - keep.sum())
    if dropped == ids.size:
        shortest, longest = int(lengths[ids].min()), int(lengths[ids].max())
        raise DataError(
            ErrorItem(
                "$.sft_args.max_seq_length",
                f"all {ids.size} {what} examples are longer than max_seq_length {max_length} "
                f"(shortest {shortest} tokens, longest {longest})",
                f"Raise sft_args.max_seq_length to at least {shortest}, or shorten the conversations",
            )
        )
    if dropped:
        logger.warning(
            "dropped %d of %d %s examples longer than max_seq_length %d", dropped, ids.size, what, max_length
        )
    return ids[keep], dropped


def _auto_split(train_ids: np.ndarray, *, ratio: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split the distinct source examples, so that a duplicated (oversampled) example stays on one side.

    Validation = ceil(ratio x distinct) sources, chosen like `datasets.train_test_split` (a numpy
    default_rng(seed) permutation); training = the mixed rows whose source is not in validation, in mix order.
    """
    _, first = np.unique(train_ids, return_index=True)
    distinct = train_ids[np.sort(first)]
    # The ratio as written (0.7 is 7/10), so that float rounding never adds an example: ceil(0.7 * 10) == 7.
    size = math.ceil(Fraction(repr(ratio)) * distinct.size)
    if size >= distinct.size:
        raise DataError(
            ErrorItem(
                "$.data_conf.validation_data.ratio",
                f"an auto split with ratio {ratio} of {distinct.size} distinct training examples leaves no "
                "training example",
                "Lower the ratio or add training data",
            )
        )
    permutation = np.random.default_rng(seed).permutation(distinct.size)
    validation_ids = distinct[permutation[:size]]
    return train_ids[~np.isin(train_ids, validation_ids)], validation_ids


def _column(dataset: datasets.Dataset, name: str) -> np.ndarray:
    """One integer column as an array, read as a single slice (iterating a Column goes row by row: slow)."""
    return np.asarray(dataset.with_format("numpy", columns=[name])[:][name], dtype=np.int64)


def _select(encoded: datasets.Dataset, ids: np.ndarray, columns: list[str] = _COLUMNS) -> datasets.Dataset:
    """Rows by source id; an indices mapping (no copy), which `save_to_disk` flattens when caching."""
    return encoded.select(ids).select_columns(columns)
