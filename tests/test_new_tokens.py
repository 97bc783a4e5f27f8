"""A chat template's new tokens in adapter runs: only their rows train and are saved, the adapter loads back onto
the original base with the documented lines, merged and unmerged outputs agree, and QLoRA trains and resumes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

from ftconfig.runtime import load_config
from ftconfig.runtime.config._errors import ConfigError
from ftconfig.runtime.model._embeddings import grow_embeddings
from ftconfig.runtime.model._new_tokens import (
    MODULES_TO_SAVE,
    TRAINABLE_TOKENS,
    NewTokenRows,
    add_new_rows,
    describe_training,
    lora_targeted_embeddings,
    new_rows_method,
)
from ftconfig.runtime.model._peft import apply_peft
from ftconfig.runtime.training._run import RunOptions, prepare_run, train
from tests.helpers import EXAMPLES, load_for_inference, make_config, tiny_run_document

LORA = {"peft_type": "LORA", "peft_kwargs": {"r": 4, "lora_alpha": 8, "target_modules": "all-linear"}}

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guide.md"
NEW_TOKENS = ["<|im_start|>", "<|im_end|>"]
QUANT = {
    "4bit": {"quantization_type": "bits-and-bytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"},
    "8bit": {"quantization_type": "bits-and-bytes", "load_in_8bit": True},
}


def adapter_tensors(folder: Path) -> dict[str, tuple[int, ...]]:
    with safe_open(str(folder / "adapter_model.safetensors"), "pt") as handle:
        return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118


def untied_copy(tiny_model_dir: Path, target: Path) -> Path:
    """The tiny model with separate input and output embeddings (as most large models have)."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(model.get_input_embeddings().weight.detach().clone())
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(target)
    return target


# --- what trains, in words and in the peft config ------------------------------------------------------------


def test_lora_trains_rows_other_adapters_and_listed_embeddings_train_whole_copies() -> None:
    assert new_rows_method("LORA", {}) == TRAINABLE_TOKENS
    assert new_rows_method("LORA", {"modules_to_save": ["lm_head"]}) == MODULES_TO_SAVE
    assert new_rows_method("IA3", {}) == MODULES_TO_SAVE


def test_rows_join_the_users_trainable_token_indices_and_modules_to_save() -> None:
    import peft

    tied = NewTokenRows((512, 513), "embed_tokens", "lm_head", tied=True, grown=True)
    config = peft.LoraConfig(trainable_token_indices=[7])
    add_new_rows(config, tied, peft_type="LORA", peft_kwargs={})
    assert config.trainable_token_indices == [7, 512, 513]
    untied = NewTokenRows((512, 513), "embed_tokens", "lm_head", tied=False, grown=True)
    config = peft.LoraConfig(trainable_token_indices=[7])
    add_new_rows(config, untied, peft_type="LORA", peft_kwargs={})
    assert config.trainable_token_indices == {"embed_tokens": [7, 512, 513], "lm_head": [512, 513]}
    ia3 = peft.IA3Config(modules_to_save=["score"])
    add_new_rows(ia3, untied, peft_type="IA3", peft_kwargs={})
    assert ia3.modules_to_save == ["score", "embed_tokens", "lm_head"]


def test_plan_lines_name_the_rows_and_what_is_saved() -> None:
    trained, saved = describe_training(
        peft_type="LORA",
        peft_kwargs={"target_modules": "all-linear"},
        token_ids=(512, 513),
        rows=512,
        tied=True,
        final_name="checkpoint-final",
        base_copy=None,
    )
    assert trained == [
        "LORA adapter on all-linear",
        "rows 512-513 of the input and output embeddings (tied: one copy; grown from 512 to 514 rows)",
    ]
    assert saved == [
        "checkpoint-final: the adapter with rows 512-513 and tokenizer (no full embedding matrices)"
    ]
    _, saved = describe_training(
        peft_type="LORA",
        peft_kwargs={},
        token_ids=(512, 513),
        rows=512,
        tied=False,
        final_name="checkpoint-final",
        base_copy="checkpoint-new-basemodel",
    )
    assert saved[1].startswith("checkpoint-new-basemodel: a copy of the base model")


