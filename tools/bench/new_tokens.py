"""New-token benchmark: what an adapter run whose chat template adds tokens writes to disk, against the base.

For each model, the real run path builds the tokenizer with the chat-ml template (2 new tokens), loads the
model, grows its embeddings and attaches the shared tiny config's LoRA (r 8, all-linear)
(`ftconfig.runtime.training._run.prepare_run` and `_load_and_adapt_model`), then saves the adapter as every
checkpoint does. Beside it, the way the seed's system did it: the same LoRA with both embedding matrices in
`modules_to_save`, saved with PEFT's defaults, plus the grown base-model copy it wrote unasked. Sizes only:
they do not depend on training or on the machine's load.

Models: the shipped tiny model (vocabulary 512, hidden 64, tied embeddings) and a random Llama built here in a
temporary folder (vocabulary 32,000, hidden 768, 12 layers, untied embeddings; about 124M parameters).

Run: OMP_NUM_THREADS=1 python -m ftconfig.tools.bench.new_tokens
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ftconfig.tools.bench._common import TINY_MODEL, machine_line, print_table, quiet_libraries

WORDS = 32_000


def build_random_llama(target: Path) -> Path:
    """A random ~124M-parameter Llama with a 32,000-word tokenizer (word-level: sizes are what matter here)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>"]
    vocab = {token: index for index, token in enumerate(specials + [f"w{i}" for i in range(WORDS - 3)])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    config = LlamaConfig(
        vocab_size=WORDS,
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
        dtype="float32",
    )
    LlamaForCausalLM(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def _size(folder: Path, name: str) -> int:
    return (folder / name).stat().st_size


def measure(model_dir: Path, work: Path) -> dict[str, Any]:
    """Sizes in bytes: base weights, ftconfig's adapter, and the seed's adapter and base copy."""
    import peft
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    from ftconfig.runtime import load_config
    from ftconfig.runtime.training._run import RunOptions, _load_and_adapt_model, prepare_run
    from ftconfig.tools._paths import EXAMPLES_DIR
    from ftconfig.tools.build_tiny_model import tiny_run_document

    document = tiny_run_document(work / "run", EXAMPLES_DIR, run_conf={"model": str(model_dir)})
    run = prepare_run(load_config(document), RunOptions(cache_dir=work / "cache"), world_size=1)
    model = _load_and_adapt_model(run, is_main=False)
    model.save_pretrained(str(work / "ftconfig"))  # what every checkpoint and checkpoint-final write
    params = sum(p.numel() for p in model.get_base_model().parameters())

    torch.manual_seed(0)
    seed_way = AutoModelForCausalLM.from_pretrained(model_dir)
    seed_way.resize_token_embeddings(len(run.tokenizer), mean_resizing=True)
    seed_way.save_pretrained(work / "new-basemodel")  # checkpoint-new-basemodel
    names = ["embed_tokens", "lm_head"]
    lora = document["peft_conf"]["peft_kwargs"]
    seed_adapter = peft.get_peft_model(
        seed_way, peft.LoraConfig(task_type="CAUSAL_LM", modules_to_save=names, **lora)
    )
    seed_adapter.save_pretrained(str(work / "seed"))

    with safe_open(str(work / "ftconfig" / "adapter_model.safetensors"), "pt") as handle:
        keys = list(handle.keys())
        row_bytes = sum(handle.get_tensor(key).nbytes for key in keys if "trainable_tokens_delta" in key)
    return {
        "rows": row_bytes,
        "params": params,
        "new_tokens": len(run.setup.new_token_ids),
        "base": _size(model_dir, "model.safetensors"),
        "ftconfig": _size(work / "ftconfig", "adapter_model.safetensors"),
        "seed_adapter": _size(work / "seed", "adapter_model.safetensors"),
        "seed_copy": _size(work / "new-basemodel", "model.safetensors"),
    }


def _mib(size: int) -> str:
    return f"{size / 2**20:.2f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"


def main() -> None:
    import warnings

    quiet_libraries()
    warnings.filterwarnings("ignore")  # PEFT's warnings about the seed-style save are the point, not news
    print(machine_line())
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        models = {
            "tiny (vocab 512, hidden 64, tied)": TINY_MODEL,
            "random Llama (vocab 32,000, hidden 768, untied)": build_random_llama(work / "random-llama"),
        }
        for label, model_dir in models.items():
            sizes = measure(model_dir, work / label.split()[0])
            seed_total = sizes["seed_adapter"] + sizes["seed_copy"]
            rows.append(
                [
                    f"{label}, {sizes['params'] / 1e6:.1f}M params, +{sizes['new_tokens']} tokens",
                    _mib(sizes["base"]),
                    f"{_mib(sizes['ftconfig'])} ({sizes['ftconfig'] / sizes['base']:.4f})",
                    _mib(sizes["rows"]),
                    f"{_mib(sizes['seed_adapter'])} ({sizes['seed_adapter'] / sizes['base']:.3f})",
                    f"{_mib(seed_total)} ({seed_total / sizes['base']:.2f})",
                ]
            )
    print_table(
        [
            "model",
            "base weights",
            "ftconfig adapter (÷ base)",
            "of which new rows",
            "seed-style adapter (÷ base)",
            "seed-style adapter + base copy (÷ base)",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
