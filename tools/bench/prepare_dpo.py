"""DPO data preparation benchmark: rendering + tokenising preference rows, ftconfig against TRL.

The data: N preference rows (default 20,000) from tools/build_tiny_model.make_preference, seeded, as JSONL.
The tokenizer: the tiny one with the chat-ml template installed by ftconfig's build_tokenizer.

Each row of the table runs in a fresh process, twice (the faster run is shown); only the preparation is timed, as
wall and CPU time, and the peak RSS is read with getrusage (Δ = above the process's peak before preparing).
- ftconfig rows use the real path, `runtime.data._preference.prepare_preferences` (read + check the JSONL, render
  prompt / prompt + chosen / prompt + rejected in batches, one tokenizer call per batch, split at the prompt's end),
  without its cache, with an empty cache (prepare + store) and again with that cache.
- The TRL row is TRL's own preparation, `DPOTrainer._prepare_dataset` on conversational `prompt`/`chosen`/
  `rejected` rows already in a `Dataset` (apply_chat_template three times per row, common-prefix split).
Before the table, the outputs are compared: prompt + answer ids must be the same tokens.

Run: OMP_NUM_THREADS=1 python -m ftconfig.tools.bench.prepare_dpo [--rows N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

from ftconfig.tools.bench._common import machine_line, peak_rss_mib, print_table, quiet_libraries, write_jsonl

MAX_LENGTH = 512
MODES = {
    "ftconfig-nocache": "ftconfig prepare_preferences, no cache",
    "ftconfig-cold": "ftconfig prepare_preferences, empty cache (prepare + store)",
    "ftconfig-warm": "ftconfig prepare_preferences, second run (cache hit)",
    "trl-dataset": "TRL DPOTrainer._prepare_dataset, rows already in a Dataset",
}


__all__ = ["main", "preference_rows"]


def preference_rows(count: int, *, seed: int) -> list[dict[str, Any]]:
    from ftconfig.tools.build_tiny_model import make_preference

    rng = random.Random(seed)
    return [make_preference(rng) for _ in range(count)]


def _config(data_file: Path, work: Path) -> Any:
    from ftconfig.runtime import load_config
    from ftconfig.tools._paths import EXAMPLES_DIR
    from ftconfig.tools.build_tiny_model import tiny_dpo_document

    document = tiny_dpo_document(work / "out", EXAMPLES_DIR, training_args={"max_length": MAX_LENGTH})
    document["data_conf"]["training_data"]["datasets"] = [{"path": str(data_file)}]
    return load_config(document)


def _trl_prepare(rows: list[dict[str, Any]], tokenizer: Any) -> Any:
    """TRL's own preparation of a conversational preference dataset, nothing else of the trainer."""
    import datasets
    from trl import DPOConfig, DPOTrainer  # type: ignore[attr-defined]  # trl's __init__ exports lazily

    dataset = datasets.Dataset.from_list(
        [
            {
                "prompt": r["prompt_messages"],
                "chosen": r["chosen_messages"],
                "rejected": r["rejected_messages"],
            }
            for r in rows
        ]
    )
    args = DPOConfig(output_dir=tempfile.mkdtemp(), max_length=MAX_LENGTH, use_cpu=True, report_to="none")
    trainer = types.SimpleNamespace(_tokenizer=tokenizer)
    return DPOTrainer._prepare_dataset(trainer, dataset, tokenizer, args, "train")  # type: ignore[arg-type]


