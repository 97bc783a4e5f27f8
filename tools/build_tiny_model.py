"""Build the tiny Llama model, tokenizer, chat datasets and preference dataset that tests and the quickstart use,
offline.

Nothing can be downloaded here, so the project makes its own: a byte-level BPE tokenizer trained on the bundled
chat data (BOS/EOS/UNK, deliberately no pad token, so the missing-pad-token strategies matter), and a randomly
initialised 2-layer Llama saved with `save_pretrained`. Everything is seeded: two builds give identical files.

Run: python -m ftconfig.tools.build_tiny_model [--out examples]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

__all__ = [
    "CAPITALS",
    "COLOURS",
    "OWN_CHAT_TEMPLATE",
    "SEED",
    "SPECIAL_TOKENS",
    "SYSTEM_PROMPT",
    "VOCAB_SIZE",
    "build",
    "build_model",
    "build_tokenizer",
    "main",
    "make_conversation",
    "make_datasets",
    "make_preference",
    "tiny_dpo_document",
    "tiny_run_document",
]

SEED = 1234
VOCAB_SIZE = 512
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]
SYSTEM_PROMPT = "You are a concise assistant."
# The tokenizer's own template (used by chat_template_name: keep-original). It has {% generation %} markers so
# completions-only training works with it, and uses only tokens the vocabulary already has.
OWN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '### Assistant:\\n' }}{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{ '### ' + message['role'] | capitalize + ':\\n' + message['content'] + '\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Assistant:\\n' }}{% endif %}"
)
CAPITALS = {
    "France": "Paris",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Finland": "Helsinki",
    "Sweden": "Stockholm",
    "Norway": "Oslo",
    "Germany": "Berlin",
    "Poland": "Warsaw",
    "Austria": "Vienna",
    "Greece": "Athens",
    "Portugal": "Lisbon",
    "Ireland": "Dublin",
    "Japan": "Tokyo",
    "Egypt": "Cairo",
    "Peru": "Lima",
    "Kenya": "Nairobi",
    "Canada": "Ottawa",
    "Chile": "Santiago",
    "Cuba": "Havana",
    "Iceland": "Reykjavik",
}
PREFERENCE_ROWS = 160
COLOURS = ["red", "green", "blue", "yellow", "black", "white", "orange", "purple", "brown", "grey"]


def _exchange(rng: random.Random) -> tuple[str, str]:
    """One user question and its answer, from a few learnable task families."""
    kind = rng.randrange(4)
    if kind == 0:
        a, b = rng.randrange(1, 50), rng.randrange(1, 50)
        return f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."
    if kind == 1:
        country = rng.choice(sorted(CAPITALS))
        return f"What is the capital of {country}?", f"The capital of {country} is {CAPITALS[country]}."
    if kind == 2:
        words = rng.sample(COLOURS, rng.randrange(3, 6))
        return "Reverse the words: " + " ".join(words), " ".join(reversed(words))
    start = rng.randrange(1, 20)
    stop = start + rng.randrange(2, 7)
    return f"Count from {start} to {stop}.", ", ".join(str(n) for n in range(start, stop + 1)) + "."


def make_conversation(rng: random.Random) -> dict[str, Any]:
    messages: list[dict[str, str]] = []
    if rng.random() < 0.5:
        messages.append({"role": "system", "content": SYSTEM_PROMPT})
    for _ in range(1 if rng.random() < 0.7 else 2):
        question, answer = _exchange(rng)
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"messages": messages}


def _preference_pair(rng: random.Random) -> tuple[str, str, str]:
    """A question, its right answer (chosen) and a wrong one of the same form (rejected): a learnable rule."""
    kind = rng.randrange(3)
    if kind == 0:
        a, b = rng.randrange(1, 50), rng.randrange(1, 50)
        wrong = a + b + rng.choice([-3, -2, -1, 1, 2, 3])
        return f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.", f"{a} plus {b} is {wrong}."
    if kind == 1:
        country, other = rng.sample(sorted(CAPITALS), 2)
        question = f"What is the capital of {country}?"
        return (
            question,
            f"The capital of {country} is {CAPITALS[country]}.",
            f"The capital of {country} is {CAPITALS[other]}.",
        )
    words = rng.sample(COLOURS, rng.randrange(3, 6))
    return "Reverse the words: " + " ".join(words), " ".join(reversed(words)), " ".join(words)


def make_preference(rng: random.Random) -> dict[str, Any]:
    """One DPO row: {"prompt_messages", "chosen_messages", "rejected_messages"} (+ an id)."""
    question, chosen, rejected = _preference_pair(rng)
    prompt = [{"role": "system", "content": SYSTEM_PROMPT}] if rng.random() < 0.5 else []
    prompt.append({"role": "user", "content": question})
    return {
        "prompt_messages": prompt,
        "chosen_messages": [{"role": "assistant", "content": chosen}],
        "rejected_messages": [{"role": "assistant", "content": rejected}],
    }


def make_preferences(rng: random.Random, count: int = PREFERENCE_ROWS) -> list[dict[str, Any]]:
    return [{"id": f"pref-{index}", **make_preference(rng)} for index in range(count)]


def make_datasets(rng: random.Random) -> dict[str, list[dict[str, Any]]]:
    return {
        "train.jsonl": [make_conversation(rng) for _ in range(400)],
        "valid.jsonl": [make_conversation(rng) for _ in range(40)],
        "extra.jsonl": [make_conversation(rng) for _ in range(120)],
    }


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def _training_texts(datasets: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Texts the BPE learns from: the conversations plus the markers of every template ftconfig ships."""
    texts = []
    for rows in datasets.values():
        for row in rows:
            texts += [f"{message['role']}\n{message['content']}" for message in row["messages"]]
    markers = [
        "### User:",
        "### Assistant:",
        "### System:",
        "[INST]",
        "[/INST]",
        "<<SYS>>",
        "<</SYS>>",
        "system",
        "user",
        "assistant",
    ]
    return texts + markers * 20


