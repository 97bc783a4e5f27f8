"""Data preparation benchmark: templating + tokenising + completions-only masking, ftconfig against TRL.

The data: N conversations (default 50,000) from tools/build_tiny_model.make_conversation, seeded, as JSONL.
The tokenizer: the tiny one with the chat-ml template installed by ftconfig's build_tokenizer (the template has
{% generation %} markers, so TRL's assistant_only_loss works on it unchanged).

Each row runs in a fresh process, twice (the faster run is shown); only the preparation is timed (imports and the
tokenizer come first), as wall and as CPU time (user + system of the process and its workers: steadier on a shared
machine), and the peak RSS is read with getrusage (Δ = above the process's peak before the preparation started).
- ftconfig rows use the real path, `runtime.data._prepare.prepare_data` (read + check the JSONL, render with the
  compiled template, tokenise in batches with the Rust tokenizer and mask into flat arrays with `ConversationEncoder`,
  Arrow columns, length filter), without its cache with one and with two worker processes, then with an empty
  cache (prepare + store) and again with that cache (the second run of the same config).
- TRL rows use TRL's own preparation, `SFTTrainer._prepare_dataset` with assistant_only_loss=True (tokenise
  per example via apply_chat_template, build labels, truncate, drop fully masked), on the rows already in a
  `Dataset` (one and two processes, `dataset_num_proc`); and from the JSONL through `datasets.load_dataset`, first
  run and again with datasets' cache.
Before the table, the outputs are compared for every named chat template: ids and trained tokens (labels) must be
identical inside the BOS/EOS frame ftconfig adds.

Run: OMP_NUM_THREADS=1 python -m ftconfig.tools.bench.prepare [--conversations N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

from ftconfig.tools.bench._common import (
    conversations,
    machine_line,
    peak_rss_mib,
    print_table,
    quiet_libraries,
    tiny_config,
    write_jsonl,
)

__all__ = ["main"]

MAX_SEQ_LENGTH = 512
MODES = {
    "ftconfig-nocache": "ftconfig prepare_data, no cache",
    "ftconfig-nocache-2": "ftconfig prepare_data, no cache, 2 workers",
    "ftconfig-cold": "ftconfig prepare_data, empty cache (prepare + store)",
    "ftconfig-warm": "ftconfig prepare_data, second run (cache hit)",
    "trl-dataset": "TRL _prepare_dataset, rows already in a Dataset",
    "trl-dataset-2": "TRL _prepare_dataset, rows already in a Dataset, 2 processes",
    "trl-json-cold": "TRL load_dataset(json) + _prepare_dataset, first run",
    "trl-json-warm": "TRL load_dataset(json) + _prepare_dataset, datasets' cache",
}


TEMPLATES = ("chat-ml", "mistral-with-system", "poro", "simplified-llama31", "keep-original")


def _config(data_file: Path, work: Path, template: str = "chat-ml") -> Any:
    from ftconfig.runtime import load_config

    document = tiny_config(
        data_file,
        work / "out",
        sft_args={"max_seq_length": MAX_SEQ_LENGTH},
        data_conf={"chat_template_name": template},
    )
    return load_config(document)


def _tokenizer(config: Any) -> tuple[Any, Any]:
    from ftconfig.runtime.data._tokenizer import build_tokenizer

    tokenizer, setup = build_tokenizer(config.run_conf, config.data_conf)
    return tokenizer, setup


def _trl_prepare(dataset: Any, tokenizer: Any, *, processes: int | None = None) -> Any:
    """TRL's own preparation of a conversational dataset, nothing else of the trainer."""
    from trl import SFTConfig, SFTTrainer  # type: ignore[attr-defined]  # trl exports lazily

    args = SFTConfig(
        output_dir=tempfile.mkdtemp(),
        assistant_only_loss=True,
        max_length=MAX_SEQ_LENGTH,
        use_cpu=True,
        bf16=False,
        report_to="none",
        dataset_num_proc=processes,
    )
    # The attributes _prepare_dataset reads from the trainer: the template has markers, so no training template.
    trainer = types.SimpleNamespace(_tokenizer=tokenizer, chat_template=None, completion_only_loss=False)
    # A namespace stands in for the trainer: _prepare_dataset reads only the attributes set above.
    return SFTTrainer._prepare_dataset(trainer, dataset, tokenizer, args, False, None, "train")  # type: ignore[arg-type]


