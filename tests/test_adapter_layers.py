"""LoRA on the embedding layers and unk-convert-to-eos from the command line: what the dry run accepts trains,
and what cannot train is refused before any weights load, by the dry run and the real run alike."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ftconfig._ftrun_cli import cli as ftrun
from ftconfig.runtime.config._errors import UserError
from ftconfig.tools.build_tiny_model import tiny_run_document

torch = pytest.importorskip("torch")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FTRUN = str(Path(sys.executable).with_name("ftrun"))


@pytest.fixture(scope="module")
def untied_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The tiny model with its own output layer (the shipped one ties lm_head to embed_tokens)."""
    from transformers import AutoModelForCausalLM

    target = tmp_path_factory.mktemp("untied") / "tiny-untied"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(model.get_input_embeddings().weight.detach().clone())
    model.save_pretrained(target)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (tiny_model_dir / name).exists():
            shutil.copy(tiny_model_dir / name, target / name)
    reloaded = AutoModelForCausalLM.from_pretrained(target)
    assert reloaded.lm_head.weight.data_ptr() != reloaded.get_input_embeddings().weight.data_ptr()
    return target


def model_dir_for(kind: str, tiny_model_dir: Path, untied_model_dir: Path) -> Path:
    return tiny_model_dir if kind == "tied" else untied_model_dir


def write_config(tmp_path: Path, model_dir: Path, **sections: Any) -> Path:
    document = tiny_run_document(tmp_path / "out", EXAMPLES, **sections)
    document["run_conf"]["model"] = str(model_dir)
    document["training_args"].update(max_steps=2, logging_steps=1)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def lora(target_modules: str | list[str]) -> dict[str, Any]:
    return {"peft_type": "LORA", "peft_kwargs": {"r": 4, "lora_alpha": 8, "target_modules": target_modules}}


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    output: str


def dry_run(config: Path) -> Outcome:
    """`ftrun CONFIG --dry-run --json` in this process; a UserError counts as ftrun's main() reports it."""
    result = CliRunner().invoke(ftrun, [str(config), "--dry-run", "--json"])
    if isinstance(result.exception, UserError):
        return Outcome(result.exception.exit_code, str(result.exception))
    return Outcome(result.exit_code, result.stdout)


@pytest.mark.parametrize("kind", ["tied", "untied"])
@pytest.mark.parametrize(
    "targets",
    [["q_proj", "lm_head"], ["q_proj", "embed_tokens", "lm_head"], r".*(q_proj|lm_head)"],
    ids=["list", "with-embeddings", "regex"],
)
def test_lora_on_lm_head_is_refused_by_the_dry_run_at_target_modules(
    kind: str, targets: str | list[str], tmp_path: Path, tiny_model_dir: Path, untied_model_dir: Path
) -> None:
    config = write_config(
        tmp_path, model_dir_for(kind, tiny_model_dir, untied_model_dir), peft_conf=lora(targets)
    )
    result = dry_run(config)
    assert result.exit_code == 2, result.output
    assert "$.peft_conf.peft_kwargs.target_modules" in result.output
    assert "output layer 'lm_head'" in result.output and "modules_to_save" in result.output


@pytest.mark.parametrize("targets", [["q_proj", "v_proj"], "all-linear", ["q_proj", "embed_tokens"]])
def test_adapters_that_leave_lm_head_alone_pass_the_dry_run(
    targets: Any, tmp_path: Path, tiny_model_dir: Path
) -> None:
    # keep-original: the template adds no tokens (LoRA on embed_tokens and new-token rows exclude each other).
    config = write_config(
        tmp_path, tiny_model_dir, peft_conf=lora(targets), data_conf={"chat_template_name": "keep-original"}
    )
    result = dry_run(config)
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_lora_on_lm_head_is_refused_by_the_real_run_before_weights_load(
    tmp_path: Path, untied_model_dir: Path
) -> None:
    config = write_config(tmp_path, untied_model_dir, peft_conf=lora(["q_proj", "lm_head"]))
    result = subprocess.run([FTRUN, str(config)], capture_output=True, text=True, check=False)
    assert result.returncode == 2, result.stderr
    assert "output layer 'lm_head'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tied", "untied"])
