"""PEFT: peft_kwargs checked before any model loads, adapters built and applied, QLoRA trained on CPU."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import peft
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from ftconfig.runtime.config._errors import ConfigError
from ftconfig.runtime.model._embeddings import grow_embeddings
from ftconfig.runtime.model._loading import load_model
from ftconfig.runtime.model._new_tokens import NewTokenRows
from ftconfig.runtime.model._peft import (
    apply_peft,
    build_peft_config,
    check_adapter_reference,
    check_peft_kwargs,
    peft_config_class,
)
from ftconfig.runtime.model._peft_fields import peft_config_fields
from tests.helpers import EXAMPLES, make_config, only_error

NF4 = {"quantization_type": "bits-and-bytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}
LORA = {"peft_type": "LORA", "peft_kwargs": {"r": 4, "lora_alpha": 8, "target_modules": "all-linear"}}


def no_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", refuse)
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", refuse)


def batch(tokenizer: Any) -> dict[str, torch.Tensor]:
    """Two real training conversations, flattened to text and cut to one length (no padding needed)."""
    lines = (EXAMPLES / "data" / "train.jsonl").read_text().splitlines()[:2]
    texts = [" ".join(m["content"] for m in json.loads(line)["messages"]) for line in lines]
    ids = [tokenizer(text)["input_ids"] for text in texts]
    length = min(len(row) for row in ids)
    input_ids = torch.tensor([row[:length] for row in ids])
    return {"input_ids": input_ids, "labels": input_ids.clone()}


def train_steps(model: Any, inputs: dict[str, torch.Tensor], steps: int) -> list[float]:
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(steps + 1):
        loss = model(**inputs).loss
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return losses


def trainable_names(model: torch.nn.Module) -> list[str]:
    return [name for name, param in model.named_parameters() if param.requires_grad]


@pytest.fixture
def tokenizer() -> Any:
    return AutoTokenizer.from_pretrained(EXAMPLES / "tiny-llama")


@pytest.fixture
def tiny_model() -> Any:
    return AutoModelForCausalLM.from_pretrained(EXAMPLES / "tiny-llama")


# --- checks before any model loads ---


def test_peft_type_names_map_to_peft_config_classes() -> None:
    assert peft_config_class("LORA") is peft.LoraConfig
    assert peft_config_class("IA3") is peft.IA3Config


def test_peft_source_fields_equal_the_imported_config_classes_for_every_peft_type() -> None:
    """The dry run checks peft_kwargs against fields read from peft's source; they must be the real ones."""
    import dataclasses
    import typing

    for peft_type, cls in peft.PEFT_TYPE_TO_CONFIG_MAPPING.items():
        declared = peft_config_fields(str(peft_type.value))
        assert declared is not None, peft_type
        assert declared.class_name == cls.__name__
        assert set(declared.fields) == {field.name for field in dataclasses.fields(cls) if field.init}, cls
        hints = typing.get_type_hints(cls)
        for name, annotation in declared.fields.items():
            assert annotation is None or annotation == hints[name], (cls, name)
    lora = peft_config_fields("LORA")
    assert lora is not None and lora.fields["r"] is int and lora.fields["lora_alpha"] is int


def test_peft_kwargs_typo_is_a_config_error_suggesting_the_field_without_loading_a_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_model_loads(monkeypatch)
    config = make_config(peft_conf={"peft_type": "LORA", "peft_kwargs": {"rr": 8}})
    with pytest.raises(ConfigError) as excinfo:
        check_peft_kwargs(config.peft_conf)
    location, text = only_error(excinfo)
    assert location == "$.peft_conf.peft_kwargs.rr"
    assert "Did you mean 'r'?" in text


def test_every_bad_peft_kwarg_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    no_model_loads(monkeypatch)
    kwargs = {"r": "8", "lora_alpah": 16, "task_type": "SEQ_CLS"}
    config = make_config(peft_conf={"peft_type": "LORA", "peft_kwargs": kwargs})
    with pytest.raises(ConfigError) as excinfo:
        check_peft_kwargs(config.peft_conf)
    locations = [item.location for item in excinfo.value.items]
    assert locations == [f"$.peft_conf.peft_kwargs.{key}" for key in ("r", "lora_alpah", "task_type")]
    assert "Expected `int`, got `str`" in excinfo.value.items[0].message
    assert "peft_conf.task_type" in excinfo.value.items[2].message