def build_tokenizer(texts: list[str]) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(texts, trainer)
    bos_id = backend.token_to_id("<s>")
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
    )
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]  # unannotated in transformers
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        chat_template=OWN_CHAT_TEMPLATE,
        model_max_length=512,
    )


def build_model(tokenizer: Any) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=None,
        tie_word_embeddings=True,
        dtype="float32",
    )
    return LlamaForCausalLM(config)


def build(out: Path) -> None:
    """Write out/data/*.jsonl (chats and preferences.jsonl) and out/tiny-llama/ (model + tokenizer)."""
    rng = random.Random(SEED)
    datasets = make_datasets(rng)
    (out / "data").mkdir(parents=True, exist_ok=True)
    for name, rows in datasets.items():
        _write_jsonl(out / "data" / name, rows)
    # Its own seed, after the chat data: the tokenizer and model do not depend on the preference rows.
    _write_jsonl(out / "data" / "preferences.jsonl", make_preferences(random.Random(SEED + 1)))
    tokenizer = build_tokenizer(_training_texts(datasets))
    model = build_model(tokenizer)
    target = out / "tiny-llama"
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def tiny_dpo_document(output_dir: Path, examples: Path, **sections: Any) -> dict[str, Any]:
    """The tiny run config as a DPO run on data/preferences.jsonl (no sft_args; `sections` as for the SFT one)."""
    document = tiny_run_document(output_dir, examples)
    del document["sft_args"]
    document["method"] = "dpo"
    document["data_conf"]["training_data"]["datasets"] = [{"path": str(examples / "data/preferences.jsonl")}]
    document["training_args"].update(learning_rate=5e-3, max_length=256, gradient_checkpointing=False)
    for section, values in sections.items():
        merge = section in ("data_conf", "training_args", "batchsize_conf", "run_conf")
        if merge and isinstance(document.get(section), dict):
            document[section] = {**document[section], **values}
        else:
            document[section] = values
    return document


def tiny_run_document(output_dir: Path, examples: Path, **sections: Any) -> dict[str, Any]:
    """A small, fast run config for the tiny model in `examples`, shared by tests and benchmarks.

    `sections` update the defaults: data_conf, training_args, batchsize_conf, run_conf and sft_args are merged
    key by key; any other section (peft_conf, quant_conf, tracking, ...) is replaced whole.
    """
    document: dict[str, Any] = {
        "data_conf": {
            "training_data": {
                "type": "CONCATENATION",
                "datasets": [{"path": str(examples / "data/train.jsonl")}],
            },
            "validation_data": {"type": "NONE"},
            "chat_template_name": "chat-ml",
        },
        "training_args": {
            "output_dir": str(output_dir),
            "learning_rate": 3e-3,
            "max_steps": 30,
            "logging_steps": 5,
            "save_strategy": "no",
            "report_to": "none",
            "seed": 7,
            "disable_tqdm": True,
        },
        "batchsize_conf": {"total_train_batch_size": 8, "max_per_device_train_batch_size": 8},
        "peft_conf": {
            "peft_type": "LORA",
            "peft_kwargs": {"r": 8, "lora_alpha": 16, "target_modules": "all-linear"},
        },
        "run_conf": {"model": str(examples / "tiny-llama")},
        "sft_args": {"max_seq_length": 256},
    }
    for section, values in sections.items():
        merge = section in ("data_conf", "training_args", "batchsize_conf", "run_conf", "sft_args")
        if merge and isinstance(document.get(section), dict):
            document[section] = {**document[section], **values}
        else:
            document[section] = values
    return document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("examples"), help="folder for tiny-llama/ and data/")
    build(parser.parse_args().out)


if __name__ == "__main__":
    main()
