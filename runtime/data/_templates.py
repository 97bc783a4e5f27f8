"""The named chat templates: Jinja text, assistant turn markers and the special tokens each one needs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ftconfig.generated.config import ChatTemplateName
from ftconfig.runtime.config._structs import literal_values

__all__ = ["TEMPLATE_NAMES", "ChatTemplate", "chat_template_for", "has_generation_markers"]


@dataclass(frozen=True)
class ChatTemplate:
    """A template to install on the tokenizer.

    `assistant_end` is also the EOS the tokenizer is saved with for inference, so that generation stops
    where training taught the model to stop.
    """

    name: str
    jinja: str
    assistant_start: str
    assistant_end: str
    special_tokens: tuple[str, ...]


# Every template wraps the assistant content and its end marker in {% generation %}: the rendering does not
# change, and the character spans it records are what completions-only masking trains on (see _encode.py).
# The Jinja sources are single lines so that no whitespace can slip in between the parts.
_MISTRAL_WITH_SYSTEM = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<<SYS>>\\n' + message['content'] + '\\n<</SYS>>\\n' }}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}{{ ' ' }}"
    "{% endif %}"
    "{% endfor %}"
)

_CHAT_ML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{ message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_PORO = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\\n' + message['content'] + eos_token }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + eos_token }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\\n' }}{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

_SIMPLIFIED_LLAMA31 = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ (message['content'] | trim) + '<|eot_id|>' }}{% endgeneration %}"
    "{% else %}{{ (message['content'] | trim) + '<|eot_id|>' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

# The schema owns the names; chat_template_for has one branch per name (tests render every one).
TEMPLATE_NAMES = literal_values(ChatTemplateName)


def chat_template_for(name: str, tokenizer: Any) -> ChatTemplate | None:
    """The template called `name` (a `ChatTemplateName`), or None for keep-original.

    The tokenizer is needed because mistral-with-system and poro end assistant turns with its EOS text.
    """
    eos = str(tokenizer.eos_token)
    if name == "mistral-with-system":
        return ChatTemplate(name, _MISTRAL_WITH_SYSTEM, "[/INST]", eos, ())
    if name == "chat-ml":
        return ChatTemplate(
            name, _CHAT_ML, "<|im_start|>assistant\n", "<|im_end|>", ("<|im_start|>", "<|im_end|>")
        )
    if name == "poro":
        # <|system|> is registered too: left out, it would be split into ordinary tokens.
        return ChatTemplate(name, _PORO, "<|assistant|>\n", eos, ("<|user|>", "<|assistant|>", "<|system|>"))
    if name == "simplified-llama31":
        specials = ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
        return ChatTemplate(
            name,
            _SIMPLIFIED_LLAMA31,
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            "<|eot_id|>",
            specials,
        )
    if name == "keep-original":
        return None
    raise ValueError(f"unknown chat template {name!r}; the schema allows {', '.join(TEMPLATE_NAMES)}")


def has_generation_markers(jinja: str | None) -> bool:
    """Whether a template marks assistant output with {% generation %} (needed for completions-only loss)."""
    return jinja is not None and re.search(r"\{%-?\s*generation\s*-?%\}", jinja) is not None
