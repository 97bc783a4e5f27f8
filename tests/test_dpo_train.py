"""DPO trained for real on the shipped tiny model: LoRA, full-parameter, QLoRA, from an SFT adapter, resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ftconfig.runtime import load_config
from ftconfig.runtime.training._run import RunOptions, train
from tests.helpers import EXAMPLES, tiny_run_document

pytestmark = [pytest.mark.slow]


def dpo_document(output_dir: Path, **sections: Any) -> dict[str, Any]:
    from ftconfig.tools.build_tiny_model import tiny_dpo_document

    return tiny_dpo_document(output_dir, EXAMPLES, **sections)


def logged(log_history: list[dict[str, Any]], key: str) -> list[float]:
    return [float(entry[key]) for entry in log_history if key in entry]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ftconfig", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)


def write_config(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def adapter_weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(folder / "adapter_model.safetensors")


def test_lora_dpo_raises_the_reward_margin_on_a_learnable_preference(tmp_path: Path) -> None:
    output_dir = tmp_path / "lora"
    document = dpo_document(
        output_dir, training_args={"max_steps": 30, "learning_rate": 1e-2, "logging_steps": 5}
    )
    result = train(load_config(document), RunOptions())
    margins = logged(result.log_history, "rewards/margins")
    accuracies = logged(result.log_history, "rewards/accuracies")
    assert len(margins) == 6, result.log_history
    assert margins[-1] > margins[0] and margins[-1] > 0, margins
    assert accuracies[-1] > 0.5, accuracies
    final = output_dir / "checkpoint-final"
    assert (final / "adapter_model.safetensors").is_file()
    assert not (final / "ref").exists()  # TRL's frozen reference adapter is not part of the result
    resolved = json.loads((output_dir / "resolved_config.json").read_text())
    assert resolved["config"]["method"] == "dpo" and "sft_args" not in resolved["config"]
    load_config(resolved["config"])  # the written config is itself a valid DPO config


def test_full_parameter_dpo_trains_against_a_frozen_copy_and_saves_a_loadable_model(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    document = dpo_document(
        tmp_path / "full",
        peft_conf={"peft_type": "NO_PEFT"},
        data_conf={"chat_template_name": "mistral-with-system"},
        training_args={"max_steps": 6, "learning_rate": 1e-3, "logging_steps": 1},
    )
    result = train(load_config(document), RunOptions())
    chosen = logged(result.log_history, "rewards/chosen")
    # The reward is beta x (policy - reference) log-prob: it moves away from 0 only if the reference stays put.
    assert len(chosen) == 6 and any(abs(value) > 1e-4 for value in chosen[1:]), chosen
    model = AutoModelForCausalLM.from_pretrained(result.final_checkpoint)
    assert model.config.vocab_size == 512


def test_qlora_dpo_runs_on_a_4bit_model(tmp_path: Path) -> None:
    document = dpo_document(
        tmp_path / "qlora",
        quant_conf={
            "quantization_type": "bits-and-bytes",
            "load_in_4bit": True,
            "bnb_4bit_quant_type": "nf4",
        },
        data_conf={"chat_template_name": "keep-original"},
        training_args={"max_steps": 4, "logging_steps": 1},
    )
    result = train(load_config(document), RunOptions())
    losses = logged(result.log_history, "loss")
    assert len(losses) == 4 and all(loss == loss for loss in losses)  # finite, not NaN
    assert (result.final_checkpoint / "adapter_model.safetensors").is_file()


def test_dpo_continues_an_sft_runs_adapter_without_a_merge(tmp_path: Path) -> None:
    sft_dir = tmp_path / "sft"
    sft = tiny_run_document(
        sft_dir, data_conf={"chat_template_name": "mistral-with-system"}, training_args={"max_steps": 4}
    )
    train(load_config(sft), RunOptions())
    sft_adapter = sft_dir / "checkpoint-final"
    document = dpo_document(
        tmp_path / "dpo",
        peft_conf={"peft_type": "PRETRAINED_PEFT", "name_or_path": str(sft_adapter)},
        data_conf={"chat_template_name": "mistral-with-system"},
        training_args={"max_steps": 4, "logging_steps": 1},
    )
    result = train(load_config(document), RunOptions())
    before, after = adapter_weights(sft_adapter), adapter_weights(result.final_checkpoint)
    assert before.keys() == after.keys()  # the same adapter, trained further
    assert any(not before[name].equal(after[name]) for name in before)
    # The reference is the SFT adapter itself (frozen): at the first step policy == reference, reward 0.
    first = result.log_history[0]
    assert abs(first["rewards/chosen"]) < 1e-6 and abs(first["rewards/rejected"]) < 1e-6, first


def test_dry_run_json_shows_the_first_preference_pair_and_loads_no_weights(tmp_path: Path) -> None:
    output_dir = tmp_path / "plan"
    config = write_config(tmp_path / "dpo.yaml", dpo_document(output_dir))
    result = run_cli(str(config), "--dry-run", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    plan = json.loads(result.stdout)
    assert plan["method"] == "dpo" and plan["train_examples"] == 160
    example = plan["first_example"]
    assert example["prompt"].startswith("<s><|im_start|>user\n") and example["prompt"].endswith(
        "<|im_end|>\n"
    )
    assert example["chosen"].startswith("<|im_start|>assistant\n")
    assert example["rejected"].startswith("<|im_start|>assistant\n")
    assert example["text"] == example["prompt"] + example["chosen"]
    assert example["trained_text"] == example["chosen"]
    assert not output_dir.exists()
    human = run_cli(str(config), "--dry-run")
    assert human.returncode == 0 and "rejected: <s><|im_start|>user" in human.stdout, human.stdout


def test_bad_preference_data_exits_2_with_file_line_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    good = {
        "prompt_messages": [{"role": "user", "content": "Hi"}],
        "chosen_messages": [{"role": "assistant", "content": "Hello"}],
        "rejected_messages": [{"role": "assistant", "content": "No"}],
    }
    bad.write_text(json.dumps(good) + "\n" + json.dumps({**good, "rejected_messages": []}) + "\n")
    output_dir = tmp_path / "out"
    document = dpo_document(
        output_dir, data_conf={"training_data": {"type": "CONCATENATION", "datasets": [{"path": str(bad)}]}}
    )
    result = run_cli(str(write_config(tmp_path / "dpo.yaml", document)))
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"{bad}:2" in result.stderr and "`rejected_messages` is an empty list" in result.stderr
    assert "Traceback" not in result.stderr
    assert not output_dir.exists()


def test_a_dpo_run_killed_after_a_checkpoint_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    import torch

    from tests.helpers import run_ftrun, signal_after_first_checkpoint, start_ftrun

    def config(name: str) -> Path:
        document = dpo_document(
            tmp_path / name,
            data_conf={"chat_template_name": "mistral-with-system"},
            training_args={
                "max_steps": 12,
                "save_strategy": "steps",
                "save_steps": 4,
                "logging_steps": 1,
                "full_determinism": True,
                "dataloader_num_workers": 0,
            },
            run_conf={"model": str(EXAMPLES / "tiny-llama"), "resume_from_checkpoint": "auto"},
        )
        return write_config(tmp_path / f"{name}.yaml", document)

    uninterrupted = run_ftrun(config("whole"))
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    killed = tmp_path / "killed"
    returncode, _, _ = signal_after_first_checkpoint(start_ftrun(config("killed")), killed, signal.SIGKILL)
    assert returncode == -signal.SIGKILL and not (killed / "checkpoint-final").exists()
    resumed = run_ftrun(config("killed"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr

    def losses(output_dir: Path) -> dict[int, float]:
        state = json.loads((output_dir / "trainer_state.json").read_text())
        return {entry["step"]: entry["loss"] for entry in state["log_history"] if "loss" in entry}

    whole, after = losses(tmp_path / "whole"), losses(killed)
    assert sorted(after) == list(range(1, 13))
    torch.testing.assert_close(
        torch.tensor([after[s] for s in range(1, 13)]), torch.tensor([whole[s] for s in range(1, 13)])
    )
    first, second = (
        adapter_weights(tmp_path / "whole" / "checkpoint-final"),
        adapter_weights(killed / "checkpoint-final"),
    )
    assert max(float((first[name] - second[name]).abs().max()) for name in first) <= 1e-6


def _trainer_for(document: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(trainer, model, prepared run) as ftrun builds them, without training."""
    from ftconfig.generated.config import NoPeftConfig
    from ftconfig.runtime.training._dpo import build_dpo_trainer
    from ftconfig.runtime.training._run import _load_and_adapt_model, prepare_run

    config = load_config(document)
    run = prepare_run(config, RunOptions(), world_size=1)
    model = _load_and_adapt_model(run, is_main=True)
    trainer = build_dpo_trainer(
        model,
        args=run.sft_config,
        train_dataset=run.data.train,
        eval_dataset=None,
        tokenizer=run.tokenizer,
        callbacks=[],
        uses_adapter=not isinstance(config.peft_conf, NoPeftConfig),
    )
    return trainer, model, run


