"""Packing: examples share rows but never see each other, the trained tokens stay exactly the same, a packed run
trains end to end through ftrun, and it is faster than padding on length-skewed data."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ftconfig.runtime import ConfigError, load_config
from ftconfig.runtime.data._collator import build_packed_collator, pack_dataset, pack_examples, packed_layout
from ftconfig.runtime.data._encode import IGNORE_INDEX
from ftconfig.runtime.data._prepare import prepare_data
from ftconfig.runtime.data._tokenizer import build_tokenizer
from ftconfig.runtime.training._run import RunOptions, train
from tests.helpers import EXAMPLES, tiny_run_document

CAPACITY = 128


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory):
    """The shipped training data, prepared for completions-only chat-ml training (as a run prepares it)."""
    document = tiny_run_document(
        tmp_path_factory.mktemp("out"),
        sft_args={"max_seq_length": CAPACITY, "train_on_completions_only": True},
    )
    config = load_config(document)
    tokenizer, setup = build_tokenizer(config.run_conf, config.data_conf)
    data = prepare_data(config, tokenizer, setup, cache_dir=None)
    return tokenizer, setup, data.train


def segments(batch: dict[str, torch.Tensor]) -> list[tuple[int, int, int]]:
    """(row, start, end) of every example in a packed batch, read from where the position ids restart."""
    found = []
    for row, positions in enumerate(batch["position_ids"].tolist()):
        starts = [i for i, position in enumerate(positions) if position == 0] + [len(positions)]
        found += [(row, start, end) for start, end in itertools.pairwise(starts)]
    return found


def test_best_fit_decreasing_puts_each_example_in_the_tightest_pack() -> None:
    # Longest first: 6 opens a pack, 5 and 4 do not fit beside it, 3 fills 5's pack exactly, 2 fills 6's.
    assert pack_examples(np.array([4, 6, 2, 5, 3]), 8) == [[1, 2], [3, 4], [0]]


def test_every_example_lands_in_exactly_one_pack_within_capacity_and_packs_are_nearly_full() -> None:
    lengths = np.random.default_rng(0).integers(1, 100, 2000)
    packs = pack_examples(lengths, CAPACITY)
    assert sorted(index for pack in packs for index in pack) == list(range(2000))
    assert max(int(lengths[pack].sum()) for pack in packs) <= CAPACITY
    assert len(packs) <= math.ceil(lengths.sum() / CAPACITY) * 1.02
    assert pack_examples(lengths, CAPACITY) == packs
    with pytest.raises(ValueError, match="does not fit"):
        pack_examples(np.array([3, CAPACITY + 1]), CAPACITY)


def test_attention_implementations_get_a_layout_that_keeps_examples_apart_or_none() -> None:
    assert [packed_layout(name) for name in (None, "sdpa", "eager", "flex_attention")] == ["rows"] * 4
    assert (
        packed_layout("flash_attention_2") == packed_layout("kernels-community/flash-attn3") == "padding-free"
    )
    assert packed_layout("paged|sdpa") is None


@pytest.mark.parametrize("layout", ["rows", "padding-free"])
def test_packed_batches_train_exactly_the_tokens_of_the_unpacked_examples(prepared, layout: str) -> None:
    tokenizer, setup, examples = prepared
    packed = pack_dataset(examples, CAPACITY)
    packs = pack_examples(examples.with_format("numpy", columns=["length"])[:]["length"], CAPACITY)
    assert len(packed) == len(packs) < len(examples) / 2
    collate = build_packed_collator(tokenizer, setup, layout=layout)
    order = [index for pack in packs for index in pack]
    seen = []
    for first in range(0, len(packed), 4):
        batch = collate([packed[i] for i in range(first, min(first + 4, len(packed)))])
        assert "attention_mask" not in batch
        assert (batch["labels"][:, 0] == IGNORE_INDEX).all()
        found = segments(batch)
        covered = torch.zeros_like(batch["labels"], dtype=torch.bool)
        for row, start, end in found:
            if len(seen) == len(order) or end - start != examples[order[len(seen)]]["length"]:
                continue  # the padding at the end of a row
            example = examples[order[len(seen)]]
            assert batch["input_ids"][row, start:end].tolist() == example["input_ids"]
            # Targets are labels[1:]; the first label of each example is -100 (it would be predicted from the
            # previous example's last token), exactly the targets of the example trained alone.
            assert batch["labels"][row, start + 1 : end].tolist() == example["labels"][1:]
            assert batch["labels"][row, start] == IGNORE_INDEX
            covered[row, start:end] = True
            seen.append(order[len(seen)])
        assert (batch["labels"][~covered] == IGNORE_INDEX).all()  # padding never trains
    assert seen == order  # every example once, in pack order
    trained_packed = sum(
        int((collate([packed[i]])["labels"] != IGNORE_INDEX).sum()) for i in range(len(packed))
    )
    trained_alone = sum(sum(label != IGNORE_INDEX for label in row[1:]) for row in examples["labels"])
    assert trained_packed == trained_alone


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("layout", ["rows", "padding-free"])
def test_packed_examples_get_the_logits_of_separate_forwards(
    prepared, tiny_model_dir: Path, attn_implementation: str, layout: str
) -> None:
    from transformers import AutoModelForCausalLM

    tokenizer, setup, examples = prepared
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=attn_implementation)
    model.resize_token_embeddings(len(tokenizer))
    model.eval()
    subset = examples.select(range(24))
    packed = pack_dataset(subset, CAPACITY)
    batch = build_packed_collator(tokenizer, setup, layout=layout)([packed[i] for i in range(len(packed))])
    with torch.no_grad():
        logits = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).logits
        alone = {
            tuple(row["input_ids"]): model(
                input_ids=torch.tensor([row["input_ids"]]), use_cache=False
            ).logits[0]
            for row in subset
        }
    compared = 0
    for row, start, end in segments(batch):
        key = tuple(batch["input_ids"][row, start:end].tolist())
        if key in alone:
            torch.testing.assert_close(logits[row, start:end], alone[key], atol=1e-5, rtol=0)
            compared += 1
    assert compared == len(subset)
    # The check has teeth: with the model's cache on, transformers ignores the restarts and examples mix.
    with torch.no_grad():
        mixed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=True).logits
    assert not torch.allclose(mixed, logits, atol=1e-3)


@pytest.mark.slow
def test_packed_and_padded_runs_evaluate_the_same_loss_through_the_trainer(tmp_path: Path) -> None:
    """The whole path (packing, collator, SFTTrainer with the model's use_cache on): at step 0 the model is the
    same, so a validation loss over one batch must not depend on packing."""
    losses = {}
    for packing in (False, True):
        document = tiny_run_document(
            tmp_path / f"packing-{packing}",
            data_conf={
                "validation_data": {
                    "type": "CONCATENATION",
                    "datasets": [{"path": str(EXAMPLES / "data/valid.jsonl")}],
                }
            },
            training_args={
                "max_steps": 1,
                "eval_on_start": True,
                "eval_strategy": "steps",
                "eval_steps": 100,
            },
            batchsize_conf={
                "total_train_batch_size": 8,
                "max_per_device_train_batch_size": 8,
                "per_device_eval_batch_size": 64,
            },
            sft_args={"max_seq_length": 256, "train_on_completions_only": True, "packing": packing},
        )
        result = train(load_config(document), RunOptions())
        losses[packing] = next(entry["eval_loss"] for entry in result.log_history if "eval_loss" in entry)
    assert losses[True] == pytest.approx(losses[False], abs=1e-5)


@pytest.mark.slow
def test_ftrun_trains_a_packed_epoch_in_the_steps_its_dry_run_plans(tmp_path: Path) -> None:
    output_dir = tmp_path / "packed"
    config = tmp_path / "packed.yaml"
    document = tiny_run_document(
        output_dir,
        training_args={"max_steps": -1, "num_train_epochs": 1, "logging_steps": 1},
        sft_args={"max_seq_length": 256, "train_on_completions_only": True, "packing": True},
    )
    config.write_text(yaml.safe_dump(document))

    def ftrun(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "ftconfig", str(config), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)

    planned = ftrun("--dry-run", "--json")
    assert planned.returncode == 0, planned.stderr[-3000:]
    plan = json.loads(planned.stdout)
    # ~40-token examples, packs of up to 256 tokens: far fewer batches of 8 than 400 examples would make.
    assert plan["optimizer_steps"] < math.ceil(400 / 8) / 4
    result = ftrun()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "packing: 400 training examples in" in result.stderr
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == plan["optimizer_steps"]
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    # LoRA plus only the new chat tokens' rows train, so the tiny random model's loss falls slowly but steadily.
    assert len(losses) == plan["optimizer_steps"] and losses[-1] < 0.97 * losses[0], losses
    assert sum(later < earlier for earlier, later in itertools.pairwise(losses)) >= len(losses) - 2
    assert (output_dir / "checkpoint-final" / "adapter_model.safetensors").is_file()


def test_switching_packing_reuses_the_prepared_data_cache(tmp_path: Path) -> None:
    hits = []
    for packing in (False, True):
        config = load_config(tiny_run_document(tmp_path / "out", sft_args={"packing": packing}))
        tokenizer, setup = build_tokenizer(config.run_conf, config.data_conf)
        hits.append(prepare_data(config, tokenizer, setup, cache_dir=tmp_path / "cache").cache_hit)
    assert hits == [False, True]


def test_packing_with_an_attention_that_would_mix_examples_is_refused_before_anything_loads(
    tmp_path: Path,
) -> None:
    output_dir = tmp_path / "refused"
    document = tiny_run_document(
        output_dir,
        run_conf={"model": str(EXAMPLES / "tiny-llama"), "model_args": {"attn_implementation": "paged|sdpa"}},
        sft_args={"packing": True},
    )
    with pytest.raises(ConfigError) as caught:
        train(load_config(document), RunOptions())
    assert "$.run_conf.model_args.attn_implementation" in str(caught.value)
    assert "packing" in str(caught.value)
    assert not output_dir.exists()


@pytest.mark.slow
def test_packing_trains_at_least_one_and_a_half_times_the_real_tokens_per_second_on_skewed_data(
    tmp_path: Path,
) -> None:
    from ftconfig.tools.bench._common import skewed_conversations, write_jsonl
    from ftconfig.tools.bench.padding import TARGET_SPEEDUP, measure, skewed_document

    train_path = write_jsonl(tmp_path / "skewed.jsonl", skewed_conversations(600, seed=0))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two busy cores: one thread each run measures the layouts, not the contention
    try:
        runs = {
            packing: measure(
                skewed_document(
                    train_path, tmp_path / "out", packing=packing, steps=steps, max_seq_length=512
                ),
                tmp_path / "cache",
            )
            for packing, steps in ((False, 24), (True, 4))
        }
    finally:
        torch.set_num_threads(threads)
    padded, packed = runs[False], runs[True]
    assert min(packed.pad_fractions) >= 0 and max(packed.pad_fractions) < 0.05
    assert sum(padded.positions) / sum(padded.real) > 1.5  # the skew really makes padding expensive
    assert packed.real_tokens_per_second >= TARGET_SPEEDUP * padded.real_tokens_per_second, (
        packed.real_tokens_per_second,
        padded.real_tokens_per_second,
    )
