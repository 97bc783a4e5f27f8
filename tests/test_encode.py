"""Encoding conversations: ids with the tokenizer's BOS/EOS, full or completions-only labels, vectorised."""

from __future__ import annotations

import functools
import json
import pickle
import time

import pytest

from ftconfig.runtime.config._load import load_config
from ftconfig.runtime.data._encode import (
    IGNORE_INDEX,
    encode_conversations,
    render_conversations,
    trained_text,
)
from ftconfig.runtime.data._tokenizer import build_tokenizer
from tests.helpers import SYSTEM_USER_ASSISTANT, TWO_EXCHANGES

# What completions-only training learns: each assistant turn's content and its end marker, nothing else.
TRAINED = {
    "chat-ml": ("A<|im_end|>", "A1<|im_end|>A2<|im_end|>"),
    "mistral-with-system": ("A</s>", "A1</s>A2</s>"),
    "poro": ("A</s>", "A1</s>A2</s>"),
    "simplified-llama31": ("A<|eot_id|>", "A1<|eot_id|>A2<|eot_id|>"),
    "keep-original": ("A</s>", "A1</s>A2</s>"),
}


@functools.cache
def _built(model_dir: str, name: str):
    config = load_config(
        {
            "data_conf": {
                "training_data": {"type": "CONCATENATION", "datasets": [{"path": "train.jsonl"}]},
                "validation_data": {"type": "NONE"},
                "chat_template_name": name,
            },
            "training_args": {},
            "batchsize_conf": {"total_train_batch_size": 8, "max_per_device_train_batch_size": 4},
            "peft_conf": {"peft_type": "NO_PEFT"},
            "run_conf": {"model": model_dir},
            "sft_args": {"train_on_completions_only": True},
        }
    )
    return build_tokenizer(config.run_conf, config.data_conf)


@pytest.fixture
def built(tiny_model_dir):
    """(tokenizer, setup) per template name; read-only in these tests, so built once per name."""
    return lambda name: _built(str(tiny_model_dir), name)


