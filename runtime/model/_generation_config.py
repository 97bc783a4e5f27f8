"""The generation config saved with every inference-ready checkpoint: generation stops at the end of a turn."""

from __future__ import annotations

import copy
import logging
from typing import Any

from transformers import GenerationConfig, PreTrainedTokenizerBase

__all__ = ["end_of_turn_ids", "inference_generation_config"]

logger = logging.getLogger(__name__)


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(item) for item in value]


def end_of_turn_ids(tokenizer: PreTrainedTokenizerBase, inference_eos: str) -> list[int]:
    """The id of the template's end-of-turn token, or [] when it is not one token of this vocabulary."""
    token_id = tokenizer.convert_tokens_to_ids(inference_eos)
    if not isinstance(token_id, int) or token_id == tokenizer.unk_token_id:
        logger.warning(
            "the end-of-turn marker %r is not one token; generation cannot stop on it", inference_eos
        )
        return []
    return [token_id]


def inference_generation_config(
    base: GenerationConfig | None, tokenizer: PreTrainedTokenizerBase, inference_eos: str
) -> GenerationConfig:
    """A copy of `base` whose eos ids start with the end-of-turn token (the model's own EOS kept after it).

    Training teaches the model to close each assistant turn with the template's end marker (`<|im_end|>` for
    chat-ml), while the base model's generation config only knows its own EOS (`</s>`): without this,
    `model.generate()` would run past the end of the turn until max_new_tokens.
    """
    config = copy.deepcopy(base) if base is not None else GenerationConfig()  # type: ignore[no-untyped-call]  # unannotated in transformers
    eos_ids = end_of_turn_ids(tokenizer, inference_eos) + _as_list(config.eos_token_id)
    if tokenizer.eos_token_id is not None:
        eos_ids.append(int(tokenizer.eos_token_id))
    unique = list(dict.fromkeys(eos_ids))
    config.eos_token_id = unique[0] if len(unique) == 1 else unique
    if tokenizer.pad_token_id is not None:
        config.pad_token_id = tokenizer.pad_token_id
    if tokenizer.bos_token_id is not None:
        config.bos_token_id = tokenizer.bos_token_id
    # A config marked as derived from the model config is rebuilt from that config by generate() whenever the
    # two differ, which would drop the end-of-turn id again: this one is ours.
    config._from_model_config = False
    return config
