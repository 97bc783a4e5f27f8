"""Fields of the newer config dialect: model_args.dtype, the typed from_pretrained keys, run_conf.determinism,
sft_args.length_handling; each one reaches the library, checked against the real tokenizer and transformers."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from ftconfig.runtime.config._errors import ConfigError
from ftconfig.runtime.config._load import load_config
from ftconfig.runtime.config._resolve import build_sft_config, resolve_run

torch = pytest.importorskip("torch")

from ftconfig.runtime.data._encode import encode_conversations  # noqa: E402
from ftconfig.runtime.data._prepare import prepare_data  # noqa: E402
from ftconfig.runtime.data._tokenizer import build_tokenizer  # noqa: E402
from ftconfig.runtime.model._loading import model_load_kwargs  # noqa: E402


def document(model_dir: Path, tmp_path: Path, **sections: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "data_conf": {
            "training_data": {"type": "CONCATENATION", "datasets": [{"path": str(tmp_path / "rows.jsonl")}]},
            "validation_data": {"type": "NONE"},
        },
        "training_args": {"learning_rate": 1.0e-4, "output_dir": str(tmp_path / "out")},
        "batchsize_conf": {"total_train_batch_size": 2, "max_per_device_train_batch_size": 2},
        "peft_conf": {"peft_type": "NO_PEFT"},
        "run_conf": {"model": str(model_dir)},
        "sft_args": {"max_seq_length": 512},
    }
    for name, section in sections.items():
        base[name] = {**base.get(name, {}), **section}
    return base


@pytest.mark.parametrize("name", ["dtype", "torch_dtype"])
def test_dtype_and_torch_dtype_both_reach_from_pretrained_as_dtype(
    name: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = load_config(document(tiny_model_dir, tmp_path, run_conf={"model_args": {name: "bfloat16"}}))
    kwargs = model_load_kwargs(config.run_conf, config.quant_conf, use_cache=True)
    assert kwargs["dtype"] is torch.bfloat16
    assert "torch_dtype" not in kwargs


def test_dtype_default_is_the_checkpoints_own(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = load_config(document(tiny_model_dir, tmp_path))
    assert model_load_kwargs(config.run_conf, config.quant_conf, use_cache=True)["dtype"] == "auto"


def test_setting_both_dtype_names_is_one_config_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    both = {"model_args": {"dtype": "bfloat16", "torch_dtype": "float32"}}
    with pytest.raises(ConfigError) as caught:
        load_config(document(tiny_model_dir, tmp_path, run_conf=both))
    [item] = caught.value.items
    assert item.location == "$.run_conf.model_args.torch_dtype"
    assert "set only one of them" in item.message


def test_typed_from_pretrained_keys_are_passed_when_set(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_args = {
        "tp_plan": "auto",
        "tp_size": 2,
        "key_mapping": {"^model": "base"},
        "weights_only": False,
        "ignore_mismatched_sizes": True,
    }
    config = load_config(document(tiny_model_dir, tmp_path, run_conf={"model_args": model_args}))
    kwargs = model_load_kwargs(config.run_conf, config.quant_conf, use_cache=True)
    assert {key: kwargs[key] for key in model_args} == model_args
    plain = load_config(document(tiny_model_dir, tmp_path))
    assert not set(model_args) & set(model_load_kwargs(plain.run_conf, plain.quant_conf, use_cache=True))


@pytest.mark.parametrize(
    ("model_args", "location"),
    [
        ({"tp_size": 0}, "$.run_conf.model_args.tp_size"),
        ({"key_mapping": {"a": 1}}, "$.run_conf.model_args.key_mapping.a"),
        ({"weights_only": "yes"}, "$.run_conf.model_args.weights_only"),
        ({"tp_plan": 3}, "$.run_conf.model_args.tp_plan"),
    ],
)
def test_typed_from_pretrained_keys_are_checked(
    model_args: dict[str, Any], location: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(document(tiny_model_dir, tmp_path, run_conf={"model_args": model_args}))
    assert [item.location for item in caught.value.items] == [location]


@pytest.mark.parametrize(
    ("determinism", "full_in_training_args", "expected"),
    [("no", False, False), ("half", False, False), ("full", False, True), ("no", True, True)],
)
def test_full_determinism_reaches_the_trainer_arguments(
    determinism: str, full_in_training_args: bool, expected: bool, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = load_config(
        document(
            tiny_model_dir,
            tmp_path,
            run_conf={"determinism": determinism},
            training_args={"full_determinism": full_in_training_args},
        )
    )
    sft_config = build_sft_config(config, resolve_run(config, world_size=1))
    assert sft_config.full_determinism is expected


def test_unknown_determinism_is_refused_with_the_choices(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(document(tiny_model_dir, tmp_path, run_conf={"determinism": "strict"}))
    [item] = caught.value.items
    assert item.location == "$.run_conf.determinism" and "no, half, full" in (item.hint or "")


# --- length_handling -------------------------------------------------------------------------------------------


def write_rows(tmp_path: Path, word_counts: list[int]) -> list[list[dict[str, str]]]:
    conversations = [
        [
            {"role": "user", "content": f"Say r{i}."},
            {"role": "assistant", "content": " ".join([f"r{i}"] * words)},
        ]
        for i, words in enumerate(word_counts)
    ]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"messages": c}) + "\n" for c in conversations))
    return conversations


@pytest.mark.parametrize("completions_only", [False, True])
def test_truncate_keeps_every_example_cut_to_max_seq_length_with_its_mask(
    completions_only: bool, tiny_model_dir: Path, tmp_path: Path, caplog: Any
) -> None:
    conversations = write_rows(tmp_path, [1, 8, 3, 20, 40])
    sft_args = {"max_seq_length": 512, "train_on_completions_only": completions_only}
    probe = load_config(document(tiny_model_dir, tmp_path, sft_args=sft_args))
    tokenizer, setup = build_tokenizer(probe.run_conf, probe.data_conf)
    full = encode_conversations(tokenizer, setup, conversations, completions_only=completions_only)
    lengths = [len(ids) for ids in full["input_ids"]]
    limit = sorted(lengths)[2]  # two examples are longer
    sft_args.update(max_seq_length=limit, length_handling="truncate")
    config = load_config(document(tiny_model_dir, tmp_path, sft_args=sft_args))
    with caplog.at_level(logging.WARNING, logger="ftconfig.runtime.data._prepare"):
        data = prepare_data(config, tokenizer, setup, num_proc=1, cache_dir=None)
    assert data.dropped_train == 0
    assert len(data.train) == len(conversations)
    assert data.train["input_ids"] == [ids[:limit] for ids in full["input_ids"]]
    assert data.train["labels"] == [labels[:limit] for labels in full["labels"]]
    assert data.train["length"] == [min(length, limit) for length in lengths]
    assert f"truncated 2 of 5 distinct examples longer than max_seq_length {limit}" in caplog.text
    if completions_only:  # the mask of the kept part is what it was: the prompt stays masked
        assert all(labels[0] == -100 for labels in data.train["labels"])


def test_filter_is_the_default_and_drops_the_longer_examples(tiny_model_dir: Path, tmp_path: Path) -> None:
    conversations = write_rows(tmp_path, [1, 8, 3, 20, 40])
    probe = load_config(document(tiny_model_dir, tmp_path))
    assert probe.sft_args.length_handling == "filter"
    tokenizer, setup = build_tokenizer(probe.run_conf, probe.data_conf)
    lengths = [
        len(ids)
        for ids in encode_conversations(tokenizer, setup, conversations, completions_only=False)["input_ids"]
    ]
    limit = sorted(lengths)[2]
    config = load_config(document(tiny_model_dir, tmp_path, sft_args={"max_seq_length": limit}))
    data = prepare_data(config, tokenizer, setup, num_proc=1, cache_dir=None)
    assert data.dropped_train == 2 and len(data.train) == 3


@pytest.mark.parametrize("determinism", ["no", "half", "full"])
def test_determinism_sets_pytorchs_deterministic_algorithms_before_the_weights_load(
    determinism: str, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ftconfig.runtime.training._run import RunOptions, _load_and_adapt_model, prepare_run

    for name in ("CUDA_LAUNCH_BLOCKING", "CUBLAS_WORKSPACE_CONFIG", "FLASH_ATTENTION_DETERMINISTIC"):
        monkeypatch.delenv(name, raising=False)  # full determinism sets them; restored after the test
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)

    write_rows(tmp_path, [1, 2, 3, 4])
    config = load_config(document(tiny_model_dir, tmp_path, run_conf={"determinism": determinism}))
    run = prepare_run(config, RunOptions(cache_dir=tmp_path / "cache"), world_size=1)
    try:
        _load_and_adapt_model(run, is_main=True)
        assert torch.are_deterministic_algorithms_enabled() is (determinism != "no")
        # half prefers deterministic kernels (a warning where there is none); full insists on them.
        assert torch.is_deterministic_algorithms_warn_only_enabled() is (determinism == "half")
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


@pytest.mark.parametrize(
    "model_args", [{}, {"dtype": "bfloat16"}, {"torch_dtype": "float16"}, {"dtype": None}]
)
def test_the_written_config_document_is_itself_valid_whichever_dtype_name_is_used(
    model_args: dict[str, Any], tiny_model_dir: Path, tmp_path: Path
) -> None:
    from ftconfig.runtime.config._load import validate_document
    from ftconfig.runtime.training._output import config_document

    config = load_config(document(tiny_model_dir, tmp_path, run_conf={"model_args": model_args}))
    written = config_document(config)
    validate_document(written)
    assert load_config(written) == config
    if model_args.get("dtype"):
        assert "torch_dtype" not in written["run_conf"]["model_args"]
