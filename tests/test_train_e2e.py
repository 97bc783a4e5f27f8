"""End to end on the shipped tiny model: real training, real checkpoints, real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ftconfig.runtime import load_config
from ftconfig.runtime.training._run import RunOptions, train
from tests.helpers import EXAMPLES, load_for_inference, tiny_run_document

pytestmark = pytest.mark.slow


def logged_losses(log_history: list[dict]) -> list[float]:
    return [entry["loss"] for entry in log_history if "loss" in entry]


def write_config(path: Path, document: dict) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ftconfig", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)


def test_lora_run_learns_and_its_adapter_loads_back_and_generates(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    output_dir = tmp_path / "lora"
    config = load_config(tiny_run_document(output_dir, training_args={"max_steps": 40}))
    result = train(config, RunOptions())
    losses = logged_losses(result.log_history)
    assert len(losses) >= 4
    # Only LoRA and the two new tokens' rows train (not the whole embedding matrix): on this random tiny model
    # that takes the loss from about 6.09 to 5.50 in 40 steps.
    assert losses == sorted(losses, reverse=True) and losses[-1] < 0.93 * losses[0], losses
    final = output_dir / "checkpoint-final"
    assert (final / "adapter_model.safetensors").is_file()
    # chat-ml added two tokens: their trained rows are in the adapter, which loads onto the original base
    # resized to the tokenizer (the documented lines); no grown copy of the base is written.
    assert not (output_dir / "checkpoint-new-basemodel").exists()
    model = load_for_inference(EXAMPLES / "tiny-llama", final)
    tokenizer = AutoTokenizer.from_pretrained(final)
    assert tokenizer.eos_token == "<|im_end|>"
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 plus 3?"}], add_generation_prompt=True, tokenize=False
    )
    inputs = tokenizer(prompt, return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]
    resolved = json.loads((output_dir / "resolved_config.json").read_text())
    assert set(resolved) == {"config", "resolved"}
    assert resolved["resolved"]["per_device_train_batch_size"] == 8
    assert "transformers" in resolved["resolved"]["versions"]
    load_config(resolved["config"])  # the written config is itself a valid config


def test_full_parameter_run_saves_a_loadable_model(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    output_dir = tmp_path / "full"
    document = tiny_run_document(
        output_dir,
        peft_conf={"peft_type": "NO_PEFT"},
        data_conf={"chat_template_name": "mistral-with-system"},
        training_args={"max_steps": 10, "learning_rate": 1e-3},
    )
    result = train(load_config(document), RunOptions())
    model = AutoModelForCausalLM.from_pretrained(result.final_checkpoint)
    assert model.config.vocab_size == 512  # mistral-with-system adds no tokens
    assert not (output_dir / "checkpoint-new-basemodel").exists()


def test_qlora_run_trains_a_4bit_model_on_cpu(tmp_path: Path) -> None:
    output_dir = tmp_path / "qlora"
    document = tiny_run_document(
        output_dir,
        quant_conf={
            "quantization_type": "bits-and-bytes",
            "load_in_4bit": True,
            "bnb_4bit_quant_type": "nf4",
        },
        data_conf={"chat_template_name": "keep-original"},
        training_args={"max_steps": 10},
    )
    result = train(load_config(document), RunOptions())
    losses = logged_losses(result.log_history)
    assert losses and all(loss == loss for loss in losses)  # finite, not NaN
    assert (result.final_checkpoint / "adapter_model.safetensors").is_file()


def test_completions_only_with_new_tokens_trains_only_assistant_content(tmp_path: Path) -> None:
    output_dir = tmp_path / "chatml"
    config_path = write_config(
        tmp_path / "c.yaml",
        tiny_run_document(output_dir, sft_args={"max_seq_length": 256, "train_on_completions_only": True}),
    )
    plan_result = run_cli(str(config_path), "--dry-run", "--json")
    assert plan_result.returncode == 0, plan_result.stderr
    plan = json.loads(plan_result.stdout)
    example = plan["first_example"]
    assert example["text"].startswith("<s><|im_start|>")
    assert "<|im_start|>assistant" not in example["trained_text"]
    assert example["trained_text"].endswith("<|im_end|>")
    assert plan["added_tokens"] == 2
    assert not output_dir.exists()  # a dry run writes nothing

    result = train(load_config(yaml.safe_load(config_path.read_text())), RunOptions())
    adapter_config = json.loads((result.final_checkpoint / "adapter_config.json").read_text())
    assert adapter_config["trainable_token_indices"] == plan["new_token_ids"] == [512, 513]


def test_resume_auto_continues_from_the_newest_checkpoint(tmp_path: Path) -> None:
    output_dir = tmp_path / "resume"
    document = tiny_run_document(
        output_dir,
        training_args={"max_steps": 10, "save_strategy": "steps", "save_steps": 4, "logging_steps": 1},
        run_conf={"model": str(EXAMPLES / "tiny-llama"), "resume_from_checkpoint": "auto"},
    )
    train(load_config(document), RunOptions())
    # Pretend the job died after step 8: its last checkpoint and the final save are gone.
    import shutil

    shutil.rmtree(output_dir / "checkpoint-10")
    shutil.rmtree(output_dir / "checkpoint-final")
    result = train(load_config(document), RunOptions())
    steps = [entry["step"] for entry in result.log_history if "loss" in entry]
    assert steps[0] == 1 and steps[-1] == 10
    resumed_steps = [entry["step"] for entry in result.log_history[8:] if "loss" in entry]
    assert resumed_steps == [9, 10]
    assert (output_dir / "checkpoint-final").is_dir()


def test_a_second_run_over_a_finished_one_is_refused_before_anything_loads(tmp_path: Path) -> None:
    output_dir = tmp_path / "done"
    (output_dir / "checkpoint-final").mkdir(parents=True)
    config_path = write_config(tmp_path / "c.yaml", tiny_run_document(output_dir))
    result = run_cli(str(config_path))
    assert result.returncode == 2
    assert "already holds a run" in result.stderr and "Traceback" not in result.stderr
    assert sorted(path.name for path in output_dir.iterdir()) == ["checkpoint-final"]


def test_checkpoint_rotation_keeps_the_new_base_model_and_the_newest_checkpoints(tmp_path: Path) -> None:
    output_dir = tmp_path / "rotate"
    document = tiny_run_document(
        output_dir,
        training_args={"max_steps": 6, "save_strategy": "steps", "save_steps": 2, "save_total_limit": 1},
        sft_args={"save_new_basemodel": True},
    )
    train(load_config(document), RunOptions())
    names = sorted(path.name for path in output_dir.iterdir() if path.is_dir())
    assert names == ["checkpoint-6", "checkpoint-final", "checkpoint-new-basemodel"]
