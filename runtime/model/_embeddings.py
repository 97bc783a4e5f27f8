"""Growing the embeddings for a template's new tokens, and saving the grown base model."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import cast

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ftconfig.runtime.config._errors import ConfigError, ErrorItem

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


def grow_embeddings(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, added_tokens: int
) -> list[str]:
    """Give the model rows for tokens the chat template added; return the modules an adapter must then save.

    Nothing happens when no tokens were added or the model already has spare rows for them. New rows start
    at the old rows' mean (`mean_resizing`), so the new tokens begin as an average token rather than noise.
    With an adapter, both the input and the output embeddings must train and be saved (tied ones are kept tied
    by `apply_peft`), else the new tokens could be read but never predicted.
    """
    size = len(tokenizer)
    rows = int(cast(torch.Tensor, model.get_input_embeddings().weight).shape[0])
    if added_tokens <= 0 or size <= rows:
        if added_tokens > 0:
            logger.info(
                "The %d new tokens fit in the model's %d embedding rows; nothing to grow.", added_tokens, rows
            )
        return []
    if getattr(model, "is_quantized", False):
        raise ConfigError(
            ErrorItem(
                "$.quant_conf",
                f"the chat template adds {added_tokens} tokens, so the model's {rows} embedding rows would "
                f"have to grow to {size}, and a grown base model must be saved next to the adapter, which a "
                "quantized model can only do with its quantized weights",
                "Use a chat template whose tokens the tokenizer already has (e.g. keep-original), "
                "or train without quantization (quant_conf.quantization_type: no-quantization).",
            )
        )
    model.resize_token_embeddings(size, mean_resizing=True)
    logger.info("Grew the embeddings from %d to %d rows for %d new tokens.", rows, size, added_tokens)
    modules = [_module_name(model, model.get_input_embeddings())]
    output = model.get_output_embeddings()  # type: ignore[no-untyped-call]  # unannotated in transformers
    if output is not None:
        modules.append(_module_name(model, output))
    return modules


def save_new_basemodel(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: str | Path) -> Path:
    """Save the grown, untrained base model and its tokenizer: the base that an adapter with new tokens needs.

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
        "Saved a new base model with the grown vocabulary to %s. Use it as the base for the adapter.", target
    )
    return target
