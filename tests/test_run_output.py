"""What a user reads from a real `ftrun`: the plan first, ftconfig's own messages only, a summary last.

One real tiny run through the real CLI (a subprocess, as a user starts it) is shared by the tests below.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helpers import EXAMPLES, REPO_ROOT, tiny_run_document

pytestmark = pytest.mark.slow

# Library lines that reached users on every run although nobody can act on them.
LIBRARY_NOISE = (
    "gemm_4bit_forward",
    "pip install kernels",
    "FutureWarning",
    "save_embedding_layers",
    "The new embeddings will be initialized",
    "The tokenizer has new PAD/BOS/EOS tokens",
    "warnings.warn(",
)


@dataclass(frozen=True)
class FinishedRun:
    output_dir: Path
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    tmp = tmp_path_factory.mktemp("run-output")
    output_dir = tmp / "out"
    document = tiny_run_document(
        output_dir,
        data_conf={"validation_data": {"type": "AUTO_SPLIT", "ratio": 0.1}},
        training_args={
            "max_steps": 6,
            "logging_steps": 2,
            "eval_strategy": "steps",
            "eval_steps": 3,
            "save_strategy": "steps",
            "save_steps": 3,
        },
    )
    config = tmp / "run.yaml"
    config.write_text(yaml.safe_dump(document))
    result = subprocess.run(
        [sys.executable, "-m", "ftconfig", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        cwd=tmp,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return FinishedRun(output_dir, result.stdout, result.stderr)


@pytest.mark.parametrize("noise", LIBRARY_NOISE)
def test_a_real_run_prints_none_of_the_libraries_noise(finished_run: FinishedRun, noise: str) -> None:
    assert noise not in finished_run.stderr + finished_run.stdout


def test_only_ftconfig_messages_carry_the_ftrun_prefix(finished_run: FinishedRun) -> None:
    prefixed = [line for line in finished_run.stderr.splitlines() if line.startswith("ftrun")]
    assert prefixed
    # Every prefixed message is one ftconfig wrote: none of the libraries' wordings or log formats.
    for line in prefixed:
        assert not re.search(r"Failed to load|\[transformers\]|Retry|Warning:", line), line


def test_a_real_run_starts_with_the_short_plan(finished_run: FinishedRun) -> None:
    stderr = finished_run.stderr
    plan = re.search(
        r"^ftrun: plan: 1 process × batch 8 × accumulation 1 = 8 examples per step; 6 optimizer", stderr, re.M
    )
    assert plan, stderr
    assert re.search(
        r"^ftrun: data: \d+ training examples \(\d+ tokens\), \d+ validation examples", stderr, re.M
    )
    assert re.search(r"^ftrun: training: a new LORA adapter; output in .*out$", stderr, re.M)
    assert plan.start() < stderr.index("final weights sha256")


def test_a_real_run_ends_with_losses_time_result_and_next_commands(finished_run: FinishedRun) -> None:
    history = json.loads((finished_run.output_dir / "trainer_state.json").read_text())
    losses = [entry for entry in history["log_history"] if "loss" in entry]
    evals = [entry for entry in history["log_history"] if "eval_loss" in entry]
    final = finished_run.output_dir / "checkpoint-final"
    lines = finished_run.stdout.strip().splitlines()
    summary = lines[lines.index(next(line for line in lines if line.startswith("ftrun: done in"))) :]
    assert re.match(r"ftrun: done in \d+\.\d s: final train loss ", summary[0])
    assert f"train loss {losses[-1]['loss']:.4f} (step {losses[-1]['step']})" in summary[0]
    assert f"eval loss {evals[-1]['eval_loss']:.4f} (step {evals[-1]['step']})" in summary[0]
    assert summary[1] == f"ftrun: adapter and tokenizer saved in {final}"
    assert summary[2:] == [
        "ftrun: next:",
        f"  ftmodel chat {final}",
        f"  ftmodel merge {finished_run.output_dir} {finished_run.output_dir}-merged",
        f"  ftmodel export-vllm {finished_run.output_dir} {finished_run.output_dir}-vllm",
    ]


def test_the_run_is_not_silent_about_the_plan_it_warns_about(tmp_path: Path) -> None:
    """A run whose logging interval is longer than the run and whose validation set is never used says so."""
    document = tiny_run_document(
        tmp_path / "out",
        data_conf={"validation_data": {"type": "AUTO_SPLIT", "ratio": 0.1}},
        training_args={"max_steps": 6, "logging_steps": 500},
    )
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(document))
    result = subprocess.run(
        [sys.executable, "-m", "ftconfig", str(config), "--dry-run", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = json.loads(result.stdout)["warnings"]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("no training loss will be logged: training_args.logging_steps is 500")
    assert "validation examples are never evaluated: training_args.eval_strategy is 'no'" in warnings[1]


def test_the_model_card_in_output_dir_names_the_local_base_model(finished_run: FinishedRun) -> None:
    card = (finished_run.output_dir / "README.md").read_text(encoding="utf-8")
    assert "[None]" not in card
    assert f"fine-tuned version of the local model `{EXAMPLES / 'tiny-llama'}`" in card


# examples/minimal.yaml is the smallest valid config (the tests' base document), so its plan does warn.
@pytest.mark.parametrize("example", ["quickstart.yaml", "seed-shaped.yaml"])
def test_shipped_examples_plan_runs_that_log_and_use_their_validation_data(
    example: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ftconfig.runtime.config._load import load_config_file
    from ftconfig.runtime.training._plan import build_plan
    from ftconfig.runtime.training._run import RunOptions, prepare_run

    monkeypatch.chdir(REPO_ROOT)
    # A fresh output_dir: `make quickstart` may already have filled the example's own.
    config = load_config_file(EXAMPLES / example, [f"training_args.output_dir={tmp_path / 'out'}"])
    assert build_plan(prepare_run(config, RunOptions(), world_size=1))["warnings"] == []


def test_the_dry_run_header_says_what_it_writes_and_the_plan_lists_its_warnings(tmp_path: Path) -> None:
    document = tiny_run_document(tmp_path / "out", training_args={"max_steps": 6, "logging_steps": 500})
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(document))
    cache = tmp_path / "cache"
    result = subprocess.run(
        [sys.executable, "-m", "ftconfig", str(config), "--dry-run"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env={**os.environ, "FTCONFIG_CACHE_DIR": str(cache)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    header = result.stdout.splitlines()[0]
    assert "nothing written" not in header
    assert "data preparation cache is filled" in header and any(cache.iterdir())
    assert not (tmp_path / "out").exists()
    assert "\nwarnings:\n  - no training loss will be logged" in result.stdout
