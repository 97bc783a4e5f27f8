"""ftmodel on a DPO run directory: its adapter's base is the run's model (a DPO run saves no grown base), and
`evaluate`, which frames chat data the way an SFT run trained on it, refuses the run with a clear error.

The run directory is laid out by hand (resolved_config.json and an adapter_config.json): reading it loads no
weights, which is what these checks are about.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftconfig.runtime.config._errors import UserError
from ftconfig.runtime.inference._run_dir import read_model_source
from ftconfig.tools.build_tiny_model import tiny_dpo_document
from tests.helpers import EXAMPLES, TINY_MODEL


def finished_dpo_run(output_dir: Path) -> Path:
    """A finished LoRA DPO run as ftrun leaves it, minus the weights."""
    final = output_dir / "checkpoint-final"
    final.mkdir(parents=True)
    document = tiny_dpo_document(output_dir, EXAMPLES)
    (output_dir / "resolved_config.json").write_text(json.dumps({"config": document}))
    adapter_config = {"peft_type": "LORA", "base_model_name_or_path": str(TINY_MODEL)}
    (final / "adapter_config.json").write_text(json.dumps(adapter_config))
    return output_dir


def test_a_dpo_runs_adapter_loads_on_the_runs_own_model(tmp_path: Path) -> None:
    run_dir = finished_dpo_run(tmp_path / "dpo-run")
    source = read_model_source(run_dir)
    assert source.adapter == run_dir / "checkpoint-final"
    assert source.base_run_conf.model == tiny_dpo_document(run_dir, EXAMPLES)["run_conf"]["model"]
    assert source.grown_base is False


def test_evaluate_refuses_a_dpo_run_naming_it(tmp_path: Path) -> None:
    from ftconfig.runtime.inference._evaluate import evaluate_model

    run_dir = finished_dpo_run(tmp_path / "dpo-run")
    with pytest.raises(UserError) as refused:
        evaluate_model(read_model_source(run_dir), EXAMPLES / "data" / "valid.jsonl")
    assert str(run_dir) in str(refused.value)
    assert "DPO run" in str(refused.value)
