"""Resolution is pure: batch split, LR overrides, epochs, use_cache, TrainingArguments."""

from __future__ import annotations

import json
import math
from pathlib import Path

import msgspec
import pytest

from ftconfig.runtime import ConfigError, load_config
from ftconfig.runtime.config._resolve import resolve_run, split_batch, training_arguments_kwargs
from tests.helpers import base_document

# (total, max per device, processes) -> (per device, accumulation).
SPLITS = [
    ((8, 4, 1), (4, 2)),
    ((8, 4, 2), (4, 1)),
    ((8, 4, 4), (2, 1)),
    ((8, 4, 8), (1, 1)),
    ((8, 8, 1), (8, 1)),
    ((8, 8, 8), (1, 1)),
    ((8, 10, 8), (1, 1)),
    ((8, 10, 2), (4, 1)),
    ((8, 10, 1), (8, 1)),
    ((8, 3, 2), (2, 2)),
    ((512, 4, 1), (4, 128)),
    ((7, 2, 1), (1, 7)),
    ((12, 5, 1), (4, 3)),
    ((12, 5, 2), (3, 2)),
]


@pytest.mark.parametrize(("given", "expected"), SPLITS, ids=[str(given) for given, _ in SPLITS])
def test_batch_split_matches_the_table(given: tuple[int, int, int], expected: tuple[int, int]) -> None:
    total, max_per_device, processes = given
    per_device, accumulation = split_batch(total, max_per_device, processes)
    assert (per_device, accumulation) == expected
    assert processes * per_device * accumulation == total


@pytest.mark.parametrize(
    ("total", "max_per_device", "processes"), [(8, 4, 10), (8, 10, 10), (1, 10, 2), (8, 4, 3)]
)
def test_batch_split_refuses_a_total_the_processes_do_not_divide(
    total: int, max_per_device: int, processes: int
) -> None:
    with pytest.raises(ConfigError) as caught:
        split_batch(total, max_per_device, processes)
    assert caught.value.items[0].location == "$.batchsize_conf.total_train_batch_size"


def config_with(**sections: dict) -> object:
    document = base_document()
    for section, values in sections.items():
        document.setdefault(section, {}).update(values)
    return load_config(document)


def test_lr_multiplier_then_sqrt_scaling_worked_example() -> None:
    config = config_with(
        training_args={"learning_rate": 1e-5},
        overrides={"lr_multiplier": 0.5, "lr_batch_size_scaling": "sqrt"},
        batchsize_conf={"total_train_batch_size": 64, "max_per_device_train_batch_size": 4},
    )
    assert resolve_run(config, world_size=1).learning_rate == pytest.approx(4e-5)


def test_linear_scaling_multiplies_by_the_total_batch() -> None:
    config = config_with(
        training_args={"learning_rate": 1e-6},
        overrides={"lr_batch_size_scaling": "linear"},
        batchsize_conf={"total_train_batch_size": 512, "max_per_device_train_batch_size": 4},
    )
    assert resolve_run(config, world_size=1).learning_rate == pytest.approx(512e-6)


def test_resolution_never_changes_the_config_and_is_repeatable() -> None:
    config = config_with(overrides={"lr_multiplier": 2.0, "num_train_epochs": 5})
    before = msgspec.to_builtins(config)
    first, second = resolve_run(config, world_size=1), resolve_run(config, world_size=1)
    assert first == second
    assert msgspec.to_builtins(config) == before
    assert config.training_args.learning_rate == pytest.approx(1e-4)
    assert first.learning_rate == pytest.approx(2e-4)


def test_epoch_override_replaces_training_args_epochs() -> None:
    config = config_with(training_args={"num_train_epochs": 3}, overrides={"num_train_epochs": 1.5})
    assert resolve_run(config, world_size=1).num_train_epochs == 1.5


def test_use_cache_is_turned_off_under_gradient_checkpointing(caplog: pytest.LogCaptureFixture) -> None:
    config = config_with(training_args={"gradient_checkpointing": True})
    assert resolve_run(config, world_size=1).use_cache is False
    assert "use_cache" in caplog.text
    assert resolve_run(config_with(), world_size=1).use_cache is True


