"""Conversations to prompt token ids, framed exactly as training framed them (BOS added by the tokenizer)."""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedTokenizerBase

from ftconfig.runtime.data._encode import adds_bos

__all__ = ["encode_prompts", "render_prompt", "render_prompts"]


def render_prompt(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> str:
    """The chat template's text for `messages` followed by the assistant header (the generation prompt).

    A leading BOS text is cut when the tokenizer adds BOS itself, as in training, so a template that writes
    `{{ bos_token }}` does not produce two.
    """
    text = str(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and adds_bos(tokenizer):
        text = text[len(bos) :]
    return text


def render_prompts(
    tokenizer: PreTrainedTokenizerBase, conversations: list[list[dict[str, str]]]
) -> list[str]:
    return [render_prompt(tokenizer, messages) for messages in conversations]


def encode_prompts(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> Any:
    """Left-padded tensors for a batch of prompts (the tokenizer adds BOS, as in training)."""
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=True)
