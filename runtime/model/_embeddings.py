"""Growing the embeddings for a template's new tokens, and (when asked) saving a grown base-model copy."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ftconfig.runtime.model._new_tokens import NewTokenRows

__all__ = ["grow_embeddings", "save_new_basemodel"]

logger = logging.getLogger(__name__)


def _module_name(model: torch.nn.Module, module: torch.nn.Module) -> str:
    """The short name PEFT matches in modules_to_save (`embed_tokens`, `lm_head`, ...)."""
    for name, candidate in model.named_modules():
        if candidate is module:
            return str(name.rsplit(".", 1)[-1])
    raise LookupError(
        "embedding module not found in the model"
    )  # not a user mistake: a model we cannot handle


def _embeddings_tied(model: PreTrainedModel) -> bool:
    output = model.get_output_embeddings()  # type: ignore[no-untyped-call]
    return output is not None and output.weight is model.get_input_embeddings().weight


def grow_embeddings(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, token_ids: Sequence[int]
) -> NewTokenRows | None:
    """Give the model rows for the tokens the chat template added; say where those rows are (None: no tokens).

    The embeddings grow only when the model has no spare rows for them. New rows start at the old rows' mean
    (`mean_resizing`, a seeded draw: the caller seeds first, so every rank draws the same rows), so the new
    tokens begin as an average token rather than noise. A quantized model grows too: its embeddings are not
    quantized. An adapter run then trains these rows of the input and the output embeddings.
    """
    if not token_ids:
        return None
    size = len(tokenizer)
    rows = int(cast(torch.Tensor, model.get_input_embeddings().weight).shape[0])
    grown = size > rows
    if grown:
        model.resize_token_embeddings(size, mean_resizing=True)
        logger.info("Grew the embeddings from %d to %d rows for %d new tokens.", rows, size, len(token_ids))
    else:
        logger.info(
            "The %d new tokens fit in the model's %d embedding rows; nothing to grow.", len(token_ids), rows
        )
    output = model.get_output_embeddings()  # type: ignore[no-untyped-call]
    return NewTokenRows(
        token_ids=tuple(token_ids),
        input_module=_module_name(model, model.get_input_embeddings()),
        output_module=_module_name(model, output) if output is not None else None,
        tied=_embeddings_tied(model),
        grown=grown,
    )


def save_new_basemodel(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: str | Path) -> Path:
    """Save the grown, untrained base model and its tokenizer (only when sft_args.save_new_basemodel asks: the
    adapter does not need it, see runtime/model/_new_tokens.py).

    Written into a temporary sibling folder and renamed into place, so a crash never leaves a half-written
    base that merging or serving would then pick up. An existing folder at `path` is replaced.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replaced = target.exists()
    if replaced:
        target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        if replaced:
            old.rename(target)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if replaced:
        shutil.rmtree(old, ignore_errors=True)
    logger.warning(
        "Saved a copy of the base model with the grown vocabulary to %s (sft_args.save_new_basemodel).",
        target,
    )
    return target
