"""Secrets stay secret, and remote code stays off unless asked for.

A real `python -m ftconfig` run gets a token in the config, a Hub token in training_args, a password in the MLflow
URI (a real server) and credentials in the environment; then its output, every file it wrote (binary ones and the
members of zip-format `.bin`/`.pt` files included) and everything MLflow holds for the run are searched for them.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from ftconfig.runtime import load_config
from ftconfig.runtime.config._schema import secret_properties
from ftconfig.runtime.config._secrets import detach_hub_token, redact_config, secret_values
from tests.helpers import EXAMPLES, tiny_run_document

MODEL_TOKEN = "hf_modelTOKEN987"
HUB_TOKEN = "hf_hubTOKEN654"
URI_USER, URI_PASSWORD = "alice", "S3cret@Passw0rd"  # an "@" inside: the userinfo ends at the last one
ENV_HF_TOKEN = "hf_envSECRET123"
ENV_MLFLOW_PASSWORD = "mlflowENVpw777"
SECRETS = (MODEL_TOKEN, HUB_TOKEN, URI_PASSWORD, ENV_HF_TOKEN, ENV_MLFLOW_PASSWORD, f"{URI_USER}:")
EXPERIMENT = "secrets"
CPU_ARGS: dict[str, Any] = {"use_cpu": True, "bf16": False, "report_to": "none"}


def secret_document(output_dir: Path, server_uri: str) -> dict[str, Any]:
    return tiny_run_document(
        output_dir,
        training_args={
            "max_steps": 4,
            "save_strategy": "steps",
            "save_steps": 2,
            "logging_steps": 1,
            "hub_token": HUB_TOKEN,
        },
        run_conf={"model": str(EXAMPLES / "tiny-llama"), "model_args": {"token": MODEL_TOKEN}},
        tracking={
            "mlflow_server_uri": server_uri.replace("http://", f"http://{URI_USER}:{URI_PASSWORD}@"),
            "experiment_name": EXPERIMENT,
            # The HF callback then uploads every checkpoint folder (training_args.bin included) to MLflow.
            "hf_mlflow_log_artifacts": True,
        },
    )


def secret_environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    env.pop("DISABLE_MLFLOW_INTEGRATION", None)
    env["HF_TOKEN"] = ENV_HF_TOKEN
    env["MLFLOW_TRACKING_PASSWORD"] = ENV_MLFLOW_PASSWORD
    return env


def leaks_in(name: str, data: bytes) -> list[str]:
    """'name: secret' for each planted secret in some bytes, looking inside zip archives (torch.save) too."""
    found = [f"{name}: {secret}" for secret in SECRETS if secret.encode() in data]
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                found += leaks_in(f"{name}!{member}", archive.read(member))
    return found


def leaks_in_folder(folder: Path) -> list[str]:
    files = [path for path in sorted(folder.rglob("*")) if path.is_file()]
    assert files, f"nothing under {folder}"
    return [leak for path in files for leak in leaks_in(str(path.relative_to(folder)), path.read_bytes())]


def mlflow_leaks(uri: str, tmp_path: Path) -> tuple[list[str], dict[str, Any]]:
    """Search the experiment's one run (params, tags, metrics, artifacts) and its logged models."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = client.get_run(runs[0].info.run_id)
    assert run.info.status == "FINISHED"
    text = json.dumps(
        [run.data.params, run.data.tags, sorted(run.data.metrics), run.info.run_name, experiment.tags]
    )
    leaks = leaks_in("run params/tags/metrics", text.encode())
    downloaded = Path(
        mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="", dst_path=str(tmp_path / "run"), tracking_uri=uri
        )
    )
    leaks += leaks_in_folder(downloaded)
    models = client.search_logged_models(experiment_ids=[experiment.experiment_id])
    for index, model in enumerate(models):
        leaks += leaks_in(f"model {model.name} params/tags", json.dumps([model.params, model.tags]).encode())
        folder = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=model.artifact_location,
                dst_path=str(tmp_path / f"model{index}"),
                tracking_uri=uri,
            )
        )
        leaks += leaks_in_folder(folder)
    seen = {
        "params": run.data.params,
        "artifacts": sorted(
            str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file()
        ),
    }
    return leaks, seen


