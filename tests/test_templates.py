"""The five named chat templates render exactly these texts (one BOS for simplified-llama31, <|system|> registered
for poro)."""

from __future__ import annotations

import re
import typing

import pytest
from transformers import AutoTokenizer

from ftconfig.generated.config import ChatTemplateName
from ftconfig.runtime.data._templates import TEMPLATE_NAMES, chat_template_for, has_generation_markers
from tests.helpers import SYSTEM_USER_ASSISTANT, TWO_EXCHANGES

EXPECTED_SINGLE = {
    "mistral-with-system": "<<SYS>>\nS\n<</SYS>>\n[INST] U [/INST]A</s> ",
    "chat-ml": (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
    ),
    "poro": "<|system|>\nS</s><|user|>\nU</s><|assistant|>\nA</s>",
    "simplified-llama31": (
        "<s><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nA<|eot_id|>"
    ),
    "keep-original": "### System:\nS\n### User:\nU\n### Assistant:\nA</s>\n",
}
EXPECTED_TWO = {
    "mistral-with-system": "[INST] U1 [/INST]A1</s> [INST] U2 [/INST]A2</s> ",
    "chat-ml": (
        "<|im_start|>user\nU1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
        "<|im_start|>user\nU2<|im_end|>\n<|im_start|>assistant\nA2<|im_end|>\n"
    ),
    "poro": "<|user|>\nU1</s><|assistant|>\nA1</s><|user|>\nU2</s><|assistant|>\nA2</s>",
    "simplified-llama31": (
        "<s><|start_header_id|>user<|end_header_id|>\n\nU1<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nA1<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nU2<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nA2<|eot_id|>"
    ),
    "keep-original": "### User:\nU1\n### Assistant:\nA1</s>\n### User:\nU2\n### Assistant:\nA2</s>\n",
}


@pytest.fixture
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir, add_bos_token=True, add_eos_token=True)


def _render(tokenizer, name, messages, **kwargs):
    template = chat_template_for(name, tokenizer)
    if template is not None:
        tokenizer.chat_template = template.jinja
    return tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)


def test_template_names_are_exactly_the_schema_enum():
    schema_names = typing.get_args(typing.get_args(ChatTemplateName)[0])
    assert sorted(TEMPLATE_NAMES) == sorted(schema_names)
    assert sorted(EXPECTED_SINGLE) == sorted(EXPECTED_TWO) == sorted(schema_names), (
        "a template has no rendering test"
    )


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_system_user_assistant_renders_exactly(tokenizer, name):
    assert _render(tokenizer, name, SYSTEM_USER_ASSISTANT) == EXPECTED_SINGLE[name]


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_two_exchanges_render_exactly(tokenizer, name):
    assert _render(tokenizer, name, TWO_EXCHANGES) == EXPECTED_TWO[name]


@pytest.mark.parametrize(
    ("name", "prompt_suffix"),
    [
        ("chat-ml", "<|im_start|>assistant\n"),
        ("poro", "<|assistant|>\n"),
        ("simplified-llama31", "<|start_header_id|>assistant<|end_header_id|>\n\n"),
        ("mistral-with-system", ""),  # this template has no generation prompt
    ],
)
def test_generation_prompt_appends_the_assistant_header(tokenizer, name, prompt_suffix):
    prompt = SYSTEM_USER_ASSISTANT[:2]
    plain = _render(tokenizer, name, prompt)
    assert _render(tokenizer, name, prompt, add_generation_prompt=True) == plain + prompt_suffix


def test_mistral_renders_nothing_for_unknown_roles(tokenizer):
    messages = [{"role": "tool", "content": "T"}, *TWO_EXCHANGES[:2]]
    assert _render(tokenizer, "mistral-with-system", messages) == "[INST] U1 [/INST]A1</s> "


def test_llama31_trims_message_whitespace(tokenizer):
    messages = [{"role": "user", "content": "  U \n"}, {"role": "assistant", "content": "\tA  "}]
    assert _render(tokenizer, "simplified-llama31", messages) == (
        "<s><|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nA<|eot_id|>"
    )


@pytest.mark.parametrize("name", [name for name in TEMPLATE_NAMES if name != "keep-original"])
def test_generation_markers_do_not_change_the_rendering(tokenizer, name):
    template = chat_template_for(name, tokenizer)
    assert has_generation_markers(template.jinja)
    unmarked = re.sub(r"\{% (end)?generation %\}", "", template.jinja)
    assert not has_generation_markers(unmarked)
    marked_text = _render(tokenizer, name, TWO_EXCHANGES)
    tokenizer.chat_template = unmarked
    assert tokenizer.apply_chat_template(TWO_EXCHANGES, tokenize=False) == marked_text


@pytest.mark.parametrize(
    ("name", "start", "end", "specials"),
    [
        ("mistral-with-system", "[/INST]", "</s>", ()),
        ("chat-ml", "<|im_start|>assistant\n", "<|im_end|>", ("<|im_start|>", "<|im_end|>")),
        ("poro", "<|assistant|>\n", "</s>", ("<|user|>", "<|assistant|>", "<|system|>")),
        (
            "simplified-llama31",
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            "<|eot_id|>",
            ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
        ),
    ],
)
def test_template_markers_and_special_tokens(tokenizer, name, start, end, specials):
    template = chat_template_for(name, tokenizer)
    assert (template.name, template.assistant_start, template.assistant_end) == (name, start, end)
    assert template.special_tokens == specials


def test_keep_original_is_no_template_and_unknown_names_are_rejected(tokenizer):
    assert chat_template_for("keep-original", tokenizer) is None
    with pytest.raises(ValueError, match="unknown chat template 'chatml'"):
        chat_template_for("chatml", tokenizer)


def test_generation_markers_are_detected_with_whitespace_control():
    assert has_generation_markers("{%- generation -%}x{%- endgeneration -%}")
    assert not has_generation_markers("{{ messages }}")
    assert not has_generation_markers(None)
