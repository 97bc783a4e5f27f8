"""Overhead benchmark: `ftrun` against a minimal hand-written TRL SFTTrainer script doing the same run.

Same tiny model, data (examples/data/train.jsonl), template (the tokenizer's own, with {% generation %}
markers), completions-only loss, LoRA, steps, batch, learning rate and seed. Each command runs in a fresh
process with fresh caches (cold: ftconfig's prepared-data cache and datasets' cache both empty) and then again
with the caches its first run left (warm). The table shows the median wall time and the median CPU time (user +
system of the child; steadier than wall time on a shared machine) and their ratios to the script (target ≤
1.05); then both loss curves and their largest difference.

The script comes in two forms. `plain` is what a TRL user writes: the messages dataset with
assistant_only_loss=True. `aligned` differs in one line, the template: it also writes the tokenizer's BOS
first and EOS last, which ftconfig's tokenisation adds (the tokenizer is loaded with add_bos_token and
add_eos_token; TRL's chat tokenisation adds no special tokens). With that line the two runs see identical
token ids and labels.

Run: OMP_NUM_THREADS=1 python -m ftconfig.tools.bench.overhead [--runs N] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from ftconfig.tools._paths import EXAMPLES_DIR
from ftconfig.tools.bench._common import TINY_MODEL, machine_line, print_table

__all__ = ["main"]

TARGET_RATIO = 1.05
BATCH = 8
MAX_LENGTH = 256

TRL_SCRIPT = '''\
"""A minimal hand-written TRL run: the same model, data, template, steps and batch as the ftrun config."""

import json
import sys

from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

model_dir, data_file, output_dir, steps, form = sys.argv[1:6]
tokenizer = AutoTokenizer.from_pretrained(model_dir)
tokenizer.pad_token = tokenizer.bos_token  # the tiny tokenizer has no pad token (ftconfig: bos-repurpose)
if form == "aligned":  # frame each example with BOS and EOS, as ftconfig's tokenisation does
    tokenizer.chat_template = "{{ bos_token }}" + tokenizer.chat_template + "{{ eos_token }}"
model = AutoModelForCausalLM.from_pretrained(model_dir)
dataset = load_dataset("json", data_files=data_file, split="train")
args = SFTConfig(
    output_dir=output_dir,
    max_steps=int(steps),
    per_device_train_batch_size=BATCH,
    learning_rate=3e-3,
    logging_steps=1,
    seed=7,
    bf16=False,
    gradient_checkpointing=False,
    assistant_only_loss=True,
    max_length=MAX_LENGTH,
    save_strategy="no",
    report_to="none",
    disable_tqdm=True,
    use_cpu=True,
)
peft_config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
trainer = SFTTrainer(
    model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
)
trainer.train()
trainer.save_model(f"{output_dir}/checkpoint-final")
losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
with open(f"{output_dir}/losses.json", "w") as handle:
    json.dump(losses, handle)
'''.replace("BATCH", str(BATCH)).replace("MAX_LENGTH", str(MAX_LENGTH))


def _ftrun_config(output_dir: Path, data_file: Path, steps: int) -> dict[str, Any]:
    return {
        "data_conf": {
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": str(data_file)}]},
            "validation_data": {"type": "NONE"},
            "chat_template_name": "keep-original",
        },
        "training_args": {
            "output_dir": str(output_dir),
            "learning_rate": 3e-3,
            "max_steps": steps,
            "logging_steps": 1,
            "save_strategy": "no",
            "report_to": "none",
            "seed": 7,
            "disable_tqdm": True,
        },
        "batchsize_conf": {"total_train_batch_size": BATCH, "max_per_device_train_batch_size": BATCH},
        "peft_conf": {
            "peft_type": "LORA",
            "peft_kwargs": {"r": 8, "lora_alpha": 16, "target_modules": "all-linear"},
        },
        "run_conf": {"model": str(TINY_MODEL)},
        "sft_args": {"max_seq_length": MAX_LENGTH, "train_on_completions_only": True},
    }


class _Bench:
    def __init__(self, work: Path, steps: int) -> None:
        self.work = work
        self.steps = steps
        self.data_file = EXAMPLES_DIR / "data" / "train.jsonl"
        self.script = work / "trl_sft.py"
        self.script.write_text(TRL_SCRIPT)
        self.count = 0

    def _env(self, cache: Path) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            HF_HUB_OFFLINE="1",
            HF_DATASETS_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
            HF_DATASETS_CACHE=str(cache / "hf-datasets"),
            FTCONFIG_CACHE_DIR=str(cache / "ftconfig"),
        )
        return env

    def run(self, kind: str, cache: Path) -> tuple[float, float, list[float]]:
        """One run in a fresh process: (wall seconds, CPU seconds, logged losses)."""
        self.count += 1
        output_dir = self.work / f"{kind}-{self.count}"
        if kind == "ftrun":
            config = self.work / f"ftrun-{self.count}.yaml"
            config.write_text(yaml.safe_dump(_ftrun_config(output_dir, self.data_file, self.steps)))
            command = [sys.executable, "-m", "ftconfig", str(config)]
        else:
            form = kind.removeprefix("trl-")
            command = [sys.executable, str(self.script), str(TINY_MODEL), str(self.data_file)]
            command += [str(output_dir), str(self.steps), form]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(command, env=self._env(cache), capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        if done.returncode != 0:
            raise SystemExit(f"{kind} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        if kind == "ftrun":
            history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
            losses = [entry["loss"] for entry in history if "loss" in entry]
        else:
            losses = json.loads((output_dir / "losses.json").read_text())
        return wall, cpu, losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each command per round (median shown)")
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    bench = _Bench(Path(tempfile.mkdtemp(prefix="ftconfig-bench-overhead-")), args.steps)
    kinds = ["ftrun", "trl-plain", "trl-aligned"]
    walls: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    losses: dict[str, list[float]] = {}
    for index in range(args.runs):  # interleaved, so that a busy moment of the machine hits every command
        for kind in kinds:
            cache = bench.work / f"cache-{kind}-{index}"
            for mode in ("cold", "warm"):  # warm: the caches the cold run left, as when a config is rerun
                wall, cpu, losses[kind] = bench.run(kind, cache)
                walls.setdefault((kind, mode), []).append(wall)
                cpus.setdefault((kind, mode), []).append(cpu)
    print(machine_line())
    print(f"{args.steps} steps, batch {BATCH}, {args.runs} runs each (fresh process each; medians)")
    rows = []
    for kind in kinds:
        for mode in ("cold", "warm"):
            wall, cpu = statistics.median(walls[(kind, mode)]), statistics.median(cpus[(kind, mode)])
            base_wall = statistics.median(walls[("trl-aligned", mode)])
            base_cpu = statistics.median(cpus[("trl-aligned", mode)])
            rows.append(
                [
                    kind,
                    mode,
                    f"{wall:.2f}",
                    f"{min(walls[(kind, mode)]):.2f}",
                    f"{wall / base_wall:.3f}",
                    f"{cpu:.2f}",
                    f"{cpu / base_cpu:.3f}",
                ]
            )
    print_table(
        [
            "command",
            "caches",
            "wall s",
            "best wall s",
            f"wall ÷ trl-aligned (target ≤ {TARGET_RATIO})",
            "CPU s",
            "CPU ÷ trl-aligned",
        ],
        rows,
    )
    print()
    for kind in kinds:
        print(f"{kind:<12} losses: {', '.join(f'{loss:.4f}' for loss in losses[kind])}")
    for other in ("trl-plain", "trl-aligned"):
        diff = max(abs(a - b) for a, b in zip(losses["ftrun"], losses[other], strict=True))
        print(f"max |ftrun - {other}| over {len(losses['ftrun'])} logged losses: {diff:.3g}")


if __name__ == "__main__":
    main()
