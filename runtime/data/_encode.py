"""Conversations to token ids and labels, with vectorised completions-only masking.

A `ConversationEncoder` is built once per preparation: the chat template compiled once (runtime/data/_render.py),
the fast tokenizer's Rust backend called on whole batches, and its ids and offsets read straight into flat numpy
arrays, masked with one searchsorted per batch. `encode_conversations` keeps the list-of-lists form for callers
that want Python rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from transformers import PreTrainedTokenizerBase

from ftconfig.runtime.data._render import CompiledTemplate, RenderedBatch, compile_template
from ftconfig.runtime.data._tokenizer import TokenizerSetup

__all__ = [
    "IGNORE_INDEX",
    "ConversationEncoder",
    "EncodedBatch",
    "adds_bos",
    "conversation_encoder",
    "encode_conversations",
    "render_conversations",
    "trained_text",
]

IGNORE_INDEX = -100


@dataclass(frozen=True)
class EncodedBatch:
    """A batch as flat arrays: row i is `input_ids[bounds[i]:bounds[i + 1]]` (same for labels)."""

    input_ids: np.ndarray  # int64, every row end to end
    labels: np.ndarray  # int64, -100 where not trained
    bounds: np.ndarray  # int64, len(rows) + 1 row boundaries, starting at 0

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.bounds)

    def rows(self) -> dict[str, list[list[int]]]:
        """The batch as Python rows (what datasets.map and the tests want)."""
        cuts = self.bounds[1:-1]
        return {
            "input_ids": [row.tolist() for row in np.split(self.input_ids, cuts)] if len(self) else [],
            "labels": [row.tolist() for row in np.split(self.labels, cuts)] if len(self) else [],
        }

    def __len__(self) -> int:
        return len(self.bounds) - 1


def adds_bos(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether tokenizing puts BOS in front by itself (then a template's BOS text would make a second one)."""
    bos_id = tokenizer.bos_token_id
    return bos_id is not None and tokenizer("a")["input_ids"][:1] == [bos_id]


def _compiled_template(tokenizer: PreTrainedTokenizerBase) -> CompiledTemplate:
    bos = tokenizer.bos_token
    return compile_template(
        tokenizer.get_chat_template(),
        dict(tokenizer.special_tokens_map),
        cut_prefix=bos if bos and adds_bos(tokenizer) else "",
    )


