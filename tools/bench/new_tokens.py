"""New-token benchmark: what an adapter run whose chat template adds tokens writes to disk, against the base.

For each model, the real run path builds the tokenizer with the chat-ml template (2 new tokens), loads the
model, grows its embeddings and attaches the shared tiny config's LoRA (r 8, all-linear)
(`ftconfig.runtime.training._run.prepare_run` and `_load_and_adapt_model`), then saves the adapter as every
checkpoint does. Beside it, the way the seed's system did it: the same LoRA with both embedding matrices in
`modules_to_save`, saved with PEFT's defaults, plus the grown base-model copy it wrote unasked. Sizes only:
they do not depend on training or on the machine's load.

Models: the shipped tiny model (vocabulary 512, hidden 64, tied embeddings) and a random Llama built here in a
temporary folder (vocabulary 32,000, hidden 768, 12 layers, untied embeddings; about 124M parameters).

The second table trains the random Llama for a few steps (batch 4 x 128 random ids that include the new
tokens, AdamW), each way in a fresh process: median step time, peak RSS and trainable parameters for LoRA alone
(no new tokens, the baseline), LoRA + the new rows (ftconfig), and LoRA + whole embedding copies (seed). Step
times are wall times on a shared machine: read the ratios.

Run: OMP_NUM_THREADS=1 python -m ftconfig.tools.bench.new_tokens
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ftconfig.tools.bench._common import TINY_MODEL, machine_line, peak_rss_mib, print_table, quiet_libraries

__all__ = ["build_random_llama", "main", "measure", "train_steps"]

WORDS = 32_000


def build_random_llama(target: Path) -> Path:
    """A random ~124M-parameter Llama with a 32,000-word tokenizer (word-level: sizes are what matter here)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>"]
    vocab = {token: index for index, token in enumerate(specials + [f"w{i}" for i in range(WORDS - 3)])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]  # unannotated in transformers
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


WAYS = {
    "lora": "LoRA only (no new tokens)",
    "rows": "LoRA + new rows (ftconfig)",
    "copies": "LoRA + embedding copies (seed)",
}


def train_steps(model_dir: Path, way: str, steps: int = 5) -> dict[str, float]:
    """In this process: build the model the given way, train `steps` steps, time them (the first is warm-up)."""
    import peft
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftconfig.runtime import load_config
    from ftconfig.runtime.model._embeddings import grow_embeddings
    from ftconfig.runtime.model._peft import apply_peft
    from ftconfig.tools._paths import EXAMPLES_DIR
    from ftconfig.tools.build_tiny_model import tiny_run_document

    torch.manual_seed(0)
    document = tiny_run_document(Path("unused"), EXAMPLES_DIR)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    vocabulary = len(tokenizer)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if way == "lora":
        wrapped = apply_peft(
            model,
            load_config(document).peft_conf,
            quantized=False,
            gradient_checkpointing=False,
            gradient_checkpointing_kwargs=None,
        )
    elif way == "rows":
        new_rows = grow_embeddings(model, tokenizer, [vocabulary, vocabulary + 1])
        wrapped = apply_peft(
            model,
            load_config(document).peft_conf,
            quantized=False,
            gradient_checkpointing=False,
            gradient_checkpointing_kwargs=None,
            new_rows=new_rows,
        )
    else:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
        lora = document["peft_conf"]["peft_kwargs"]
        config = peft.LoraConfig(task_type="CAUSAL_LM", modules_to_save=["embed_tokens", "lm_head"], **lora)
        wrapped = peft.get_peft_model(model, config)
    top = vocabulary if way == "lora" else len(tokenizer)
    input_ids = torch.randint(0, top, (4, 128), generator=torch.Generator().manual_seed(1))
    trainable = [p for p in wrapped.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    wrapped.train()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        loss = wrapped(input_ids=input_ids, labels=input_ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    return {
        "step_s": statistics.median(times[1:]),
        "peak_mib": peak_rss_mib(),
        "trainable": float(sum(p.numel() for p in trainable)),
    }


def _train_in_child(model_dir: Path, way: str) -> dict[str, float]:
    command = [sys.executable, "-m", "ftconfig.tools.bench.new_tokens", "--train", str(model_dir), way]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _mib(size: int) -> str:
    return f"{size / 2**20:.2f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"


def main() -> None:
    import warnings

    quiet_libraries()
    warnings.filterwarnings("ignore")  # PEFT's warnings about the seed-style save are the point, not news
    if sys.argv[1:2] == ["--train"]:
        print(json.dumps(train_steps(Path(sys.argv[2]), sys.argv[3])))
        return
    print(machine_line())
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        random_llama = build_random_llama(work / "random-llama")
        models = {
            "tiny (vocab 512, hidden 64, tied)": TINY_MODEL,
            "random Llama (vocab 32,000, hidden 768, untied)": random_llama,
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
        trained = {way: _train_in_child(random_llama, way) for way in WAYS}
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
    baseline = trained["lora"]
    print()
    print_table(
        ["random Llama, batch 4 x 128", "trainable params", "step (median)", "÷", "peak RSS", "÷"],
        [
            [
                label,
                f"{trained[way]['trainable'] / 1e6:.2f}M",
                f"{trained[way]['step_s']:.3f} s",
                f"{trained[way]['step_s'] / baseline['step_s']:.2f}",
                f"{trained[way]['peak_mib']:.0f} MiB",
                f"{trained[way]['peak_mib'] / baseline['peak_mib']:.2f}",
            ]
            for way, label in WAYS.items()
        ],
    )


if __name__ == "__main__":
    main()