def test_lora_on_embed_tokens_trains_through_peft_embedding_layers(
    kind: str, tmp_path: Path, tiny_model_dir: Path, untied_model_dir: Path
) -> None:
    from safetensors.torch import load_file

    config = write_config(
        tmp_path,
        model_dir_for(kind, tiny_model_dir, untied_model_dir),
        peft_conf=lora(["q_proj", "embed_tokens"]),
        data_conf={"chat_template_name": "keep-original"},
        training_args={"learning_rate": 1e-2},
    )
    assert dry_run(config).exit_code == 0
    result = subprocess.run([FTRUN, str(config)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    weights = load_file(str(tmp_path / "out" / "checkpoint-final" / "adapter_model.safetensors"))
    embedding = {name: tensor for name, tensor in weights.items() if "embed_tokens" in name}
    assert embedding, sorted(weights)
    # PEFT starts one of the two LoRA embedding factors at zero; training moved both away from it.
    assert all(tensor.abs().sum() > 0 for tensor in embedding.values()), list(embedding)


@pytest.mark.parametrize("completions_only", [False, True])
def test_unk_convert_to_eos_passes_the_dry_run(
    completions_only: bool, tmp_path: Path, tiny_model_dir: Path
) -> None:
    config = write_config(
        tmp_path,
        tiny_model_dir,
        data_conf={"missing_pad_token_strategy": "unk-convert-to-eos"},
        sft_args={"train_on_completions_only": completions_only},
    )
    result = dry_run(config)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["train_examples"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("completions_only", [False, True])
def test_unk_convert_to_eos_trains_from_the_command_line(
    completions_only: bool, tmp_path: Path, tiny_model_dir: Path
) -> None:
    config = write_config(
        tmp_path,
        tiny_model_dir,
        data_conf={"missing_pad_token_strategy": "unk-convert-to-eos"},
        sft_args={"train_on_completions_only": completions_only},
    )
    result = subprocess.run([FTRUN, str(config)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "checkpoint-final" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tied", "untied"])
def test_the_suggested_modules_to_save_lm_head_trains_the_output_layer(
    kind: str, tmp_path: Path, tiny_model_dir: Path, untied_model_dir: Path
) -> None:
    from safetensors.torch import load_file

    model_dir = model_dir_for(kind, tiny_model_dir, untied_model_dir)
    peft_conf = lora(["q_proj"])
    peft_conf["peft_kwargs"]["modules_to_save"] = ["lm_head"]
    config = write_config(
        tmp_path, model_dir, peft_conf=peft_conf, data_conf={"chat_template_name": "keep-original"}
    )
    assert dry_run(config).exit_code == 0
    result = subprocess.run([FTRUN, str(config)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    adapter = load_file(str(tmp_path / "out" / "checkpoint-final" / "adapter_model.safetensors"))
    base = load_file(str(model_dir / "model.safetensors"))
    base_head = base.get("lm_head.weight", base["model.embed_tokens.weight"])
    [trained_head] = [tensor for name, tensor in adapter.items() if name.endswith("lm_head.weight")]
    assert not torch.equal(trained_head, base_head)


@pytest.mark.parametrize(
    ("targets", "exclude"),
    [
        (["q_proj", "lm_head"], None),
        (["model.lm_head"], None),
        (["head"], None),
        (["q_proj", "v_proj"], None),
        (r".*(q_proj|lm_head)", None),
        (r"lm_.*", None),
        (r"head", None),
        (["lm_head"], ["lm_head"]),
        (r".*lm_head", r"lm_.*"),
    ],
)
@pytest.mark.parametrize("name", ["lm_head", "model.lm_head", "model.layers.0.self_attn.q_proj"])
def test_our_target_rule_is_peft_s_own(targets: Any, exclude: Any, name: str) -> None:
    """The dry run decides without importing peft; it must decide as peft's check_target_module_exists does."""
    import peft
    from peft.tuners.tuners_utils import check_target_module_exists

    from ftconfig.runtime.model._adapter_targets import targets_module

    config = peft.LoraConfig(target_modules=targets, exclude_modules=exclude)
    theirs = check_target_module_exists(config, name)
    expected = bool(theirs) and type(theirs).__name__ != "_ExcludedModule"
    assert targets_module(name, targets, exclude) == expected
