"""Preference rows for DPO: read and check them, render prompt/chosen/rejected, tokenise (batched), prepare.

The mixing, splitting and caching are the SFT steps (`_prepare.plan_rows`, `_cache`): only the row format and
the tokenisation differ. TRL's DPOTrainer gets the finished `prompt_ids`/`chosen_ids`/`rejected_ids` columns and
does no preparation of its own.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import datasets
import msgspec
import numpy as np

from ftconfig.runtime.config._errors import ConfigError, DataError, ErrorItem
from ftconfig.runtime.data._cache import cache_key, tokenizer_fingerprint
from ftconfig.runtime.data._encode import render_conversations
from ftconfig.runtime.data._prepare import (
    PreparedData,
    _column,
    _parse_files,
    _read_files,
    _select,
    _training_entries,
    _validation_entries,
    load_cached,
    plan_rows,
    store_cached,
)
from ftconfig.runtime.data._records import ChatMessage, RowProblem, read_rows

if TYPE_CHECKING:
    from ftconfig.generated.config import DPOFinetuningConfig
    from ftconfig.runtime.data._tokenizer import TokenizerSetup

__all__ = [
    "PREFERENCE_COLUMNS",
    "PreferenceRow",
    "encode_preferences",
    "prepare_preferences",
    "read_preferences",
    "render_preference",
]

logger = logging.getLogger(__name__)

PREFERENCE_COLUMNS = ["prompt_ids", "chosen_ids", "rejected_ids", "length"]
MAX_LENGTH_LOCATION = "$.training_args.max_length"
_ROW_SHAPE = (
    'each row is {"prompt_messages": [...], "chosen_messages": [...], "rejected_messages": [...]} with '
    'messages {"role": "...", "content": "..."}'
)
_Messages = Annotated[list[ChatMessage], msgspec.Meta(min_length=1)]


class PreferenceRow(msgspec.Struct):
    """One preference row: a prompt conversation, the preferred answer and the rejected one.

    `dataset`, `id`, `tags` and `labels` are optional bookkeeping; other keys are ignored, as for chat rows.
    """

    prompt_messages: _Messages
    chosen_messages: _Messages
    rejected_messages: _Messages
    dataset: str | None = None
    id: str | int | None = None
    tags: list[str] = []
    labels: dict[str, Any] = {}


_ROW_DECODER = msgspec.json.Decoder(PreferenceRow)


def _decode_row(text: bytes) -> PreferenceRow:
    row = _ROW_DECODER.decode(text)
    for name in ("chosen_messages", "rejected_messages"):
        last = getattr(row, name)[-1]["role"]
        if last != "assistant":
            raise RowProblem(
                f"the last message of `{name}` is from {last!r}, not from the assistant; {name} is the answer "
                "the model learns to prefer or avoid, so it ends with an assistant message"
            )
    return row


def read_preferences(raw: bytes, *, name: str) -> list[PreferenceRow]:
    """Decode and check every preference row of one file; one DataError lists all bad rows (`name:line`)."""
    return read_rows(raw, name=name, decode=_decode_row, shape=_ROW_SHAPE)


Messages = list[ChatMessage]


def render_preference(
    tokenizer: Any, prompts: list[Messages], chosen: list[Messages], rejected: list[Messages]
) -> tuple[list[str], list[str], list[str]]:
    """(prompt, chosen, rejected) texts: the template rendering of the prompt, and of prompt + answer with the
    prompt's rendering cut off the front (no generation prompt, so the assistant header starts the answer).

    A template that renders the prompt differently once an answer follows cannot be split this way: ConfigError.
    """
    count = len(prompts)
    conversations = [*prompts]
    conversations += [prompt + answer for prompt, answer in zip(prompts, chosen, strict=True)]
    conversations += [prompt + answer for prompt, answer in zip(prompts, rejected, strict=True)]
    texts, _ = render_conversations(tokenizer, conversations)  # type: ignore[arg-type]  # a ChatMessage TypedDict is the plain dict the encoder takes
    prompt_texts = texts[:count]
    answers: list[list[str]] = [[], []]
    for side, full_texts in enumerate((texts[count : 2 * count], texts[2 * count :])):
        for prompt, full in zip(prompt_texts, full_texts, strict=True):
            if not full.startswith(prompt):
                raise ConfigError(
                    ErrorItem(
                        "$.data_conf.chat_template_name",
                        "the chat template renders a prompt differently once an answer follows it, so the "
                        "answer cannot be cut from the prompt's rendering",
                        "Use a template whose rendering of the first messages does not depend on later ones "
                        "(the named templates all qualify)",
                    )
                )
            answers[side].append(full[len(prompt) :])
    return prompt_texts, answers[0], answers[1]


def _prompt_token_counts(offsets: list[list[tuple[int, int]]], boundaries: list[int]) -> np.ndarray:
    """Per row, how many leading tokens start before the prompt's end (all rows at once).

    Zero-width tokens after the first (an EOS the tokenizer appends, offsets (0, 0)) never count as prompt.
    """
    counts = np.fromiter((len(row) for row in offsets), dtype=np.int64, count=len(offsets))
    flat = np.asarray(list(itertools.chain.from_iterable(offsets)), dtype=np.int64).reshape(-1, 2)
    row_of = np.repeat(np.arange(len(offsets)), counts)
    position = np.arange(len(flat)) - np.repeat(np.cumsum(counts) - counts, counts)
    zero_width = flat[:, 0] == flat[:, 1]
    in_prompt = (flat[:, 0] < np.repeat(np.asarray(boundaries, dtype=np.int64), counts)) & ~(
        zero_width & (position > 0)
    )
    return np.bincount(row_of, weights=in_prompt, minlength=len(offsets)).astype(np.int64)


def encode_preferences(
    tokenizer: Any, prompts: list[Messages], chosen: list[Messages], rejected: list[Messages]
) -> dict[str, list[Any]]:
    """Token ids of prompt, chosen and rejected for a batch (one tokenizer call for all rows).

    prompt + chosen and prompt + rejected are tokenised whole, with the tokenizer's own special tokens (BOS
    first, EOS last, as for SFT), and split where the prompt's text ends, so the ids TRL concatenates are exactly
    the tokenisation of the full text.
    """
    if not prompts:
        return {name: [] for name in [*PREFERENCE_COLUMNS, "prompt_length"]}
    prompt_texts, chosen_texts, rejected_texts = render_preference(tokenizer, prompts, chosen, rejected)
    full = [p + c for p, c in zip(prompt_texts, chosen_texts, strict=True)] + [
        p + r for p, r in zip(prompt_texts, rejected_texts, strict=True)
    ]
    encoded = tokenizer(full, return_offsets_mapping=True, return_attention_mask=False)
    ids: list[list[int]] = encoded["input_ids"]
    boundaries = [len(prompt) for prompt in prompt_texts] * 2
    split = _prompt_token_counts(encoded["offset_mapping"], boundaries).tolist()
    count = len(prompts)
    prompt_ids = [ids[i][: split[i]] for i in range(count)]
    chosen_ids = [ids[i][split[i] :] for i in range(count)]
    rejected_ids = [ids[count + i][split[count + i] :] for i in range(count)]
    return {
        "prompt_ids": prompt_ids,
        "chosen_ids": chosen_ids,
        "rejected_ids": rejected_ids,
        "length": [
            len(p) + len(c) + len(r) for p, c, r in zip(prompt_ids, chosen_ids, rejected_ids, strict=True)
        ],
        "prompt_length": [len(p) for p in prompt_ids],
    }


def _encode_batch(batch: dict[str, list[Any]], tokenizer: Any) -> dict[str, list[Any]]:
    """`Dataset.map` worker (top level, so it pickles for num_proc > 1)."""
    return encode_preferences(tokenizer, batch["prompt"], batch["chosen"], batch["rejected"])


def _tokenise(
    rows: list[PreferenceRow], tokenizer: Any, *, num_proc: int, fingerprint: str
) -> datasets.Dataset:
    """Tokenise every distinct source row once; mixes and splits then only move indices around."""
    table = datasets.Dataset.from_dict(
        {
            "prompt": [row.prompt_messages for row in rows],
            "chosen": [row.chosen_messages for row in rows],
            "rejected": [row.rejected_messages for row in rows],
        }
    )
    workers = max(1, min(num_proc, len(table)))
    return table.map(
        _encode_batch,
        batched=True,
        num_proc=workers if workers > 1 else None,
        remove_columns=["prompt", "chosen", "rejected"],
        fn_kwargs={"tokenizer": tokenizer},
        new_fingerprint=fingerprint,
        desc="Tokenising preference rows",
    )


class _PreparationSettings(msgspec.Struct):
    """What besides files, data_conf and tokenizer changes the prepared preference data (the cache key)."""

    method: str
    max_length: int | None
    truncation_mode: str


def _drop_long_prompts(
    ids: np.ndarray, prompt_lengths: np.ndarray, max_length: int | None, what: str
) -> tuple[np.ndarray, int]:
    """Drop rows whose prompt alone fills max_length: truncation would leave no answer token to learn from."""
    if max_length is None or ids.size == 0:
        return ids, 0
    keep = prompt_lengths[ids] < max_length
    dropped = int(ids.size - keep.sum())
    if dropped == ids.size:
        raise DataError(
            ErrorItem(
                MAX_LENGTH_LOCATION,
                f"the prompt of every one of the {ids.size} {what} rows is at least max_length {max_length} "
                f"tokens long (shortest {int(prompt_lengths[ids].min())}), so no answer token would be trained",
                "Raise training_args.max_length or shorten the prompts",
            )
        )
    if dropped:
        logger.warning(
            "dropped %d of %d %s rows whose prompt alone is max_length %d tokens or longer",
            dropped,
            ids.size,
            what,
            max_length,
        )
    return ids[keep], dropped


def prepare_preferences(
    config: DPOFinetuningConfig,
    tokenizer: Any,
    setup: TokenizerSetup,
    *,
    num_proc: int = 1,
    cache_dir: Path | None,
) -> PreparedData:
    """Build the training and validation preference datasets, or load them from the cache.

    Columns `prompt_ids`, `chosen_ids`, `rejected_ids`, `length`. Rank logic stays with the caller, as for
    prepare_data. Rows are not length-filtered (TRL truncates prompt + answer to max_length), except those whose
    prompt alone fills max_length.
    """
    data_conf, args = config.data_conf, config.training_args
    max_length = None if args.max_length is None else int(args.max_length)
    training = _training_entries(data_conf.training_data)
    validation = _validation_entries(data_conf.validation_data)
    raw = _read_files([*training, *validation])
    key = cache_key(
        files=[(path, hashlib.sha256(content).hexdigest()) for path, content in raw.items()],
        data_conf=data_conf,
        sft_args=_PreparationSettings("dpo", max_length, str(args.truncation_mode)),
        tokenizer_digest=tokenizer_fingerprint(tokenizer, setup),
    )
    if cache_dir is not None and (cached := load_cached(cache_dir, key, PREFERENCE_COLUMNS)) is not None:
        return cached
    sources = _parse_files(raw, reader=read_preferences)
    encoded = _tokenise(sources.conversations, tokenizer, num_proc=num_proc, fingerprint=key)
    lengths = _column(encoded, "length")
    prompt_lengths = _column(encoded, "prompt_length")
    plan = plan_rows(data_conf, training, validation, sources, lengths, max_length=None)
    train_ids, dropped_train = _drop_long_prompts(plan.train_ids, prompt_lengths, max_length, "training")
    validation_ids, dropped_validation = (
        (None, 0)
        if plan.validation_ids is None
        else _drop_long_prompts(plan.validation_ids, prompt_lengths, max_length, "validation")
    )
    prepared = PreparedData(
        train=_select(encoded, train_ids, PREFERENCE_COLUMNS),
        validation=None if validation_ids is None else _select(encoded, validation_ids, PREFERENCE_COLUMNS),
        dropped_train=dropped_train,
        dropped_validation=dropped_validation,
        train_tokens=int(lengths[train_ids].sum()),
        cache_hit=False,
        source_counts=plan.source_counts,
    )
    if cache_dir is not None:
        store_cached(cache_dir, key, prepared)
    return prepared