def test_peft_config_class_rules_are_reported_at_peft_kwargs() -> None:
    config = make_config(peft_conf={"peft_type": "LORA", "peft_kwargs": {"layers_pattern": "layers"}})
    with pytest.raises(ConfigError) as excinfo:
        check_peft_kwargs(config.peft_conf)
    location, text = only_error(excinfo)
    assert location == "$.peft_conf.peft_kwargs"
    assert "layers_to_transform" in text


def test_valid_peft_kwargs_pass_the_check() -> None:
    kwargs = {"r": 8, "lora_dropout": 0, "target_modules": ["q_proj"], "init_lora_weights": "pissa_niter_4"}
    check_peft_kwargs(make_config(peft_conf={"peft_type": "LORA", "peft_kwargs": kwargs}).peft_conf)
    check_peft_kwargs(make_config(peft_conf={"peft_type": "NO_PEFT"}).peft_conf)


def test_pretrained_adapter_folder_without_adapter_config_is_a_config_error(tmp_path: Path) -> None:
    config = make_config(peft_conf={"peft_type": "PRETRAINED_PEFT", "name_or_path": str(tmp_path)})
    with pytest.raises(ConfigError) as excinfo:
        check_adapter_reference(config.peft_conf)
    assert only_error(excinfo)[0] == "$.peft_conf.name_or_path"


# --- building the peft config ---


NEW_ROWS = NewTokenRows(
    token_ids=(512, 513), input_module="embed_tokens", output_module="lm_head", tied=False, grown=True
)


def test_no_peft_and_pretrained_peft_build_no_config() -> None:
    for peft_conf in ({"peft_type": "NO_PEFT"}, {"peft_type": "PRETRAINED_PEFT", "name_or_path": "x"}):
        assert build_peft_config(make_config(peft_conf=peft_conf).peft_conf, new_rows=NEW_ROWS) is None


def test_lora_config_gets_task_type_kwargs_and_the_new_rows_as_trainable_tokens() -> None:
    conf = {"peft_type": "LORA", "peft_kwargs": {"r": 16, "modules_to_save": ["score"]}}
    built = build_peft_config(make_config(peft_conf=conf).peft_conf, new_rows=NEW_ROWS)
    assert isinstance(built, peft.LoraConfig)
    assert (built.task_type, built.r) == ("CAUSAL_LM", 16)
    assert built.modules_to_save == ["score"]
    assert built.trainable_token_indices == {"embed_tokens": [512, 513], "lm_head": [512, 513]}
    assert build_peft_config(make_config(peft_conf=LORA).peft_conf).trainable_token_indices is None


# --- applying it to the tiny model ---


@pytest.mark.slow
def test_no_peft_returns_the_model_unchanged(tiny_model: Any) -> None:
    peft_conf = make_config(peft_conf={"peft_type": "NO_PEFT"}).peft_conf
    same = apply_peft(
        tiny_model,
        peft_conf,
        quantized=False,
        gradient_checkpointing=False,
        gradient_checkpointing_kwargs=None,
    )
    assert same is tiny_model
    assert all(param.requires_grad for param in same.parameters())


@pytest.mark.slow
def test_lora_all_linear_wraps_the_model_and_only_adapter_params_train(tiny_model: Any) -> None:
    wrapped = apply_peft(
        tiny_model,
        make_config(peft_conf=LORA).peft_conf,
        quantized=False,
        gradient_checkpointing=False,
        gradient_checkpointing_kwargs=None,
    )
    assert isinstance(wrapped, peft.PeftModel)
    names = trainable_names(wrapped)
    # 2 layers x 7 linear projections x (A, B); lm_head is tied to the embeddings and excluded by peft
    assert len(names) == 28
    assert all("lora_A" in name or "lora_B" in name for name in names)


@pytest.mark.slow
def test_peft_range_errors_surface_at_peft_kwargs(tiny_model: Any) -> None:
    conf = {"peft_type": "LORA", "peft_kwargs": {"r": -1}}
    check_peft_kwargs(make_config(peft_conf=conf).peft_conf)  # peft checks r > 0 only when it wraps a model
    with pytest.raises(ConfigError) as excinfo:
        apply_peft(
            tiny_model,
            make_config(peft_conf=conf).peft_conf,
            quantized=False,
            gradient_checkpointing=False,
            gradient_checkpointing_kwargs=None,
        )
    location, text = only_error(excinfo)
    assert location == "$.peft_conf.peft_kwargs"
    assert "positive integer" in text


