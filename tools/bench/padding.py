"""Padding benchmark: pad tokens per batch and real (non-pad) tokens/s on a length-skewed dataset, padded vs packed.

The data is mostly short chats plus a tenth of long ones (tools/bench/_common.skewed_conversations). Every row
trains the tiny model through the real run (`ftconfig.runtime.training._run.train`) for about the same number of real
tokens; the collator ftconfig builds is wrapped to count, per batch, the positions the model computes and the
real tokens among them. tokens/s = real tokens / train_runtime. Rows: padded batches (each padded to its longest
example), packing with the layout ftconfig picks for sdpa ("rows": one row per pack), and packing forced to
the padding-free layout (every example of the batch in one row) that flash attention gets.

Run: OMP_NUM_THREADS=1 python -m ftconfig.tools.bench.padding [--examples N] [--tokens N] [--repeats N]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from ftconfig.tools.bench._common import (
    machine_line,
    print_table,
    quiet_libraries,
    skewed_conversations,
    tiny_config,
    write_jsonl,
)

__all__ = ["TARGET_SPEEDUP", "main", "measure", "skewed_document"]

TARGET_SPEEDUP = 1.5
BATCH = 8


class Measured:
    """What one training run computed: per batch, the positions (batch x width) and the real tokens."""

    def __init__(self) -> None:
        self.positions: list[int] = []
        self.real: list[int] = []
        self.seconds = 0.0

    @property
    def real_tokens_per_second(self) -> float:
        return sum(self.real) / self.seconds

    @property
    def pad_fractions(self) -> list[float]:
        return [1 - real / positions for real, positions in zip(self.real, self.positions, strict=True)]


@contextmanager
def _counting_collators(measured: Measured, layout: str | None) -> Iterator[None]:
    """Wrap the collators the run builds so that every batch is counted; optionally force a packed layout."""
    from ftconfig.runtime.data import _collator

    def counting(build: Callable[..., Any]) -> Callable[..., Any]:
        def builder(*args: Any, **kwargs: Any) -> Any:
            if layout is not None and "layout" in kwargs:
                kwargs["layout"] = layout
            collate = build(*args, **kwargs)

            def counted(features: Any) -> Any:
                batch = collate(features)
                measured.positions.append(int(batch["input_ids"].numel()))
                measured.real.append(sum(len(feature["input_ids"]) for feature in features))
                return batch

            return counted

        return builder

    with (
        mock.patch.object(_collator, "build_data_collator", counting(_collator.build_data_collator)),
        mock.patch.object(_collator, "build_packed_collator", counting(_collator.build_packed_collator)),
    ):
        yield


def measure(document: dict[str, Any], cache_dir: Path, *, layout: str | None = None) -> Measured:
    """Train the config through the real run and count what its batches held; `layout` forces a packed layout."""
    from ftconfig.runtime import load_config
    from ftconfig.runtime.training._run import RunOptions, train

    measured = Measured()
    with _counting_collators(measured, layout):
        result = train(load_config(document), RunOptions(cache_dir=cache_dir, overwrite=True))
    measured.seconds = float(result.metrics["train_runtime"])
    return measured


def skewed_document(
    train_path: Path, output_dir: Path, *, packing: bool, steps: int, max_seq_length: int
) -> dict[str, Any]:
    """The benchmark's run: the tiny model, completions-only chat-ml, batch 8, `steps` steps."""
    return tiny_config(
        train_path,
        output_dir,
        sft_args={"max_seq_length": max_seq_length, "packing": packing, "train_on_completions_only": True},
        training_args={"max_steps": steps, "logging_steps": steps},
        batchsize_conf={"total_train_batch_size": BATCH, "max_per_device_train_batch_size": BATCH},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=4000, help="conversations in the skewed dataset")
    parser.add_argument("--tokens", type=int, default=60_000, help="real tokens each row trains on (about)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per row; the best is shown")
    parser.add_argument("--max-seq-length", type=int, default=512)
    args = parser.parse_args()

    import numpy as np

    from ftconfig.runtime import load_config
    from ftconfig.runtime.data._collator import pack_examples
    from ftconfig.runtime.training._run import RunOptions, prepare_run

    quiet_libraries()
    work = Path(tempfile.mkdtemp(prefix="ftconfig-bench-padding-"))
    train_path = write_jsonl(work / "skewed.jsonl", skewed_conversations(args.examples, seed=0))
    cache_dir = work / "cache"

    def document(packing: bool, steps: int) -> dict[str, Any]:
        return skewed_document(
            train_path, work / "out", packing=packing, steps=steps, max_seq_length=args.max_seq_length
        )

    # The real preparation once (cached for the runs), for the length profile and the step counts.
    prepared = prepare_run(load_config(document(False, 1)), RunOptions(cache_dir=cache_dir), world_size=1)
    lengths = np.asarray(prepared.data.train.with_format("numpy", columns=["length"])[:]["length"])
    packs = pack_examples(lengths, args.max_seq_length)
    pack_tokens = np.asarray([lengths[pack].sum() for pack in packs])
    steps_padded = math.ceil(args.tokens / (BATCH * lengths.mean()))
    steps_packed = math.ceil(args.tokens / (BATCH * pack_tokens.mean()))
    print(machine_line())
    print(
        f"dataset: {len(lengths)} examples kept ({prepared.data.dropped_train} longer than "
        f"{args.max_seq_length} dropped), tokens per example: median {int(np.median(lengths))}, "
        f"mean {lengths.mean():.0f}, p90 {int(np.percentile(lengths, 90))}, max {lengths.max()}; "
        f"{len(packs)} packs (mean fill {pack_tokens.mean() / args.max_seq_length:.1%}); batch {BATCH}"
    )

    cases = [
        ("padded (no packing)", False, None, steps_padded),
        ("packing, rows layout (sdpa default)", True, None, steps_packed),
        ("packing, padding-free layout (forced)", True, "padding-free", steps_packed),
    ]
    results = []
    for label, packing, layout, steps in cases:
        runs = [measure(document(packing, steps), cache_dir, layout=layout) for _ in range(args.repeats)]
        results.append((label, steps, max(runs, key=lambda run: run.real_tokens_per_second)))
    baseline = results[0][2].real_tokens_per_second
    rows = []
    for label, steps, run in results:
        rows.append(
            [
                label,
                steps,
                sum(run.real),
                sum(run.positions),
                f"{statistics.mean(run.pad_fractions):.1%}",
                f"{max(run.pad_fractions):.1%}",
                f"{run.seconds:.2f}",
                f"{run.real_tokens_per_second:,.0f}",
                f"{run.real_tokens_per_second / baseline:.2f}×",
            ]
        )
    print_table(
        [
            "batches",
            "steps",
            "real tokens",
            "positions computed",
            "pad/batch mean",
            "pad/batch max",
            "train s",
            "real tokens/s",
            f"vs padded (target ≥ {TARGET_SPEEDUP})",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
