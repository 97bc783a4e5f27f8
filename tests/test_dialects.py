"""The dialect corpus (tests/cases/dialects): every config migrates, validates and dry-runs on the tiny model;
a handful train for two steps."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ftconfig._ftschema_cli import cli as ftschema
from ftconfig.runtime.config._errors import UserError
from ftconfig.runtime.config._load import read_document

REPO = Path(__file__).resolve().parent.parent
DIALECTS = REPO / "tests" / "cases" / "dialects"
DATA = REPO / "examples" / "data"
CORPUS = sorted(path for path in DIALECTS.iterdir() if path.suffix in (".yaml", ".json"))
FTRUN = str(Path(sys.executable).with_name("ftrun"))
HAS_DEEPSPEED = importlib.util.find_spec("deepspeed") is not None
# Real two-step runs: full/LoRA, completions-only with unk-convert-to-eos, LoRA on embeddings, both determinisms.
TRAINED = [
    "old-chart-full-llama.yaml",
    "old-cpu-no-cuda.yaml",
    "old-completions-unk-eos.yaml",
    "old-lora-embeddings.yaml",
    "new-dtype-full-determinism.yaml",
    "new-determinism-half.yaml",
]


def test_the_corpus_covers_the_dialects_and_shapes_it_should() -> None:
    assert len(CORPUS) >= 25
    documents = [read_document(path) for path in CORPUS]
    peft_types = {document["peft_conf"]["peft_type"] for document in documents}
    assert {"NO_PEFT", "LORA"} <= peft_types
    assert any("quant_conf" in document for document in documents)  # QLoRA
    training_inputs = {document["data_conf"]["training_data"]["type"] for document in documents}
    validation_inputs = {document["data_conf"]["validation_data"]["type"] for document in documents}
    assert training_inputs == {"CONCATENATION", "PRECOMPUTE_WEIGHTED_MIX"}
    assert validation_inputs == {"AUTO_SPLIT", "CONCATENATION", "NONE"}
    assert any("tracking" in document for document in documents)
    assert any("deepspeed" in document["training_args"] for document in documents)
    assert any("fsdp" in document["training_args"] for document in documents)
    assert {path.suffix for path in CORPUS} == {".yaml", ".json"}


def migrated_copy(source: Path, tmp_path: Path) -> Path:
    """`ftschema migrate` on a copy; it must succeed, and a second run must find nothing left."""
    path = tmp_path / source.name
    shutil.copy(source, path)
    first = CliRunner().invoke(ftschema, ["migrate", str(path)])
    assert first.exit_code == 0, first.output
    if source.name.startswith("old-"):
        assert "nothing to migrate" not in first.output
    again = CliRunner().invoke(ftschema, ["migrate", "--check", str(path)])
    assert again.exit_code == 0 and "nothing to migrate" in again.output, again.output
    valid = CliRunner().invoke(ftschema, ["validate", str(path)])
    assert valid.exit_code == 0, valid.output
    return path


def on_tiny_model(path: Path, tmp_path: Path, tiny_model_dir: Path, **training_args: Any) -> Path:
    """The migrated config with the model, data, output and tracking server swapped for local tiny ones."""
    document = read_document(path)
    document["run_conf"]["model"] = str(tiny_model_dir)
    document["run_conf"].pop("tokenizer", None)
    sources = [DATA / "train.jsonl", DATA / "extra.jsonl"]
    for index, entry in enumerate(document["data_conf"]["training_data"]["datasets"]):
        entry["path"] = str(sources[index % len(sources)])
    for entry in document["data_conf"]["validation_data"].get("datasets", []):
        entry["path"] = str(DATA / "valid.jsonl")
    document["training_args"]["output_dir"] = str(tmp_path / "out")
    document["training_args"].update(training_args)
    if (
        not HAS_DEEPSPEED
    ):  # not installed here; test_deepspeed_without_the_package_is_a_config_error covers it
        document["training_args"].pop("deepspeed", None)
    if document.get("tracking"):
        document["tracking"]["mlflow_server_uri"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tiny = tmp_path / "tiny.json"
    tiny.write_text(json.dumps(document), encoding="utf-8")
    return tiny


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    output: str


def dry_run(config: Path) -> Outcome:
    """`ftrun CONFIG --dry-run --json` in this process; a UserError counts as ftrun's main() reports it."""
    from ftconfig._ftrun_cli import cli as ftrun

    result = CliRunner().invoke(ftrun, [str(config), "--dry-run", "--json"])
    if isinstance(result.exception, UserError):
        return Outcome(result.exception.exit_code, str(result.exception))
    return Outcome(result.exit_code, result.stdout)


@pytest.mark.parametrize("source", CORPUS, ids=lambda path: path.name)
def test_each_config_migrates_validates_and_dry_runs_on_the_tiny_model(
    source: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    pytest.importorskip("torch")
    config = on_tiny_model(migrated_copy(source, tmp_path), tmp_path, tiny_model_dir)
    outcome = dry_run(config)
    assert outcome.exit_code == 0, outcome.output
    plan = json.loads(outcome.output)
    assert plan["train_examples"] > 0
    assert not (tmp_path / "out" / "checkpoint-final").exists()


def test_deepspeed_without_the_package_is_a_config_error(tmp_path: Path, tiny_model_dir: Path) -> None:
    if HAS_DEEPSPEED:
        pytest.skip("deepspeed is installed here")
    path = migrated_copy(DIALECTS / "old-deepspeed-zero3.yaml", tmp_path)
    document = read_document(path)
    config = on_tiny_model(path, tmp_path, tiny_model_dir)
    with_deepspeed = json.loads(config.read_text(encoding="utf-8"))
    with_deepspeed["training_args"]["deepspeed"] = document["training_args"]["deepspeed"]
    config.write_text(json.dumps(with_deepspeed), encoding="utf-8")
    outcome = dry_run(config)
    assert outcome.exit_code == 2
    assert "$.training_args" in outcome.output and "deepspeed" in outcome.output


@pytest.mark.slow
@pytest.mark.parametrize("name", TRAINED)
def test_migrated_configs_train_two_steps(name: str, tmp_path: Path, tiny_model_dir: Path) -> None:
    config = on_tiny_model(
        migrated_copy(DIALECTS / name, tmp_path),
        tmp_path,
        tiny_model_dir,
        max_steps=2,
        save_strategy="no",
        eval_strategy="no",
        bf16=False,
    )
    result = subprocess.run([FTRUN, str(config)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "checkpoint-final").is_dir()
    state = json.loads((tmp_path / "out" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