@pytest.mark.slow
def test_grown_tied_embeddings_train_only_the_new_rows_as_one_tied_copy(
    tiny_model: Any, tokenizer: Any
) -> None:
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    new_rows = grow_embeddings(tiny_model, tokenizer, [512, 513])
    wrapped = apply_peft(
        tiny_model,
        make_config(peft_conf=LORA).peft_conf,
        quantized=False,
        gradient_checkpointing=False,
        gradient_checkpointing_kwargs=None,
        new_rows=new_rows,
    )
    embedding_params = [name for name in trainable_names(wrapped) if "lora_" not in name]
    assert embedding_params == [
        "base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta.default"
    ]
    delta = dict(wrapped.named_parameters())[embedding_params[0]]
    assert delta.shape == (2, 64)
    output = wrapped.get_output_embeddings()
    assert output.token_adapter.tied_adapter is wrapped.get_input_embeddings().token_adapter


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:torch.utils.checkpoint. the use_reentrant parameter should be passed")
def test_qlora_4bit_nf4_trains_on_cpu(tokenizer: Any) -> None:
    config = make_config(peft_conf=LORA, quant_conf=NF4)
    model = load_model(config.run_conf, config.quant_conf, use_cache=False)
    assert "Linear4bit" in {type(module).__name__ for module in model.modules()}
    wrapped = apply_peft(
        model,
        config.peft_conf,
        quantized=True,
        gradient_checkpointing=True,
        gradient_checkpointing_kwargs=None,  # unset kwargs must not be unpacked as a dict
    )
    assert all("lora_" in name for name in trainable_names(wrapped))
    losses = train_steps(wrapped, batch(tokenizer), steps=2)
    assert all(math.isfinite(loss) for loss in losses)
    assert losses[2] != losses[0]


@pytest.mark.slow
def test_quantized_model_without_adapter_is_a_config_error() -> None:
    config = make_config(peft_conf={"peft_type": "NO_PEFT"}, quant_conf=NF4)
    model = load_model(config.run_conf, config.quant_conf, use_cache=True)
    with pytest.raises(ConfigError) as excinfo:
        apply_peft(
            model,
            config.peft_conf,
            quantized=True,
            gradient_checkpointing=False,
            gradient_checkpointing_kwargs=None,
        )
    assert only_error(excinfo)[0] == "$.peft_conf"


# --- pretrained adapters ---


@pytest.fixture
def saved_adapter(tmp_path: Path) -> Path:
    base = AutoModelForCausalLM.from_pretrained(EXAMPLES / "tiny-llama")
    adapter = peft.get_peft_model(
        base, peft.LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["q_proj"])
    )
    path = tmp_path / "adapter"
    adapter.save_pretrained(path)
    return path


@pytest.mark.slow
def test_pretrained_peft_loads_a_saved_adapter_as_trainable(
    saved_adapter: Path, tiny_model: Any, tokenizer: Any
) -> None:
    peft_conf = make_config(
        peft_conf={"peft_type": "PRETRAINED_PEFT", "name_or_path": str(saved_adapter)}
    ).peft_conf
    wrapped = apply_peft(
        tiny_model,
        peft_conf,
        quantized=False,
        gradient_checkpointing=False,
        gradient_checkpointing_kwargs=None,
    )
    names = trainable_names(wrapped)
    assert len(names) == 4 and all("q_proj.lora_" in name for name in names)
    losses = train_steps(wrapped, batch(tokenizer), steps=1)
    assert losses[1] != losses[0]


@pytest.mark.slow
def test_missing_pretrained_adapter_is_a_config_error_at_name_or_path(
    tiny_model: Any, tmp_path: Path
) -> None:
    peft_conf = make_config(
        peft_conf={"peft_type": "PRETRAINED_PEFT", "name_or_path": str(tmp_path / "nope")}
    ).peft_conf
    with pytest.raises(ConfigError) as excinfo:
        apply_peft(
            tiny_model,
            peft_conf,
            quantized=False,
            gradient_checkpointing=False,
            gradient_checkpointing_kwargs=None,
        )
    location, text = only_error(excinfo)
    assert location == "$.peft_conf.name_or_path"
    assert "adapter_config.json" in text


@pytest.mark.slow
def test_pretrained_adapter_with_grown_vocabulary_is_a_config_error(
    saved_adapter: Path, tiny_model: Any
) -> None:
    peft_conf = make_config(
        peft_conf={"peft_type": "PRETRAINED_PEFT", "name_or_path": str(saved_adapter)}
    ).peft_conf
    with pytest.raises(ConfigError) as excinfo:
        apply_peft(
            tiny_model,
            peft_conf,
            quantized=False,
            gradient_checkpointing=False,
            gradient_checkpointing_kwargs=None,
            new_rows=NEW_ROWS,
        )
    assert only_error(excinfo)[0] == "$.peft_conf"