def _conversations(data_dir, count):
    rows = [json.loads(line)["messages"] for line in (data_dir / "train.jsonl").read_text().splitlines()]
    return (rows * (count // len(rows) + 1))[:count]


@pytest.mark.parametrize("name", list(TRAINED))
def test_full_labels_equal_the_ids_which_start_with_bos_and_end_with_eos(built, name):
    tokenizer, setup = built(name)
    encoded = encode_conversations(
        tokenizer, setup, [SYSTEM_USER_ASSISTANT, TWO_EXCHANGES], completions_only=False
    )
    texts, _ = render_conversations(tokenizer, [SYSTEM_USER_ASSISTANT, TWO_EXCHANGES])
    for ids, labels, text in zip(encoded["input_ids"], encoded["labels"], texts, strict=True):
        assert labels == ids
        assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(ids) == "<s>" + text + "</s>"


@pytest.mark.parametrize("name", list(TRAINED))
def test_completions_only_trains_exactly_the_assistant_content_and_end_marker(built, name):
    tokenizer, setup = built(name)
    encoded = encode_conversations(
        tokenizer, setup, [SYSTEM_USER_ASSISTANT, TWO_EXCHANGES], completions_only=True
    )
    trained = tuple(
        trained_text(tokenizer, ids, labels)
        for ids, labels in zip(encoded["input_ids"], encoded["labels"], strict=True)
    )
    assert trained == TRAINED[name]
    unmasked = encode_conversations(tokenizer, setup, [SYSTEM_USER_ASSISTANT], completions_only=False)
    assert encoded["input_ids"][0] == unmasked["input_ids"][0]


@pytest.mark.parametrize("name", list(TRAINED))
def test_completions_only_masks_bos_and_the_final_eos(built, name):
    tokenizer, setup = built(name)
    encoded = encode_conversations(tokenizer, setup, [TWO_EXCHANGES], completions_only=True)
    labels = encoded["labels"][0]
    assert labels[0] == IGNORE_INDEX and labels[-1] == IGNORE_INDEX
    assert all(
        label in (IGNORE_INDEX, token) for label, token in zip(labels, encoded["input_ids"][0], strict=True)
    )


def test_chat_ml_masks_headers_and_the_newline_after_the_end_marker(built):
    tokenizer, setup = built("chat-ml")
    encoded = encode_conversations(tokenizer, setup, [SYSTEM_USER_ASSISTANT], completions_only=True)
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
    flags = [label != IGNORE_INDEX for label in encoded["labels"][0]]
    assert [token for token, flag in zip(tokens, flags, strict=True) if flag] == ["A", "<|im_end|>"]
    end = tokens.index("<|im_end|>", tokens.index("A"))
    assert tokens[end + 1] == "Ċ" and not flags[end + 1]  # the "\n" after <|im_end|> is not trained
    assert tokens[end - 2 : end] == ["Ċ", "A"] and not flags[end - 2]  # nor is the header's "\n"


def test_simplified_llama31_never_has_a_double_bos(built):
    tokenizer, setup = built("simplified-llama31")
    encoded = encode_conversations(
        tokenizer, setup, [SYSTEM_USER_ASSISTANT, TWO_EXCHANGES], completions_only=True
    )
    for ids in encoded["input_ids"]:
        assert ids[0] == tokenizer.bos_token_id
        assert ids.count(tokenizer.bos_token_id) == 1


def test_an_assistant_turn_right_after_bos_is_closed_at_its_end_marker(built):
    """A turn whose start marker is at token 0 or 1 is still closed, so the rest of the row is not trained."""
    tokenizer, setup = built("chat-ml")
    conversation = [{"role": "assistant", "content": "A"}, {"role": "user", "content": "U"}]
    encoded = encode_conversations(tokenizer, setup, [conversation], completions_only=True)
    assert trained_text(tokenizer, encoded["input_ids"][0], encoded["labels"][0]) == "A<|im_end|>"


def test_whitespace_around_assistant_content_is_trained_as_written(built):
    tokenizer, setup = built("chat-ml")
    conversation = [{"role": "user", "content": "U"}, {"role": "assistant", "content": " A b\n"}]
    encoded = encode_conversations(tokenizer, setup, [conversation], completions_only=True)
    assert trained_text(tokenizer, encoded["input_ids"][0], encoded["labels"][0]) == " A b\n<|im_end|>"


def test_a_conversation_without_assistant_turns_is_fully_masked(built):
    tokenizer, setup = built("poro")
    encoded = encode_conversations(
        tokenizer, setup, [[{"role": "user", "content": "U"}]], completions_only=True
    )
    assert set(encoded["labels"][0]) == {IGNORE_INDEX}


def test_an_empty_batch_encodes_to_empty_columns(built):
    tokenizer, setup = built("chat-ml")
    assert encode_conversations(tokenizer, setup, [], completions_only=True) == {
        "input_ids": [],
        "labels": [],
    }


def test_batched_encoding_equals_one_by_one_encoding(built, data_dir):
    """Rows are laid end to end for one searchsorted; no row's spans may leak into its neighbours."""
    tokenizer, setup = built("simplified-llama31")
    conversations = _conversations(data_dir, 50)
    batch = encode_conversations(tokenizer, setup, conversations, completions_only=True)
    for i, conversation in enumerate(conversations):
        single = encode_conversations(tokenizer, setup, [conversation], completions_only=True)
        assert (single["input_ids"][0], single["labels"][0]) == (batch["input_ids"][i], batch["labels"][i])


def test_encoding_survives_pickling_as_datasets_map_with_num_proc_does(built):
    tokenizer, setup = built("chat-ml")
    encode = functools.partial(encode_conversations, tokenizer, setup, completions_only=True)
    copied = pickle.loads(pickle.dumps(encode))
    assert copied([TWO_EXCHANGES]) == encode([TWO_EXCHANGES])


def test_trained_text_keeps_special_tokens(built):
    tokenizer, setup = built("chat-ml")
    encoded = encode_conversations(tokenizer, setup, [SYSTEM_USER_ASSISTANT], completions_only=False)
    assert trained_text(tokenizer, encoded["input_ids"][0], encoded["labels"][0]).startswith(
        "<s><|im_start|>system"
    )


def test_encoding_two_thousand_conversations_takes_seconds_not_minutes(built, data_dir):
    tokenizer, setup = built("chat-ml")
    conversations = _conversations(data_dir, 2000)
    timings = {}
    for completions_only in (False, True):
        start = time.perf_counter()
        for offset in range(0, 2000, 1000):  # datasets.map's default batch size
            encoded = encode_conversations(
                tokenizer, setup, conversations[offset : offset + 1000], completions_only=completions_only
            )
        timings[completions_only] = time.perf_counter() - start
        assert len(encoded["input_ids"]) == 1000
    print(
        f"encode 2000 conversations: full labels {timings[False]:.3f} s, "
        f"completions-only {timings[True]:.3f} s"
    )
    assert timings[True] < 10


def _encode_batch(batch, tokenizer, setup):
    return encode_conversations(tokenizer, setup, batch["messages"], completions_only=True)


@pytest.mark.slow
def test_encoding_runs_in_datasets_map_with_two_processes(built, data_dir):
    import datasets

    tokenizer, setup = built("chat-ml")
    conversations = _conversations(data_dir, 200)
    dataset = datasets.Dataset.from_list([{"messages": messages} for messages in conversations])
    mapped = dataset.map(
        _encode_batch,
        batched=True,
        num_proc=2,
        remove_columns=["messages"],
        fn_kwargs={"tokenizer": tokenizer, "setup": setup},
    )
    direct = encode_conversations(tokenizer, setup, conversations, completions_only=True)
    assert mapped["input_ids"] == direct["input_ids"]
    assert mapped["labels"] == direct["labels"]


def _reference_encoding(tokenizer, conversations, completions_only):
    """Encoding the plain way, independent of the fast path: transformers' own template helper per conversation,
    the tokenizer's __call__, and a Python loop over every token for the mask."""
    from transformers.utils.chat_template_utils import render_jinja_template

    texts, spans = render_jinja_template(
        conversations,
        chat_template=tokenizer.get_chat_template(),
        return_assistant_tokens_mask=completions_only,
        **dict(tokenizer.special_tokens_map),
    )
    bos = tokenizer.bos_token
    if bos and tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id]:
        for i, text in enumerate(texts):
            if text.startswith(bos):
                texts[i] = text[len(bos) :]
                if completions_only:
                    spans[i] = [(max(a - len(bos), 0), max(b - len(bos), 0)) for a, b in spans[i]]
    encoded = tokenizer(texts, return_offsets_mapping=True, return_attention_mask=False)
    labels = []
    for i, ids in enumerate(encoded["input_ids"]):
        if not completions_only:
            labels.append(list(ids))
            continue
        row = []
        for token, (start, end) in zip(ids, encoded["offset_mapping"][i], strict=True):
            trained = end > start and any(
                start < span_end and end > span_start for span_start, span_end in spans[i]
            )
            row.append(token if trained else IGNORE_INDEX)
        labels.append(row)
    return {"input_ids": encoded["input_ids"], "labels": labels}


@pytest.mark.parametrize("name", list(TRAINED))
@pytest.mark.parametrize("completions_only", [True, False])
def test_two_thousand_conversations_encode_exactly_as_transformers_helper_and_a_token_loop_do(
    built, name, completions_only
):
    """The fast path (compiled template, Rust batch tokenising, flat arrays) changes no id and no label."""
    from ftconfig.tools.bench._common import conversations as generated

    tokenizer, setup = built(name)
    rows = [row["messages"] for row in generated(2000, seed=3)]
    rows += [SYSTEM_USER_ASSISTANT, TWO_EXCHANGES]
    rows += [[{"role": "user", "content": " Q "}, {"role": "assistant", "content": "  \n"}]]
    rows += [
        [{"role": "user", "content": "ünïcødé ✓"}, {"role": "assistant", "content": "日本語 <|im_end|> </s>"}]
    ]
    encoded = encode_conversations(tokenizer, setup, rows, completions_only=completions_only)
    expected = _reference_encoding(tokenizer, rows, completions_only)
    assert encoded["input_ids"] == expected["input_ids"]
    assert encoded["labels"] == expected["labels"]
    assert any(label != IGNORE_INDEX for label in encoded["labels"][0])


_SCOPED_TEMPLATE = (
    "{% set ns = namespace(turns=0) %}{% set sep = '\\n' %}"
    "{% for message in messages %}{% set ns.turns = ns.turns + 1 %}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{% else %}{{ message['role'] + ': ' + message['content'] }}{% endif %}{% if not loop.last %}{{ sep }}{% endif %}"
    "{% endfor %}{{ '#' ~ ns.turns }}"
)


@pytest.mark.parametrize("jinja", ["named", _SCOPED_TEMPLATE])
def test_templates_render_in_one_call_only_where_exact_and_otherwise_one_by_one(built, data_dir, jinja):
    """ftconfig's templates render a whole batch in one template call; a template with top-level `set` (scoping
    would change inside the batch loop) renders conversation by conversation; both equal transformers."""
    import copy

    from ftconfig.runtime.data import _render

    tokenizer, setup = built("chat-ml")
    if jinja != "named":
        tokenizer = copy.deepcopy(tokenizer)
        tokenizer.chat_template = jinja
    batch_template = _render._compile(tokenizer.get_chat_template())[1]
    assert (batch_template is not None) == (jinja == "named")
    rows = [*_conversations(data_dir, 300), SYSTEM_USER_ASSISTANT, TWO_EXCHANGES]
    encoded = encode_conversations(tokenizer, setup, rows, completions_only=True)
    assert encoded == _reference_encoding(tokenizer, rows, completions_only=True)