@pytest.mark.slow
def test_dry_run_plan_reads_tied_embeddings_and_rows_from_the_model_config(tmp_path: Path) -> None:
    from ftconfig.runtime.training._plan import build_plan

    run = prepare_run(load_config(tiny_run_document(tmp_path / "out")), RunOptions(), world_size=1)
    plan = build_plan(run)
    assert plan["new_token_ids"] == [512, 513]
    assert "tied: one copy; grown from 512 to 514 rows" in plan["trained"][1]
    assert plan["saved"] == [
        "checkpoint-final: the adapter with rows 512-513 and tokenizer (no full embedding matrices)"
    ]
    assert not (tmp_path / "out").exists()


def test_lora_on_an_embedding_module_with_new_tokens_is_a_config_error_before_weights_load(
    tmp_path: Path,
) -> None:
    assert lora_targeted_embeddings({"target_modules": ["q_proj", "model.embed_tokens"]}) == ["embed_tokens"]
    assert lora_targeted_embeddings({"target_modules": ".*(lm_head|q_proj)"}) == ["lm_head"]
    assert lora_targeted_embeddings({"target_modules": "all-linear"}) == []
    lora = {"peft_type": "LORA", "peft_kwargs": {"target_modules": ["q_proj", "embed_tokens"]}}
    with pytest.raises(ConfigError) as excinfo:
        prepare_run(
            load_config(tiny_run_document(tmp_path / "out", peft_conf=lora)), RunOptions(), world_size=1
        )
    (item,) = excinfo.value.items
    assert item.location == "$.peft_conf.peft_kwargs.target_modules"
    assert "embed_tokens" in item.render() and "modules_to_save" in item.render()
    keep = tiny_run_document(
        tmp_path / "out", peft_conf=lora, data_conf={"chat_template_name": "keep-original"}
    )
    prepare_run(load_config(keep), RunOptions(), world_size=1)  # no new tokens: LoRA on embed_tokens is fine


def test_a_grown_base_copy_cannot_be_asked_of_a_quantized_run(tmp_path: Path) -> None:
    document = tiny_run_document(
        tmp_path / "out", quant_conf=QUANT["4bit"], sft_args={"save_new_basemodel": True}
    )
    with pytest.raises(ConfigError) as excinfo:
        prepare_run(load_config(document), RunOptions(), world_size=1)
    (item,) = excinfo.value.items
    assert item.location == "$.sft_args.save_new_basemodel"
    assert not (tmp_path / "out").exists()


# --- trained rows, small adapter, loading back, merging ------------------------------------------------------


