"""DPO tracked and scaled out: a real 2-process torchrun job on CPU logging into a real MLflow server."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from tests.helpers import EXAMPLES, mlflow_runs, run_command, write_config

pytestmark = [pytest.mark.slow]


def test_two_process_dpo_job_prepares_once_logs_one_mlflow_run_and_ends_with_equal_weights(
    mlflow_server: str, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    from ftconfig.tools.build_tiny_model import tiny_dpo_document

    output_dir = tmp_path / "ddp-dpo"
    document = tiny_dpo_document(
        output_dir,
        EXAMPLES,
        training_args={"max_steps": 4, "logging_steps": 1, "ddp_find_unused_parameters": False},
        batchsize_conf={"total_train_batch_size": 8, "max_per_device_train_batch_size": 2},
        tracking={"mlflow_server_uri": mlflow_server, "experiment_name": "ddp-dpo"},
    )
    config = write_config(tmp_path / "dpo.yaml", document)
    torchrun = Path(sys.executable).with_name("torchrun")
    result = run_command(
        [str(torchrun), "--nproc_per_node", "2", "--master_port", "29533", "-m", "ftconfig", str(config)],
        tmp_path / "cache",
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    log = result.stderr
    resolved = json.loads((output_dir / "resolved_config.json").read_text())
    assert resolved["config"]["method"] == "dpo"
    assert resolved["resolved"]["world_size"] == 2
    assert resolved["resolved"]["per_device_train_batch_size"] == 2
    assert resolved["resolved"]["gradient_accumulation_steps"] == 2
    # Preparation ran once: rank 0 tokenised the preference rows, rank 1 read rank 0's cache.
    assert log.count("prepared data tokenised and cached") == 1
    assert "ftrun[1]: prepared data loaded from the cache" in log
    digests = dict(re.findall(r"^(ftrun(?:\[1\])?): final weights sha256 ([0-9a-f]{64})$", log, re.MULTILINE))
    assert set(digests) == {"ftrun", "ftrun[1]"} and digests["ftrun"] == digests["ftrun[1]"]
    runs = mlflow_runs(mlflow_server, "ddp-dpo")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    client = MlflowClient(tracking_uri=mlflow_server)
    margins = client.get_metric_history(runs[0].info.run_id, "rewards/margins")
    assert [point.step for point in margins] == [1, 2, 3, 4]
    assert runs[0].data.params.get("method") == "dpo" or any(
        value == "dpo" for key, value in runs[0].data.params.items() if key.endswith("method")
    ), runs[0].data.params