def test_eval_batch_defaults_to_the_train_per_device_batch() -> None:
    assert resolve_run(config_with(), world_size=2).per_device_eval_batch_size == 4
    config = config_with(batchsize_conf={"per_device_eval_batch_size": 16})
    assert resolve_run(config, world_size=2).per_device_eval_batch_size == 16


def test_output_dir_falls_back_to_checkpoints_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHECKPOINTS_PATH", "/data/ckpt")
    assert resolve_run(config_with(), world_size=1).output_dir == "/data/ckpt"
    monkeypatch.delenv("CHECKPOINTS_PATH")
    assert resolve_run(config_with(), world_size=1).output_dir == "checkpoints"


def test_sft_config_gets_no_silent_cpu_defaults(tmp_path: Path) -> None:
    from ftconfig.runtime.config._resolve import build_sft_config

    config = config_with(training_args={"output_dir": str(tmp_path)})
    args = build_sft_config(config, resolve_run(config, world_size=1))
    assert args.bf16 is False and args.fp16 is False
    assert not args.gradient_checkpointing
    assert args.learning_rate == pytest.approx(1e-4)
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == 8
    assert args.max_length == 256
    assert args.logging_steps == 500  # the TrainingArguments default the schema documents, not TRL's 10


def test_deepspeed_file_gets_the_batch_split(tmp_path: Path) -> None:
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 2}, "train_micro_batch_size_per_gpu": "auto"}))
    config = config_with(
        training_args={"deepspeed": str(path)},
        batchsize_conf={"total_train_batch_size": 64, "max_per_device_train_batch_size": 4},
    )
    kwargs = training_arguments_kwargs(config, resolve_run(config, world_size=2))
    deepspeed = kwargs["deepspeed"]
    assert deepspeed["zero_optimization"] == {"stage": 2}
    assert deepspeed["train_micro_batch_size_per_gpu"] == 4
    assert deepspeed["gradient_accumulation_steps"] == 8
    assert deepspeed["train_batch_size"] == 64 == 4 * 8 * 2
    assert math.isclose(kwargs["learning_rate"], 1e-4)


def test_missing_deepspeed_file_is_a_config_error() -> None:
    config = config_with(training_args={"deepspeed": "nope/ds.json"})
    with pytest.raises(ConfigError, match="file not found"):
        training_arguments_kwargs(config, resolve_run(config, world_size=1))


def test_training_arguments_transformers_rejects_are_a_config_error_with_the_whole_reason(
    tmp_path: Path,
) -> None:
    from ftconfig.runtime.config._resolve import build_sft_config

    config = config_with(
        training_args={
            "output_dir": str(tmp_path),
            "load_best_model_at_end": True,
            "eval_strategy": "no",
            "save_strategy": "steps",
        }
    )
    with pytest.raises(ConfigError) as excinfo:
        build_sft_config(config, resolve_run(config, world_size=1))
    (item,) = excinfo.value.items
    assert item.location == "$.training_args"
    assert "load_best_model_at_end requires the save and eval strategy to match" in item.message
    assert "Evaluation strategy" in item.message, "the reason's later lines are kept"


@pytest.mark.parametrize(
    ("peft_conf", "user_value", "expected"),
    [
        ({"peft_type": "LORA", "peft_kwargs": {"r": 8}}, None, False),
        ({"peft_type": "LORA", "peft_kwargs": {"r": 8}}, True, True),
        ({"peft_type": "NO_PEFT"}, None, None),
    ],
)
def test_ddp_does_not_search_for_unused_parameters_of_an_adapter_unless_asked(
    peft_conf: dict, user_value: bool | None, expected: bool | None
) -> None:
    """An adapter's parameters are all used; transformers would still ask DDP to search (and warn) every step."""
    document = base_document()
    document["peft_conf"] = peft_conf
    document["training_args"]["ddp_find_unused_parameters"] = user_value
    config = load_config(document)
    kwargs = training_arguments_kwargs(config, resolve_run(config, world_size=2))
    assert kwargs["ddp_find_unused_parameters"] is expected