@pytest.mark.slow
@pytest.mark.slow
@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_only_new_rows_train_and_the_small_adapter_loads_back_merged_equal_to_unmerged(
    tiny_model_dir: Path, tmp_path: Path, tied: bool
) -> None:
    base_path = tiny_model_dir if tied else untied_copy(tiny_model_dir, tmp_path / "untied")
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    tokenizer.add_special_tokens({"additional_special_tokens": NEW_TOKENS})
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_path)
    new_rows = grow_embeddings(model, tokenizer, [512, 513])
    initial_rows = model.get_input_embeddings().weight[512:].detach().clone()
    wrapped = apply_peft(
        model,
        make_config(peft_conf=LORA).peft_conf,
        quantized=False,
        gradient_checkpointing=False,
        gradient_checkpointing_kwargs=None,
        new_rows=new_rows,
    )
    deltas = [name for name, p in wrapped.named_parameters() if p.requires_grad and "lora_" not in name]
    assert len(deltas) == (1 if tied else 2) and all("trainable_tokens_delta" in name for name in deltas)

    input_ids = torch.tensor([[1, 512, 40, 41, 513, 42, 43, 513, 2]] * 2)
    optimizer = torch.optim.AdamW([p for p in wrapped.parameters() if p.requires_grad], lr=1e-2)
    wrapped.train()
    losses = []
    for _ in range(8):
        loss = wrapped(input_ids=input_ids, labels=input_ids).loss
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert losses[-1] < losses[0]
    wrapped.eval()
    with torch.no_grad():
        trained_logits = wrapped(input_ids=input_ids).logits
    trained_rows = wrapped.get_input_embeddings().weight[512:].detach()
    trained_output_rows = wrapped.get_output_embeddings().weight[512:].detach()
    assert not torch.allclose(trained_rows, initial_rows)
    assert not torch.allclose(trained_output_rows, initial_rows)

    adapter = tmp_path / "adapter"
    wrapped.save_pretrained(adapter)
    tokenizer.save_pretrained(adapter)
    tensors = adapter_tensors(adapter)
    assert not [key for key, shape in tensors.items() if 514 in shape], "a full embedding matrix was saved"
    rows = {key: shape for key, shape in tensors.items() if "lora_" not in key}
    assert len(rows) == (1 if tied else 2) and set(rows.values()) == {(2, 64)}
    base_size = (Path(base_path) / "model.safetensors").stat().st_size
    assert (adapter / "adapter_model.safetensors").stat().st_size < 0.2 * base_size

    torch.manual_seed(12345)  # the loader's own initialisation of the new rows must not matter
    loaded = load_for_inference(base_path, adapter)
    loaded.eval()
    with torch.no_grad():
        unmerged = loaded(input_ids=input_ids).logits
    torch.testing.assert_close(unmerged, trained_logits, atol=1e-5, rtol=1e-5)
    merged_model = loaded.merge_and_unload()
    with torch.no_grad():
        merged = merged_model(input_ids=input_ids).logits
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(merged_model.get_input_embeddings().weight[512:], trained_rows)
    torch.testing.assert_close(merged_model.get_output_embeddings().weight[512:], trained_output_rows)
    merged_model.save_pretrained(tmp_path / "merged")  # a plain model, as vLLM-style servers want
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    with torch.no_grad():
        torch.testing.assert_close(plain(input_ids=input_ids).logits, merged, atol=1e-5, rtol=1e-5)


# --- whole runs ----------------------------------------------------------------------------------------------


def logged_losses(log_history: list[dict[str, Any]]) -> list[float]:
    return [entry["loss"] for entry in log_history if "loss" in entry]


@pytest.mark.slow
@pytest.mark.slow
def test_lora_run_with_new_tokens_writes_no_base_copy_unless_asked(tmp_path: Path) -> None:
    output_dir = tmp_path / "run"
    result = train(load_config(tiny_run_document(output_dir, training_args={"max_steps": 4})), RunOptions())
    assert sorted(path.name for path in output_dir.iterdir() if path.is_dir()) == ["checkpoint-final"]
    adapter_config = json.loads((result.final_checkpoint / "adapter_config.json").read_text())
    assert adapter_config["trainable_token_indices"] == [512, 513]
    assert adapter_config["base_model_name_or_path"] == str(EXAMPLES / "tiny-llama")
    assert not [shape for shape in adapter_tensors(result.final_checkpoint).values() if 514 in shape]

    asked = tmp_path / "asked"
    document = tiny_run_document(asked, training_args={"max_steps": 2}, sft_args={"save_new_basemodel": True})
    train(load_config(document), RunOptions())
    copy = AutoModelForCausalLM.from_pretrained(asked / "checkpoint-new-basemodel")
    assert copy.get_input_embeddings().weight.shape == (514, 64)