def _child(mode: str, data_file: Path, work: Path) -> dict[str, Any]:
    """One measurement, in this (fresh) process."""
    from ftconfig.runtime.data._preference import prepare_preferences
    from ftconfig.runtime.data._tokenizer import build_tokenizer

    quiet_libraries()
    config = _config(data_file, work)
    tokenizer, setup = build_tokenizer(config.run_conf, config.data_conf)
    rows = None
    if mode == "trl-dataset":
        with data_file.open(encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle]
    before = peak_rss_mib()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    if rows is None:
        cache_dir = None if mode == "ftconfig-nocache" else work / "ftconfig-cache"
        prepared = prepare_preferences(config, tokenizer, setup, cache_dir=cache_dir)
        examples = len(prepared.train)
        if mode == "ftconfig-warm" and not prepared.cache_hit:
            raise SystemExit("the second run missed the cache")
    else:
        examples = len(_trl_prepare(rows, tokenizer))
    seconds = time.perf_counter() - start
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "seconds": seconds,
        "cpu": cpu.ru_utime + cpu.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime,
        "examples": examples,
        "peak_mib": peak_rss_mib(),
        "delta_mib": peak_rss_mib() - before,
    }


def _compare(data_file: Path, work: Path, count: int) -> str:
    """prompt + chosen and prompt + rejected ids of the first `count` rows, ftconfig against TRL."""
    from ftconfig.runtime.data._preference import encode_preferences
    from ftconfig.runtime.data._tokenizer import build_tokenizer

    quiet_libraries()
    config = _config(data_file, work)
    tokenizer, _ = build_tokenizer(config.run_conf, config.data_conf)
    with data_file.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for _, line in zip(range(count), handle, strict=False)]
    ours = encode_preferences(
        tokenizer,
        [r["prompt_messages"] for r in rows],
        [r["chosen_messages"] for r in rows],
        [r["rejected_messages"] for r in rows],
    )
    theirs = _trl_prepare(rows, tokenizer)
    same = 0
    for index in range(len(rows)):
        mine = [ours["prompt_ids"][index] + ours[f"{side}_ids"][index] for side in ("chosen", "rejected")]
        trl = [theirs[index]["prompt_ids"] + theirs[index][f"{side}_ids"] for side in ("chosen", "rejected")]
        # ftconfig frames each sequence with the tokenizer's BOS and EOS; TRL's chat path adds neither.
        same += all(
            ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id and ids[1:-1] == other
            for ids, other in zip(mine, trl, strict=True)
        )
    return f"first {len(rows)} rows: ftconfig prompt+answer ids = BOS + TRL's + EOS for {same} (both answers)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each row; the fastest is shown")
    parser.add_argument("--child", choices=sorted(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.data, args.work)))
        return

    work = Path(tempfile.mkdtemp(prefix="ftconfig-bench-prepare-dpo-"))
    data_file = write_jsonl(work / "preferences.jsonl", preference_rows(args.rows, seed=0))
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    results: dict[str, dict[str, Any]] = {}
    for repeat in range(args.repeats):
        caches = work / f"repeat-{repeat}"  # each repeat starts with empty caches, its warm row reuses them
        for mode in MODES:
            command = [sys.executable, "-m", "ftconfig.tools.bench.prepare_dpo", "--child", mode]
            command += ["--data", str(data_file), "--work", str(caches)]
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            if mode not in results or result["seconds"] < results[mode]["seconds"]:
                results[mode] = result
    print(machine_line())
    print(_compare(data_file, work, 2000))
    trl = results["trl-dataset"]
    table = []
    for mode, label in MODES.items():
        result = results[mode]
        table.append(
            [
                label,
                result["examples"],
                f"{result['seconds']:.2f}",
                f"{args.rows / result['seconds']:,.0f}",
                f"{trl['seconds'] / result['seconds']:.2f}",
                f"{result['cpu']:.2f}",
                f"{trl['cpu'] / max(result['cpu'], 1e-9):.2f}",
                f"{result['peak_mib']:.0f}",
                f"{result['delta_mib']:.0f}",
            ]
        )
    print_table(
        [
            f"preparation of {args.rows:,} preference rows",
            "examples",
            "wall s",
            "rows/s",
            "throughput ÷ TRL",
            "CPU s",
            "CPU-throughput ÷ TRL",
            "peak RSS MiB",
            "Δ RSS MiB",
        ],
        table,
    )


if __name__ == "__main__":
    main()
