"""Conversations to token ids and labels, with vectorised completions-only masking."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from transformers import PreTrainedTokenizerBase
from transformers.utils.chat_template_utils import render_jinja_template

from ftconfig.runtime.data._tokenizer import TokenizerSetup

__all__ = ["IGNORE_INDEX", "adds_bos", "encode_conversations", "render_conversations", "trained_text"]

IGNORE_INDEX = -100


def adds_bos(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether tokenizing puts BOS in front by itself (then a template's BOS text would make a second one)."""
    bos_id = tokenizer.bos_token_id
    return bos_id is not None and tokenizer("a")["input_ids"][:1] == [bos_id]


def render_conversations(
    tokenizer: PreTrainedTokenizerBase, conversations: list[list[dict[str, str]]], *, with_spans: bool = False
) -> tuple[list[str], list[list[tuple[int, int]]]]:
    """Render with the installed chat template (no generation prompt); with `with_spans`, also the character
    spans of assistant output that the template marks with {% generation %} (else empty lists).

    A leading BOS text is cut from the rendering when the tokenizer adds BOS itself, so a template that writes
    `{{ bos_token }}` (simplified-llama31, most Llama-3 templates) never yields a double BOS.
    """
    special_tokens: dict[str, Any] = dict(tokenizer.special_tokens_map)
    rendered: Any = render_jinja_template(
        conversations,
        chat_template=tokenizer.get_chat_template(),
        return_assistant_tokens_mask=with_spans,
        **special_tokens,
    )
    texts: list[str] = rendered[0]
    spans: list[list[tuple[int, int]]] = rendered[1]
    if not with_spans:
        spans = [[] for _ in texts]
    bos = tokenizer.bos_token
    if bos and adds_bos(tokenizer):
        cut = len(bos)
        for i, text in enumerate(texts):
            if text.startswith(bos):
                texts[i] = text[cut:]
                spans[i] = [(max(start - cut, 0), max(end - cut, 0)) for start, end in spans[i]]
    return texts, spans


def _trained_mask(
    offsets: list[list[tuple[int, int]]], spans: list[list[tuple[int, int]]], text_lengths: list[int]
) -> np.ndarray:
    """True for each token (all rows flattened) that overlaps an assistant span.

    Rows are laid end to end on one character axis (each shifted by the lengths of the rows before it), so one
    searchsorted over all span ends finds, for every token, the first span that ends after the token starts.
    Zero-width tokens (BOS/EOS added by the tokenizer, offsets (0, 0)) never count as overlapping.
    """
    shift = np.cumsum([0] + [length + 1 for length in text_lengths[:-1]], dtype=np.int64)
    counts = [len(row) for row in offsets]
    token_shift = np.repeat(shift, counts)
    flat = np.asarray(list(itertools.chain.from_iterable(offsets)), dtype=np.int64).reshape(-1, 2)
    starts = flat[:, 0] + token_shift
    ends = flat[:, 1] + token_shift
    span_counts = [len(row) for row in spans]
    if sum(span_counts) == 0:
        return np.zeros(len(starts), dtype=bool)
    flat_spans = np.asarray(list(itertools.chain.from_iterable(spans)), dtype=np.int64).reshape(-1, 2)
    flat_spans += np.repeat(shift, span_counts)[:, None]
    flat_spans = flat_spans[np.argsort(flat_spans[:, 0], kind="stable")]
    span_starts, span_ends = flat_spans[:, 0], flat_spans[:, 1]
    index = np.searchsorted(span_ends, starts, side="right")
    inside = index < len(span_ends)
    clipped = np.minimum(index, len(span_ends) - 1)
    return inside & (ends > span_starts[clipped]) & (ends > starts)


def encode_conversations(
    tokenizer: PreTrainedTokenizerBase,
    setup: TokenizerSetup,
    conversations: list[list[dict[str, str]]],
    *,
    completions_only: bool,
) -> dict[str, list[list[int]]]:
    """Token ids and labels (-100 = not trained) for a batch; meant for datasets.map(batched=True).

    The ids are what the tokenizer makes of the rendered text, with its own special tokens (BOS first, EOS
    last). With `completions_only`, only the assistant turns' content and their end markers are trained;
    headers, other turns, BOS and the final EOS get -100. `setup` is in the signature so callers pass what
    build_tokenizer returned; the template itself is read from the tokenizer, where build_tokenizer put it.
    """
    del setup  # the installed template and tokens live on the tokenizer
    if not conversations:
        return {"input_ids": [], "labels": []}
    texts, spans = render_conversations(tokenizer, conversations, with_spans=completions_only)
    encoded = tokenizer(texts, return_offsets_mapping=completions_only, return_attention_mask=False)
    input_ids: list[list[int]] = encoded["input_ids"]
    if not completions_only:
        return {"input_ids": input_ids, "labels": [list(ids) for ids in input_ids]}
    trained = _trained_mask(encoded["offset_mapping"], spans, [len(text) for text in texts])
    flat_ids = np.fromiter(itertools.chain.from_iterable(input_ids), dtype=np.int64, count=len(trained))
    flat_labels = np.where(trained, flat_ids, IGNORE_INDEX)
    bounds = np.cumsum([len(ids) for ids in input_ids])[:-1]
    labels = [row.tolist() for row in np.split(flat_labels, bounds)]
    return {"input_ids": input_ids, "labels": labels}


def trained_text(tokenizer: PreTrainedTokenizerBase, input_ids: list[int], labels: list[int]) -> str:
    """The decoded tokens whose label is not -100, special tokens kept (for the dry-run plan)."""
    kept = [token for token, label in zip(input_ids, labels, strict=True) if label != IGNORE_INDEX]
    return str(tokenizer.decode(kept, skip_special_tokens=False))