def _backend(tokenizer: PreTrainedTokenizerBase) -> Any:
    """The Rust tokenizer set up as transformers sets it up for a plain `tokenizer(texts)` call (no padding, no
    truncation, special tokens split only if the tokenizer says so); None for a slow (Python) tokenizer."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    if backend.truncation is not None:
        backend.no_truncation()
    if backend.padding is not None:
        backend.no_padding()
    split = bool(getattr(tokenizer, "split_special_tokens", False))
    if backend.encode_special_tokens != split:
        backend.encode_special_tokens = split
    return backend


def _trained_mask(
    starts: np.ndarray,
    ends: np.ndarray,
    bounds: np.ndarray,
    spans: list[list[tuple[int, int]]],
    text_lengths: list[int],
) -> np.ndarray:
    """True for each token (all rows flattened) that overlaps an assistant span.

    Rows are laid end to end on one character axis (each shifted by the lengths of the rows before it), so one
    searchsorted over all span ends finds, for every token, the first span that ends after the token starts.
    Zero-width tokens (BOS/EOS added by the tokenizer, offsets (0, 0)) never count as overlapping.
    """
    shift = np.cumsum([0] + [length + 1 for length in text_lengths[:-1]], dtype=np.int64)
    token_shift = np.repeat(shift, np.diff(bounds))
    starts = starts + token_shift
    ends = ends + token_shift
    span_counts = [len(row) for row in spans]
    if sum(span_counts) == 0:
        return np.zeros(len(starts), dtype=bool)
    flat_spans = np.fromiter(
        itertools.chain.from_iterable(itertools.chain.from_iterable(spans)),
        dtype=np.int64,
        count=2 * sum(span_counts),
    ).reshape(-1, 2)
    flat_spans += np.repeat(shift, span_counts)[:, None]
    flat_spans = flat_spans[np.argsort(flat_spans[:, 0], kind="stable")]
    span_starts, span_ends = flat_spans[:, 0], flat_spans[:, 1]
    index = np.searchsorted(span_ends, starts, side="right")
    inside = index < len(span_ends)
    clipped = np.minimum(index, len(span_ends) - 1)
    return inside & (ends > span_starts[clipped]) & (ends > starts)


@dataclass(frozen=True)
class ConversationEncoder:
    """Render, tokenise and mask batches of conversations with one tokenizer; build it once per preparation."""

    tokenizer: PreTrainedTokenizerBase
    template: CompiledTemplate
    completions_only: bool

    def render(self, conversations: Sequence[Sequence[dict[str, str]]]) -> RenderedBatch:
        return self.template.render(conversations, with_spans=self.completions_only)

    def tokenise(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Flat ids, token start and end offsets (empty unless completions_only), and row bounds of `texts`
        tokenised with the tokenizer's special tokens, exactly as `tokenizer(texts)` tokenises them."""
        backend = _backend(self.tokenizer)
        want_offsets = self.completions_only
        if backend is not None:
            encodings = backend.encode_batch(texts, add_special_tokens=True)
            ids_rows: list[Any] = [encoding.ids for encoding in encodings]
            offset_rows: list[Any] = [encoding.offsets for encoding in encodings] if want_offsets else []
        else:
            encoded = self.tokenizer(texts, return_offsets_mapping=want_offsets, return_attention_mask=False)
            ids_rows = encoded["input_ids"]
            offset_rows = encoded["offset_mapping"] if want_offsets else []
        bounds = np.zeros(len(ids_rows) + 1, dtype=np.int64)
        np.cumsum([len(row) for row in ids_rows], out=bounds[1:])
        total = int(bounds[-1])
        ids = np.fromiter(itertools.chain.from_iterable(ids_rows), dtype=np.int64, count=total)
        if not want_offsets:
            empty = np.zeros(0, dtype=np.int64)
            return ids, empty, empty, bounds
        offsets = np.fromiter(
            itertools.chain.from_iterable(itertools.chain.from_iterable(offset_rows)),
            dtype=np.int64,
            count=2 * total,
        ).reshape(-1, 2)
        return ids, offsets[:, 0], offsets[:, 1], bounds

    def encode(self, conversations: Sequence[Sequence[dict[str, str]]]) -> EncodedBatch:
        """Token ids and labels of a batch, as flat arrays.

        The ids are what the tokenizer makes of the rendered text, with its own special tokens (BOS first, EOS
        last). With `completions_only`, only the assistant turns' content and their end markers (what the
        template marks with {% generation %}) are trained; headers, other turns, BOS and the final EOS get -100.
        """
        if not conversations:
            empty = np.zeros(0, dtype=np.int64)
            return EncodedBatch(empty, empty.copy(), np.zeros(1, dtype=np.int64))
        rendered = self.render(conversations)
        ids, starts, ends, bounds = self.tokenise(rendered.texts)
        if not self.completions_only:
            return EncodedBatch(ids, ids.copy(), bounds)
        trained = _trained_mask(starts, ends, bounds, rendered.spans, [len(text) for text in rendered.texts])
        return EncodedBatch(ids, np.where(trained, ids, IGNORE_INDEX), bounds)


def conversation_encoder(
    tokenizer: PreTrainedTokenizerBase, *, completions_only: bool
) -> ConversationEncoder:
    """An encoder for the chat template installed on `tokenizer` (build_tokenizer put it there)."""
    return ConversationEncoder(tokenizer, _compiled_template(tokenizer), completions_only)


def render_conversations(
    tokenizer: PreTrainedTokenizerBase, conversations: list[list[dict[str, str]]], *, with_spans: bool = False
) -> tuple[list[str], list[list[tuple[int, int]]]]:
    """Render with the installed chat template (no generation prompt); with `with_spans`, also the character
    spans of assistant output that the template marks with {% generation %} (else empty lists).

    A leading BOS text is cut from the rendering when the tokenizer adds BOS itself, so a template that writes
    `{{ bos_token }}` (simplified-llama31, most Llama-3 templates) never yields a double BOS.
    """
    rendered = _compiled_template(tokenizer).render(conversations, with_spans=with_spans)
    return rendered.texts, rendered.spans


def encode_conversations(
    tokenizer: PreTrainedTokenizerBase,
    setup: TokenizerSetup,
    conversations: list[list[dict[str, str]]],
    *,
    completions_only: bool,
) -> dict[str, list[list[int]]]:
    """Token ids and labels (-100 = not trained) for a batch, as Python rows (see ConversationEncoder.encode).

    `setup` is in the signature so callers pass what build_tokenizer returned; the template itself is read from
    the tokenizer, where build_tokenizer put it.
    """
    del setup  # the installed template and tokens live on the tokenizer
    encoder = conversation_encoder(tokenizer, completions_only=completions_only)
    return encoder.encode(conversations).rows()


def trained_text(tokenizer: PreTrainedTokenizerBase, input_ids: list[int], labels: list[int]) -> str:
    """The decoded tokens whose label is not -100, special tokens kept (for the dry-run plan)."""
    kept = [token for token, label in zip(input_ids, labels, strict=True) if label != IGNORE_INDEX]
    return str(tokenizer.decode(kept, skip_special_tokens=False))