@pytest.mark.slow
def test_no_planted_secret_reaches_output_files_logs_or_mlflow(mlflow_server: str, tmp_path: Path) -> None:
    output_dir = tmp_path / "out"
    config = tmp_path / "secret.yaml"
    config.write_text(yaml.safe_dump(secret_document(output_dir, mlflow_server), sort_keys=False))
    command = [sys.executable, "-m", "ftconfig", str(config)]
    env = secret_environment()
    plan = subprocess.run([*command, "--dry-run"], capture_output=True, env=env, timeout=300, check=False)
    assert plan.returncode == 0, plan.stderr[-3000:]
    result = subprocess.run(command, capture_output=True, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]

    leaks = leaks_in("dry-run stdout", plan.stdout) + leaks_in("dry-run stderr", plan.stderr)
    leaks += leaks_in("stdout", result.stdout) + leaks_in("stderr", result.stderr)
    leaks += leaks_in_folder(output_dir)
    mlflow_found, seen = mlflow_leaks(mlflow_server, tmp_path / "mlflow")
    assert leaks + mlflow_found == []

    # The search looked where the secrets would have gone.
    resolved = json.loads((output_dir / "resolved_config.json").read_text())
    assert resolved["config"]["run_conf"]["model_args"]["token"] == "<redacted>"
    assert resolved["config"]["training_args"]["hub_token"] == "<redacted>"
    assert resolved["config"]["tracking"]["mlflow_server_uri"].startswith("http://<redacted>@127.0.0.1:")
    assert (output_dir / "checkpoint-final" / "training_args.bin").is_file()
    assert seen["params"]["run_conf.model_args.token"] == "<redacted>"
    assert any(path.endswith("checkpoint-2/training_args.bin") for path in seen["artifacts"]), seen
    assert any(path.endswith("resolved_config.json") for path in seen["artifacts"]), seen
    assert "View run" not in result.stdout.decode()  # MLflow's link would have carried the URI's password


def test_the_schema_marks_every_secret_field_and_redaction_follows_the_marks() -> None:
    assert secret_properties() == {
        ("run_conf", "model_args", "token"): "value",
        ("training_args", "hub_token"): "value",
        ("tracking", "mlflow_server_uri"): "uri",
    }
    document = tiny_run_document(
        Path("out"),
        training_args={"hub_token": HUB_TOKEN},
        tracking={"mlflow_server_uri": f"http://{URI_USER}:{URI_PASSWORD}@host:5000", "experiment_name": "e"},
    )
    document["run_conf"]["model_args"] = {"token": MODEL_TOKEN}
    redacted = redact_config(document)
    assert not [secret for secret in SECRETS if secret in json.dumps(redacted)]
    assert redacted["tracking"]["mlflow_server_uri"] == "http://<redacted>@host:5000"
    assert secret_values(document, {}) == sorted(
        {MODEL_TOKEN, HUB_TOKEN, URI_USER, URI_PASSWORD, f"{URI_USER}:{URI_PASSWORD}"}, key=len, reverse=True
    )


def test_the_hub_token_leaves_the_pickled_training_args_and_serves_only_hub_pushes(tmp_path: Path) -> None:
    import torch
    from trl import SFTConfig

    for push_to_hub in (False, True):
        args = SFTConfig(output_dir=str(tmp_path), hub_token=HUB_TOKEN, push_to_hub=push_to_hub, **CPU_ARGS)
        environ: dict[str, str] = {}
        assert detach_hub_token(args, environ)
        buffer = io.BytesIO()
        torch.save(args, buffer)  # what the Trainer writes to training_args.bin
        assert leaks_in("training_args.bin", buffer.getvalue()) == []
        assert args.hub_token is None
        # huggingface_hub falls back to HF_TOKEN when the Trainer passes token=None to its uploads.
        assert environ == ({"HF_TOKEN": HUB_TOKEN} if push_to_hub else {})
    assert not detach_hub_token(SFTConfig(output_dir=str(tmp_path), **CPU_ARGS), environ := {})
    assert environ == {}


# --------------------------------------------------------------------------------------------------------------
# trust_remote_code


@pytest.fixture
def from_pretrained_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Every AutoModelForCausalLM / AutoTokenizer / AutoConfig.from_pretrained call: (class, kwargs)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    calls: list[tuple[str, dict[str, Any]]] = []
    for auto in (AutoConfig, AutoModelForCausalLM, AutoTokenizer):
        original = auto.from_pretrained

        def spy(*args: Any, _original: Any = original, _name: str = auto.__name__, **kwargs: Any) -> Any:
            calls.append((_name, dict(kwargs)))
            return _original(*args, **kwargs)

        monkeypatch.setattr(auto, "from_pretrained", spy)
    return calls