def test_lora_reference_is_the_base_with_the_adapter_disabled_and_no_second_model(tmp_path: Path) -> None:
    import torch

    document = dpo_document(tmp_path / "lora", data_conf={"chat_template_name": "mistral-with-system"})
    trainer, model, run = _trainer_for(document)
    assert trainer.ref_model is None  # no second model in memory
    batch = trainer.data_collator([run.data.train[index] for index in range(4)])
    with torch.no_grad():  # the trained adapter moves away from its start, as after some steps
        for name, parameter in model.named_parameters():
            if ".default." in name and "lora_B" in name:
                parameter.add_(0.05)
    reference = torch.cat(trainer.compute_ref_log_probs(trainer.model, batch))
    model.delete_adapter(
        "ref"
    )  # TRL's frozen copy of the new adapter gone: its reference is the adapter disabled
    disabled = torch.cat(trainer.compute_ref_log_probs(trainer.model, batch))
    torch.testing.assert_close(reference, disabled)
    with torch.no_grad():
        policy = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        with model.disable_adapter():
            base = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert not torch.allclose(policy, base)  # the check above could fail: the policy differs from the base


def test_full_parameter_reference_is_a_frozen_copy_sharing_no_weights(tmp_path: Path) -> None:
    document = dpo_document(
        tmp_path / "full",
        peft_conf={"peft_type": "NO_PEFT"},
        data_conf={"chat_template_name": "mistral-with-system"},
    )
    trainer, model, _ = _trainer_for(document)
    reference = trainer.ref_model
    assert reference is not None and not reference.training
    assert not any(parameter.requires_grad for parameter in reference.parameters())
    shared = {p.data_ptr() for p in reference.parameters()} & {p.data_ptr() for p in model.parameters()}
    assert not shared