@pytest.mark.slow
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.usefixtures("quiet_int8_matmul")
@pytest.mark.parametrize("bits", ["4bit", "8bit"])
def test_qlora_with_new_tokens_learns_and_resumes_to_the_same_adapter(tmp_path: Path, bits: str) -> None:
    output_dir = tmp_path / bits
    document = tiny_run_document(
        output_dir,
        quant_conf=QUANT[bits],
        training_args={"max_steps": 12, "save_strategy": "steps", "save_steps": 6, "logging_steps": 1},
        run_conf={"model": str(EXAMPLES / "tiny-llama"), "resume_from_checkpoint": "auto"},
    )
    first = train(load_config(document), RunOptions())
    losses = logged_losses(first.log_history)
    assert len(losses) == 12
    assert sum(losses[-3:]) < sum(losses[:3]), losses
    assert "base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta" in adapter_tensors(
        output_dir / "checkpoint-6"
    )
    finished = tmp_path / "finished"
    shutil.copytree(first.final_checkpoint, finished)

    # The job "died" after its step-6 checkpoint: the rest is gone, and `auto` resumes from checkpoint-6.
    shutil.rmtree(output_dir / "checkpoint-12")
    shutil.rmtree(output_dir / "checkpoint-final")
    resumed = train(load_config(document), RunOptions())
    steps = [entry["step"] for entry in resumed.log_history if "loss" in entry]
    assert steps[-6:] == [7, 8, 9, 10, 11, 12]
    # the same steps 7-12 as the uninterrupted run (TRL keeps QLoRA's trained weights in bfloat16, PEFT loads a
    # resumed adapter in float32: equal to bfloat16 precision, not bit for bit)
    assert logged_losses(resumed.log_history)[-6:] == pytest.approx(losses[-6:], abs=0.01)
    with (
        safe_open(str(finished / "adapter_model.safetensors"), "pt") as a,
        safe_open(str(resumed.final_checkpoint / "adapter_model.safetensors"), "pt") as b,
    ):
        assert set(a.keys()) == set(b.keys())
        for key in a.keys():  # noqa: SIM118
            torch.testing.assert_close(
                a.get_tensor(key).float(), b.get_tensor(key).float(), atol=2e-3, rtol=2e-2
            )


@pytest.mark.slow
@pytest.mark.slow
def test_untied_run_trains_the_new_rows_of_both_embeddings_through_trl(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    base = untied_copy(tiny_model_dir, tmp_path / "untied")
    output_dir = tmp_path / "run"
    document = tiny_run_document(
        output_dir,
        run_conf={"model": str(base)},
        training_args={"max_steps": 4},
        sft_args={"save_new_basemodel": True},  # the rows as initialised, to compare with the trained ones
    )
    result = train(load_config(document), RunOptions())
    initial = AutoModelForCausalLM.from_pretrained(output_dir / "checkpoint-new-basemodel")
    prefix = "base_model.model."
    with safe_open(str(result.final_checkpoint / "adapter_model.safetensors"), "pt") as handle:
        trained_input = handle.get_tensor(f"{prefix}model.embed_tokens.token_adapter.trainable_tokens_delta")
        trained_output = handle.get_tensor(f"{prefix}lm_head.token_adapter.trainable_tokens_delta")
    for trained, matrix in (
        (trained_input, initial.get_input_embeddings().weight),
        (trained_output, initial.get_output_embeddings().weight),
    ):
        assert trained.shape == (2, 64)
        assert not torch.allclose(trained, matrix[512:].detach())  # changed by training
        # moved from the saved initial rows by at most 4 Adam steps of learning rate 3e-3
        assert (trained - matrix[512:].detach()).abs().max() <= 4 * 3e-3 * 1.1


@pytest.mark.slow
@pytest.mark.slow
def test_an_adapter_type_without_trainable_tokens_trains_and_reloads_whole_embedding_copies(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": NEW_TOKENS})
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    wrapped = apply_peft(
        model,
        make_config(peft_conf={"peft_type": "IA3", "peft_kwargs": {}}).peft_conf,
        quantized=False,
        gradient_checkpointing=False,
        gradient_checkpointing_kwargs=None,
        new_rows=grow_embeddings(model, tokenizer, [512, 513]),
    )
    assert wrapped.peft_config["default"].modules_to_save == ["embed_tokens", "lm_head"]
    input_ids = torch.tensor([[1, 512, 40, 41, 513, 42, 2]])
    optimizer = torch.optim.AdamW([p for p in wrapped.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        wrapped(input_ids=input_ids, labels=input_ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    wrapped.eval()
    with torch.no_grad():
        trained = wrapped(input_ids=input_ids).logits
    wrapped.save_pretrained(tmp_path / "adapter")
    tokenizer.save_pretrained(tmp_path / "adapter")
    copies = {key: shape for key, shape in adapter_tensors(tmp_path / "adapter").items() if 514 in shape}
    # the two trained copies (PEFT names them after the module), not also the base matrices
    assert sorted(copies) == ["base_model.model.lm_head.weight", "base_model.model.model.embed_tokens.weight"]
    loaded = load_for_inference(tiny_model_dir, tmp_path / "adapter")
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=input_ids).logits, trained, atol=1e-5, rtol=1e-5)