def _cpu_seconds() -> float:
    """User + system time of this process and of its finished worker processes (2-worker rows)."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def _child(mode: str, data_file: Path, work: Path) -> dict[str, Any]:
    """One measurement, in this (fresh) process."""
    import datasets

    from ftconfig.runtime.data._prepare import prepare_data

    quiet_libraries()
    config = _config(data_file, work)
    tokenizer, setup = _tokenizer(config)
    rows = None
    if mode.startswith("trl-dataset"):
        with data_file.open(encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle]
    before = peak_rss_mib()
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    if mode.startswith("ftconfig"):
        cache_dir = None if mode.startswith("ftconfig-nocache") else work / "ftconfig-cache"
        workers = 2 if mode.endswith("-2") else 1
        prepared = prepare_data(config, tokenizer, setup, cache_dir=cache_dir, num_proc=workers)
        examples, tokens = len(prepared.train), prepared.train_tokens
        if mode == "ftconfig-warm" and not prepared.cache_hit:
            raise SystemExit("the second run missed the cache")
    else:
        if rows is not None:
            dataset = datasets.Dataset.from_list(rows)
        else:
            dataset = datasets.load_dataset(
                "json", data_files=str(data_file), split="train", cache_dir=str(work / "hf-cache")
            )
        prepared = _trl_prepare(dataset, tokenizer, processes=2 if mode.endswith("-2") else None)
        examples = len(prepared)
        tokens = int(sum(len(ids) for ids in prepared.with_format("arrow")["input_ids"].to_pylist()))
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "cpu": _cpu_seconds() - cpu_before,
        "examples": examples,
        "tokens": tokens,
        "peak_mib": peak_rss_mib(),
        "delta_mib": peak_rss_mib() - before,
    }


def _compare(data_file: Path, work: Path, count: int) -> list[str]:
    """Token ids and labels of the first `count` conversations, ftconfig against TRL, for every named template.

    ftconfig frames each example with the tokenizer's BOS and EOS (labels -100); TRL's chat path adds neither,
    but keeps a BOS that a template writes as text (simplified-llama31), which ftconfig turns into the one BOS.
    """
    import datasets

    from ftconfig.runtime.data._encode import encode_conversations

    quiet_libraries()
    with data_file.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for _, line in zip(range(count), handle, strict=False)]
    lines = []
    for template in TEMPLATES:
        config = _config(data_file, work, template)
        tokenizer, setup = _tokenizer(config)
        ours = encode_conversations(
            tokenizer, setup, [row["messages"] for row in rows], completions_only=True
        )
        theirs = _trl_prepare(datasets.Dataset.from_list(rows), tokenizer)
        bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
        same_ids = same_labels = 0
        for ids, labels, trl_ids, trl_labels in zip(
            ours["input_ids"], ours["labels"], theirs["input_ids"], theirs["labels"], strict=True
        ):
            if trl_ids[:1] == [bos]:
                trl_ids, trl_labels = trl_ids[1:], trl_labels[1:]
            framed = ids[0] == bos and ids[-1] == eos and labels[0] == labels[-1] == -100
            same_ids += framed and ids[1:-1] == trl_ids
            same_labels += framed and labels[1:-1] == trl_labels
        lines.append(
            f"{template}: ids equal for {same_ids}, labels equal for {same_labels} of {len(rows)} conversations"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each row; the fastest is shown")
    parser.add_argument("--child", choices=sorted(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.data, args.work)))
        return

    work = Path(tempfile.mkdtemp(prefix="ftconfig-bench-prepare-"))
    data_file = write_jsonl(work / "chats.jsonl", conversations(args.conversations, seed=0))
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    results: dict[str, dict[str, Any]] = {}
    for repeat in range(args.repeats):
        caches = work / f"repeat-{repeat}"  # each repeat starts with empty caches, its warm rows reuse them
        for mode in MODES:
            command = [sys.executable, "-m", "ftconfig.tools.bench.prepare", "--child", mode]
            command += ["--data", str(data_file), "--work", str(caches)]
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            if mode not in results or result["seconds"] < results[mode]["seconds"]:
                results[mode] = result
    print(machine_line())
    print("Output check, ftconfig against TRL inside ftconfig's BOS/EOS frame, first 2,000 conversations:")
    for line in _compare(data_file, work, 2000):
        print(f"- {line}")
    trl = results["trl-dataset"]
    rows = []
    for mode, label in MODES.items():
        result = results[mode]
        rows.append(
            [
                label,
                result["examples"],
                f"{result['tokens']:,}",
                f"{result['seconds']:.2f}",
                f"{args.conversations / result['seconds']:,.0f}",
                f"{trl['seconds'] / result['seconds']:.2f}",
                f"{result['cpu']:.2f}",
                f"{trl['cpu'] / max(result['cpu'], 1e-9):.2f}",
                f"{result['peak_mib']:.0f}",
                f"{result['delta_mib']:.0f}",
            ]
        )
    print_table(
        [
            f"preparation of {args.conversations:,} conversations",
            "examples",
            "tokens",
            "wall s",
            "conversations/s",
            "throughput ÷ TRL (Dataset)",
            "CPU s",
            "CPU-throughput ÷ TRL",
            "peak RSS MiB",
            "Δ RSS MiB",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
