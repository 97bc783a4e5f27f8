"""Shared benchmark helpers: the machine line, tables, seeded chat data, a config for the tiny model."""

from __future__ import annotations

import datetime
import json
import os
import platform
import random
import resource
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ftconfig.tools._paths import EXAMPLES_DIR
from ftconfig.tools.build_tiny_model import make_conversation, tiny_run_document

__all__ = [
    "TINY_MODEL",
    "conversations",
    "machine_line",
    "peak_rss_mib",
    "print_table",
    "quiet_libraries",
    "skewed_conversations",
    "tiny_config",
    "write_jsonl",
]

TINY_MODEL = EXAMPLES_DIR / "tiny-llama"


def machine_line() -> str:
    """Date, CPU, cores and load: the context every benchmark table is printed with."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    return (
        f"{datetime.date.today().isoformat()} · {cpu} · {os.cpu_count()} cores · load {load} · "
        f"OMP_NUM_THREADS={threads} · Python {platform.python_version()}"
    )


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A Markdown table (pastes straight into docs/performance.md)."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(header), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def quiet_libraries() -> None:
    """No progress bars or info chatter from datasets/transformers in benchmark output."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # unannotated upstream
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # unannotated upstream


def conversations(count: int, *, seed: int) -> list[dict[str, Any]]:
    """`count` chat rows from the tiny model's generator (the same kinds of rows as examples/data)."""
    rng = random.Random(seed)
    return [make_conversation(rng) for _ in range(count)]


def skewed_conversations(count: int, *, seed: int, long_fraction: float = 0.1) -> list[dict[str, Any]]:
    """Mostly short conversations plus a `long_fraction` of long ones (12-24 exchanges, 300-500 tokens)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        row = make_conversation(rng)
        if rng.random() < long_fraction:
            messages = [m for m in row["messages"] if m["role"] != "system"]
            while len(messages) < rng.randrange(24, 48):
                messages += [m for m in make_conversation(rng)["messages"] if m["role"] != "system"]
            row = {"messages": messages}
        rows.append(row)
    return rows


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def tiny_config(train_path: Path, output_dir: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """The shared tiny-model config, on `train_path`, logging every step, completions only, 512 tokens."""
    defaults: dict[str, dict[str, Any]] = {
        "data_conf": {"training_data": {"type": "CONCATENATION", "datasets": [{"path": str(train_path)}]}},
        "training_args": {"logging_steps": 1},
        "sft_args": {"max_seq_length": 512, "train_on_completions_only": True},
    }
    for section, values in sections.items():
        defaults[section] = {**defaults.get(section, {}), **values}
    return tiny_run_document(output_dir, EXAMPLES_DIR, **defaults)
