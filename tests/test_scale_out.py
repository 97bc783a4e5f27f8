"""Tracked and scaled out: ftrun against a real MLflow server, and a real 2-process torchrun job on CPU."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from tests.helpers import mlflow_runs, run_command, tiny_run_document, write_config

pytestmark = pytest.mark.slow


def test_ftrun_logs_params_metrics_and_config_into_one_mlflow_run_and_run_id_appends(
    mlflow_server: str, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    output_dir = tmp_path / "tracked"
    document = tiny_run_document(
        output_dir,
        training_args={"max_steps": 6, "logging_steps": 2, "report_to": ["none"]},
        run_conf={
            "model": tiny_run_document(tmp_path)["run_conf"]["model"],
            "model_args": {"token": "hf_PLANTED_SECRET_1"},
        },
        tracking={
            "mlflow_server_uri": "http://127.0.0.1:1",
            "experiment_name": "from-config",
            "run_name": "first-run",
        },
    )
    config = write_config(tmp_path / "c.yaml", document)
    # The CLI's server and experiment win over the config's (which points at a dead port).
    result = run_command(
        [
            sys.executable,
            "-m",
            "ftconfig",
            str(config),
            "--mlflow-server-uri",
            mlflow_server,
            "--experiment-name",
            "e2e",
        ],
        tmp_path / "cache",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = mlflow_runs(mlflow_server, "e2e")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name == "first-run"
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["data_conf.chat_template_name"] == "chat-ml"
    assert "hf_PLANTED_SECRET_1" not in json.dumps(params) + json.dumps(run.data.tags)
    assert "hf_PLANTED_SECRET_1" not in result.stdout + result.stderr
    client = MlflowClient(tracking_uri=mlflow_server)
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [point.step for point in history] == [2, 4, 6]
    artifacts = [item.path for item in client.list_artifacts(run.info.run_id)]
    assert "resolved_config.json" in artifacts
    assert any(key.startswith("ftconfig.version.") for key in run.data.tags)

    # A second job with tracking.run_id logs into the same run instead of opening a new one.
    document["tracking"] = {
        "mlflow_server_uri": mlflow_server,
        "experiment_name": "e2e",
        "run_id": run.info.run_id,
    }
    document["training_args"]["output_dir"] = str(tmp_path / "tracked-again")
    again = run_command(
        [sys.executable, "-m", "ftconfig", str(write_config(tmp_path / "c2.yaml", document))],
        tmp_path / "cache",
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(mlflow_runs(mlflow_server, "e2e")) == 1
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 6


def test_two_process_torchrun_job_splits_the_batch_prepares_once_and_ends_with_equal_weights(
    mlflow_server: str, tmp_path: Path
) -> None:
    output_dir = tmp_path / "ddp"
    document = tiny_run_document(
        output_dir,
        training_args={"max_steps": 4, "logging_steps": 1},
        batchsize_conf={"total_train_batch_size": 8, "max_per_device_train_batch_size": 2},
        tracking={"mlflow_server_uri": mlflow_server, "experiment_name": "ddp"},
        sft_args={"save_new_basemodel": True},  # a side effect that must happen once per job
    )
    config = write_config(tmp_path / "ddp.yaml", document)
    torchrun = Path(sys.executable).with_name("torchrun")
    result = run_command(
        [str(torchrun), "--nproc_per_node", "2", "--master_port", "29531", "-m", "ftconfig", str(config)],
        tmp_path / "cache",
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    log = result.stderr
    resolved = json.loads((output_dir / "resolved_config.json").read_text())["resolved"]
    assert resolved["world_size"] == 2
    assert resolved["per_device_train_batch_size"] == 2 and resolved["gradient_accumulation_steps"] == 2
    assert document["batchsize_conf"]["total_train_batch_size"] == 2 * 2 * 2
    # Data preparation ran once: rank 0 tokenised, rank 1 read rank 0's cache.
    assert log.count("prepared data tokenised and cached") == 1
    assert "ftrun[1]: prepared data loaded from the cache" in log
    assert sorted(path.name for path in output_dir.iterdir() if path.is_dir()) == [
        "checkpoint-final",
        "checkpoint-new-basemodel",
    ]
    assert len(list(output_dir.glob("resolved_config.json"))) == 1
    assert "find_unused_parameters" not in log  # DDP's per-step warning, left on by transformers for adapters
    digests = dict(re.findall(r"^(ftrun(?:\[1\])?): final weights sha256 ([0-9a-f]{64})$", log, re.MULTILINE))
    assert set(digests) == {"ftrun", "ftrun[1]"} and digests["ftrun"] == digests["ftrun[1]"]
    runs = mlflow_runs(mlflow_server, "ddp")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"


def test_dry_run_plans_for_a_given_world_size_without_starting_processes(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "c.yaml",
        tiny_run_document(
            tmp_path / "out",
            batchsize_conf={"total_train_batch_size": 64, "max_per_device_train_batch_size": 4},
        ),
    )
    result = run_command(
        [sys.executable, "-m", "ftconfig", str(config), "--dry-run", "--json", "--world-size", "4"],
        tmp_path / "cache",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    plan = json.loads(result.stdout)
    assert (plan["world_size"], plan["per_device_train_batch_size"], plan["gradient_accumulation_steps"]) == (
        4,
        4,
        4,
    )
    refused = run_command(
        [sys.executable, "-m", "ftconfig", str(config), "--dry-run", "--world-size", "3"], tmp_path / "cache"
    )
    assert refused.returncode == 2 and "not divisible by the number of processes (3)" in refused.stderr