def one_step_run(tmp_path: Path, **model_args: Any) -> Any:
    from ftconfig.runtime.training._run import RunOptions, train

    document = tiny_run_document(
        tmp_path / "out",
        training_args={"max_steps": 1, "logging_steps": 1},
        run_conf={"model": str(EXAMPLES / "tiny-llama"), "model_args": model_args},
    )
    return train(load_config(document), RunOptions())


def trust_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage() for record in caplog.records if record.getMessage().startswith("trust_remote")
    ]


@pytest.mark.slow
def test_trust_remote_code_stays_off_unless_the_config_says_true(
    from_pretrained_calls: list[tuple[str, dict[str, Any]]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ftconfig")
    result = one_step_run(tmp_path)
    assert result.final_checkpoint.is_dir()
    loaded = {name for name, _ in from_pretrained_calls}
    assert {"AutoModelForCausalLM", "AutoTokenizer"} <= loaded
    assert [name for name, kwargs in from_pretrained_calls if kwargs.get("trust_remote_code")] == []
    assert trust_warnings(caplog) == []


@pytest.mark.slow
def test_trust_remote_code_true_reaches_every_load_warns_what_it_allows_and_loads_a_plain_local_model(
    from_pretrained_calls: list[tuple[str, dict[str, Any]]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from ftconfig.runtime.model import _loading as _model

    _model._warn_once.cache_clear()  # the warning is given once per process
    caplog.set_level(logging.WARNING, logger="ftconfig")
    result = one_step_run(tmp_path, trust_remote_code=True)
    assert result.final_checkpoint.is_dir()  # the tiny Llama needs no remote code: it loads and trains
    loaded = {name for name, _ in from_pretrained_calls}
    assert {"AutoModelForCausalLM", "AutoTokenizer"} <= loaded
    assert all(kwargs.get("trust_remote_code") is True for _, kwargs in from_pretrained_calls)
    model = str(EXAMPLES / "tiny-llama")
    assert trust_warnings(caplog) == [
        f"trust_remote_code is true: loading {model!r} executes Python code from the model repository. "
        "Only use it with repositories you trust."
    ]


@pytest.mark.parametrize(
    ("uri", "secrets", "kept"),
    [
        ("http://alice:p@ss@mlflow.example:5000/x", ["p@ss", "alice", "ss@mlflow"], "mlflow.example:5000/x"),
        ("https://mlflow.example/?auth_token=tok-123&experiment=7", ["tok-123"], "experiment=7"),
        (
            "https://s3.example/bucket?X-Amz-Signature=abc987&X-Amz-Credential=cred42",
            ["abc987", "cred42"],
            "bucket",
        ),
        (
            "postgresql://svc:pw%40x@db.example:5432/mlflow?password=qq9",
            ["pw%40x", "qq9"],
            "db.example:5432/mlflow",
        ),
        ("sqlite:///tmp/mlflow.db", [], "sqlite:///tmp/mlflow.db"),
    ],
)
def test_uri_redaction_parses_like_the_http_client_and_covers_query_parameters(
    uri: str, secrets: list[str], kept: str
) -> None:
    from ftconfig.runtime.config._secrets import redact_config, redact_text, redact_uri, secret_values

    redacted = redact_uri(uri)
    text = redact_text(f"cannot reach the MLflow server at {uri} (connection refused)")
    document = redact_config({"tracking": {"mlflow_server_uri": uri}})
    for place in (redacted, text, json.dumps(document)):
        assert kept in place
        for secret in secrets:
            assert secret not in place, place
    scrubbable = secret_values({"tracking": {"mlflow_server_uri": uri}}, {})
    assert all(any(secret in value or value in secret for value in scrubbable) for secret in secrets[:1])


def test_every_user_error_message_has_uri_credentials_redacted() -> None:
    from ftconfig.runtime.config._errors import ConfigError, ErrorItem

    error = ConfigError(
        ErrorItem("$.tracking.mlflow_server_uri", "'http://bob:hunter@2@host?token=zz9' is wrong")
    )
    assert "hunter" not in str(error) and "zz9" not in str(error) and "host" in str(error)
