"""MLflow tracking: CLI > config > environment, report_to never crashes, one secret-free run that the HF callback
logs into (checked against a real `mlflow server`)."""

from __future__ import annotations

import copy
import json
import os
import random
import re
import time
from typing import Any

import pytest

from ftconfig.runtime import ConfigError, load_config
from ftconfig.runtime.config._report_to import adjust_report_to
from ftconfig.runtime.config._resolve import resolve_run
from ftconfig.runtime.tracking._mlflow import (
    check_tracking_server,
    finish_tracking,
    flatten_params,
    start_tracking,
    tracked_run,
)
from ftconfig.runtime.tracking._plan import TrackingPlan, resolve_tracking
from ftconfig.runtime.training._output import resolved_config_document
from tests.mlflow_server import mlflow_server_fixture  # noqa: F401 - provides the mlflow_server fixture
from tests.test_schema_validation import base_document

TOKEN = "hf_SECRET123456"
PASSWORD = "pw-Secret-42"


def make_config(tracking: dict[str, Any] | None = None, **training_args: Any) -> Any:
    document = copy.deepcopy(base_document())
    if tracking is not None:
        document["tracking"] = tracking
    document["training_args"].update(training_args)
    return load_config(document)


def tracking_section(uri: str = "http://cfg:5000", **extra: Any) -> dict[str, Any]:
    return {"mlflow_server_uri": uri, "experiment_name": "cfg-exp", **extra}


# --------------------------------------------------------------------------------------------------------------
# Which server, which experiment (pure)

# (CLI URI, config tracking?, env) -> (source, URI) or None for "off"
PRECEDENCE = [
    ("http://cli:1", True, {"MLFLOW_TRACKING_URI": "http://env:3"}, ("cli", "http://cli:1")),
    ("http://cli:1", False, {}, ("cli", "http://cli:1")),
    (None, True, {"MLFLOW_TRACKING_URI": "http://env:3"}, ("config", "http://cfg:5000")),
    (None, False, {"MLFLOW_TRACKING_URI": "http://env:3"}, ("env", "http://env:3")),
    (None, False, {"MLFLOW_TRACKING_URI": ""}, None),
    (None, False, {"MLFLOW_TRACKING_URI": "http://env:3", "DISABLE_MLFLOW_INTEGRATION": "true"}, None),
    (None, True, {"DISABLE_MLFLOW_INTEGRATION": "TRUE"}, ("config", "http://cfg:5000")),
    (None, False, {}, None),
]


@pytest.mark.parametrize(("cli", "in_config", "env", "expected"), PRECEDENCE)
def test_cli_wins_over_config_which_wins_over_the_environment(
    cli: str | None, in_config: bool, env: dict[str, str], expected: tuple[str, str] | None
) -> None:
    config = make_config(tracking_section() if in_config else None)
    plan = resolve_tracking(config, env, mlflow_server_uri=cli)
    assert (None if plan is None else (plan.source, plan.tracking_uri)) == expected


EXPERIMENTS = [
    ("cli-exp", True, {"MLFLOW_EXPERIMENT_NAME": "env-exp"}, "cli-exp"),
    (None, True, {"MLFLOW_EXPERIMENT_NAME": "env-exp"}, "cfg-exp"),
    (None, False, {"MLFLOW_EXPERIMENT_NAME": "env-exp"}, "env-exp"),
    (None, False, {}, "default"),
]


@pytest.mark.parametrize(("cli", "in_config", "env", "expected"), EXPERIMENTS)
def test_experiment_name_follows_the_same_precedence_and_defaults_to_default(
    cli: str | None, in_config: bool, env: dict[str, str], expected: str
) -> None:
    config = make_config(tracking_section() if in_config else None)
    plan = resolve_tracking(config, env, mlflow_server_uri="http://cli:1", experiment_name=cli)
    assert plan is not None
    assert plan.experiment_name == expected
    assert plan.experiment_given == (expected != "default")


def test_run_name_comes_from_tracking_then_training_args_then_a_unique_name() -> None:
    options = {"mlflow_server_uri": "http://cli:1"}
    named = make_config(tracking_section(run_name="mine"), run_name="ta-name")
    assert resolve_tracking(named, {}, **options).run_name == "mine"  # type: ignore[union-attr]
    assert resolve_tracking(make_config(None, run_name="ta-name"), {}, **options).run_name == "ta-name"  # type: ignore[union-attr]
    random.seed(0)
    state = random.getstate()
    names = {
        resolve_tracking(make_config(None, output_dir="out/my-run"), {}, **options).run_name  # type: ignore[union-attr]
        for _ in range(5)
    }
    assert random.getstate() == state, "the seeded random state must not move"
    assert len(names) == 5
    assert all(re.fullmatch(r"my-run-\d{8}-\d{6}-[0-9a-f]{4}", name) for name in names), names


def test_run_id_comes_from_the_config_or_with_an_environment_uri_from_the_environment() -> None:
    env = {"MLFLOW_TRACKING_URI": "http://env:3", "MLFLOW_RUN_ID": "envrun"}
    from_config = resolve_tracking(make_config(tracking_section(run_id="cfgrun")), env)
    assert from_config is not None and (from_config.run_id, from_config.run_id_location) == (
        "cfgrun",
        "$.tracking.run_id",
    )
    from_env = resolve_tracking(make_config(None), env)
    assert from_env is not None and (from_env.run_id, from_env.run_id_location) == ("envrun", "MLFLOW_RUN_ID")
    cli = resolve_tracking(make_config(None), env, mlflow_server_uri="http://cli:1")
    assert cli is not None and cli.run_id is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("True", True),
        ("False", False),
        ("1", True),
        ("yes", True),
        ("ON", True),
        ("0", False),
        ("no", False),
    ],
)
def test_hf_mlflow_log_artifacts_takes_a_bool_or_the_seeds_string(value: Any, expected: bool) -> None:
    plan = resolve_tracking(make_config(tracking_section(hf_mlflow_log_artifacts=value)), {})
    assert plan is not None and plan.log_artifacts is expected


def test_log_artifacts_comes_from_the_environment_without_a_tracking_section() -> None:
    env = {"MLFLOW_TRACKING_URI": "http://env:3", "HF_MLFLOW_LOG_ARTIFACTS": "1"}
    plan = resolve_tracking(make_config(None), env)
    assert plan is not None and plan.log_artifacts


@pytest.mark.parametrize(
    ("uri", "location", "word"),
    [
        ("file:///tmp/mlruns", "$.tracking.mlflow_server_uri", "sqlite:///"),
        ("./mlruns", "$.tracking.mlflow_server_uri", "sqlite:///"),
        ("htp://host:5000", "$.tracking.mlflow_server_uri", "scheme"),
        ("http://host:port", "$.tracking.mlflow_server_uri", "port"),
    ],
)
def test_a_file_store_or_mistyped_uri_is_a_config_error_before_anything_runs(
    uri: str, location: str, word: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_tracking(make_config(tracking_section(uri)), {})
    assert caught.value.items[0].location == location
    assert word in str(caught.value)


def test_the_file_store_is_allowed_when_the_user_opts_in_as_mlflow_offers() -> None:
    plan = resolve_tracking(make_config(tracking_section("./mlruns")), {"MLFLOW_ALLOW_FILE_STORE": "true"})
    assert plan is not None and plan.tracking_uri == "./mlruns"


def test_database_uris_with_a_driver_are_accepted() -> None:
    for uri in ("sqlite:///mlflow.db", "postgresql+psycopg2://u@db/mlflow", "databricks", "https://h"):
        options = {"mlflow_server_uri": uri}
        assert resolve_tracking(make_config(None), {}, **options) is not None, uri


def test_our_schemes_are_ones_mlflow_registers() -> None:
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    from ftconfig.runtime.tracking._plan import _SCHEMES

    assert set(_SCHEMES) <= set(_tracking_store_registry._registry)


def test_the_plan_never_shows_credentials() -> None:
    uri = f"http://alice:{PASSWORD}@host:5000"
    plan = resolve_tracking(make_config(tracking_section(uri)), {})
    assert plan is not None
    assert PASSWORD not in repr(plan) and PASSWORD not in plan.display_uri
    assert PASSWORD in plan.secrets


def test_an_unreachable_server_fails_in_seconds_with_the_uri_location() -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    plan = resolve_tracking(make_config(None), {}, mlflow_server_uri=f"http://127.0.0.1:{port}")
    assert plan is not None
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        start_tracking(plan, {}, is_main=True, environ={})
    assert time.monotonic() - started < 10
    assert caught.value.items[0].location == "--mlflow-server-uri"
    assert "cannot reach" in str(caught.value)


def test_other_ranks_do_nothing_not_even_contact_the_server() -> None:
    plan = TrackingPlan(
        tracking_uri="http://127.0.0.1:9",
        experiment_name="e",
        run_id=None,
        run_name="r",
        log_artifacts=False,
        source="cli",
    )
    env: dict[str, str] = {"DISABLE_MLFLOW_INTEGRATION": "TRUE"}
    assert start_tracking(plan, {}, is_main=False, environ=env) is None
    assert env == {"DISABLE_MLFLOW_INTEGRATION": "TRUE"}
    assert start_tracking(None, {}, is_main=True, environ=env) is None
    check_tracking_server(
        TrackingPlan(
            tracking_uri="sqlite:///x.db",
            experiment_name="e",
            run_id=None,
            run_name="r",
            log_artifacts=False,
            source="cli",
        )
    )  # no network for sqlite


# --------------------------------------------------------------------------------------------------------------
# report_to (pure): every form a user can write, on and off

INSTALLED = ["tensorboard", "mlflow", "wandb"]
REPORT_TO = [
    (None, ["mlflow"], []),
    ("none", ["mlflow"], []),
    ("None", ["mlflow"], []),
    (["none"], ["mlflow"], []),
    ([], ["mlflow"], []),
    ("mlflow", ["mlflow"], []),
    (["mlflow"], ["mlflow"], []),
    ("MLflow", ["mlflow"], []),
    ("wandb", ["wandb", "mlflow"], ["wandb"]),
    (["wandb", "mlflow"], ["wandb", "mlflow"], ["wandb"]),
    (["none", "wandb"], ["wandb", "mlflow"], ["wandb"]),
    (["wandb", "wandb"], ["wandb", "mlflow"], ["wandb"]),
    ("all", ["tensorboard", "wandb", "mlflow"], ["tensorboard", "wandb"]),
    (["all"], ["tensorboard", "wandb", "mlflow"], ["tensorboard", "wandb"]),
    (["all", "wandb"], ["tensorboard", "wandb", "mlflow"], ["tensorboard", "wandb"]),
]


@pytest.mark.parametrize(("report_to", "enabled", "disabled"), REPORT_TO, ids=[repr(r[0]) for r in REPORT_TO])
def test_report_to_gains_or_loses_exactly_mlflow_for_every_form(
    report_to: Any, enabled: list[str], disabled: list[str]
) -> None:
    assert adjust_report_to(report_to, True, available=INSTALLED) == enabled
    assert adjust_report_to(report_to, False, available=INSTALLED) == disabled


def test_report_to_all_expands_to_what_transformers_finds_installed() -> None:
    from transformers.integrations import get_available_reporting_integrations

    installed = [name for name in get_available_reporting_integrations() if name != "mlflow"]
    assert adjust_report_to("all", False) == installed
    assert adjust_report_to("all", True) == [*installed, "mlflow"]


def test_the_adjusted_report_to_is_accepted_by_transformers(tmp_path: Any) -> None:
    from transformers import TrainingArguments

    for report_to, _, _ in REPORT_TO:
        for enabled in (True, False):
            value = adjust_report_to(report_to, enabled, available=["mlflow"])
            assert TrainingArguments(output_dir=str(tmp_path), report_to=value).report_to == value


def test_flatten_params_uses_dotted_section_keys_and_json_values() -> None:
    params = flatten_params(
        {"a": {"b": {"c": 1}, "d": "x", "e": None, "f": [1, "y"], "g": {}}, "bad key!": True}
    )
    assert params == {
        "a.b.c": "1",
        "a.d": "x",
        "a.e": "null",
        "a.f": '[1, "y"]',
        "a.g": "{}",
        "bad key_": "true",
    }


# --------------------------------------------------------------------------------------------------------------
# Against a real server


def secret_config(uri: str, **tracking: Any) -> Any:
    """A config with a planted token and a URI carrying a password."""
    document = copy.deepcopy(base_document())
    document["run_conf"]["model_args"] = {"token": TOKEN}
    document["tracking"] = {
        "mlflow_server_uri": uri.replace("http://", f"http://alice:{PASSWORD}@"),
        "experiment_name": "ftconfig-tests",
        **tracking,
    }
    return load_config(document)


def start(config: Any, environ: dict[str, str] | None = None) -> tuple[TrackingPlan, str, dict[str, str]]:
    environ = {} if environ is None else environ
    plan = resolve_tracking(config, environ)
    assert plan is not None
    document = resolved_config_document(config, resolve_run(config, world_size=1))
    run_id = start_tracking(plan, document, is_main=True, environ=environ)
    assert run_id is not None
    return plan, run_id, environ


def client_for(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


@pytest.mark.integration
def test_a_new_run_holds_the_flattened_config_the_artifact_and_version_tags_and_no_secret(
    mlflow_server: str,
) -> None:
    config = secret_config(mlflow_server, run_name="named-run")
    plan, run_id, environ = start(config, {"DISABLE_MLFLOW_INTEGRATION": "TRUE", "MLFLOW_NESTED_RUN": "1"})
    client = client_for(mlflow_server)
    run = client.get_run(run_id)
    params, tags = run.data.params, run.data.tags
    assert run.info.run_name == "named-run"
    assert client.get_experiment(run.info.experiment_id).name == "ftconfig-tests"
    assert params["data_conf.chat_template_name"] == config.data_conf.chat_template_name
    assert params["training_args.learning_rate"] == "0.0001"
    assert params["resolved.gradient_accumulation_steps"] == "2"
    assert params["run_conf.model_args.token"] == "<redacted>"
    assert tags["ftconfig.version.mlflow"] == "3.17.2"
    assert {"ftconfig.version.transformers", "ftconfig.version.ftconfig", "mlflow.user"} <= set(tags)
    artifact = client.download_artifacts(run_id, "resolved_config.json")
    with open(artifact, encoding="utf-8") as handle:
        text = handle.read()
    assert json.loads(text) == resolved_config_document(config, resolve_run(config, world_size=1))
    everything = json.dumps([params, tags]) + text
    for secret in (TOKEN, PASSWORD, "alice"):
        assert secret not in everything
    # The HF callback is pointed at this very run and logs no params of its own.
    assert environ["MLFLOW_RUN_ID"] == run_id
    assert environ["MLFLOW_TRACKING_URI"] == plan.tracking_uri
    assert environ["MLFLOW_EXPERIMENT_NAME"] == "ftconfig-tests"
    assert environ["MLFLOW_MAX_LOG_PARAMS"] == "0"
    assert json.loads(environ["MLFLOW_TAGS"]) == {"mlflow.runName": "named-run"}
    assert environ["HF_MLFLOW_LOG_ARTIFACTS"] == "FALSE"
    assert "DISABLE_MLFLOW_INTEGRATION" not in environ and "MLFLOW_NESTED_RUN" not in environ
    finish_tracking(plan, run_id)
    assert client.get_run(run_id).info.status == "FINISHED"


@pytest.mark.integration
def test_run_id_continues_that_run_without_creating_another(mlflow_server: str) -> None:
    client = client_for(mlflow_server)
    _, first_id, _ = start(secret_config(mlflow_server, run_name="to-continue"))
    experiment_id = client.get_run(first_id).info.experiment_id
    before = len(client.search_runs([experiment_id]))
    document = _builtins(secret_config(mlflow_server, run_id=first_id, run_name="ignored"))
    document["training_args"]["learning_rate"] = 2e-4
    changed = load_config(document)
    plan, run_id, environ = start(changed)
    assert run_id == first_id and environ["MLFLOW_RUN_ID"] == first_id
    assert len(client.search_runs([experiment_id])) == before
    run = client.get_run(run_id)
    assert run.info.run_name == "to-continue" and run.info.status == "RUNNING"
    assert run.data.params["training_args.learning_rate"] == "0.0001", "MLflow params cannot change"
    assert json.loads(environ["MLFLOW_TAGS"]) == {"mlflow.runName": "to-continue"}
    finish_tracking(plan, run_id, "FAILED")
    assert client.get_run(run_id).info.status == "FAILED"


def _builtins(config: Any) -> dict[str, Any]:
    import msgspec

    return msgspec.to_builtins(config)  # type: ignore[no-any-return]


@pytest.mark.integration
@pytest.mark.parametrize("run_id", ["0123456789abcdef0123456789abcdef", "not a run id!"])
def test_an_unknown_run_id_is_a_config_error(mlflow_server: str, run_id: str) -> None:
    with pytest.raises(ConfigError) as caught:
        start(secret_config(mlflow_server, run_id=run_id))
    assert caught.value.items[0].location == "$.tracking.run_id"
    assert PASSWORD not in str(caught.value)


@pytest.mark.integration
def test_a_run_id_from_another_experiment_is_a_config_error(mlflow_server: str) -> None:
    _, run_id, _ = start(secret_config(mlflow_server))
    document = _builtins(secret_config(mlflow_server, run_id=run_id))
    document["tracking"]["experiment_name"] = "another-experiment"
    with pytest.raises(ConfigError, match="belongs to experiment 'ftconfig-tests'"):
        start(load_config(document))


@pytest.mark.integration
def test_a_non_main_rank_creates_no_run(mlflow_server: str) -> None:
    client = client_for(mlflow_server)
    config = secret_config(mlflow_server)
    plan = resolve_tracking(config, {})
    experiment = client.get_experiment_by_name("ftconfig-tests")
    count = len(client.search_runs([experiment.experiment_id])) if experiment else 0
    document = resolved_config_document(config, resolve_run(config, world_size=2))
    env: dict[str, str] = {}
    assert start_tracking(plan, document, is_main=False, environ=env) is None and env == {}
    experiment = client.get_experiment_by_name("ftconfig-tests")
    assert (len(client.search_runs([experiment.experiment_id])) if experiment else 0) == count


@pytest.mark.integration
def test_the_hf_callback_logs_metrics_into_our_run_and_keeps_its_name(
    mlflow_server: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    import mlflow
    from transformers import TrainerControl, TrainerState, TrainingArguments
    from transformers.integrations import MLflowCallback

    environ = dict(os.environ)
    plan, run_id, environ = start(secret_config(mlflow_server, run_name="ours"), environ)
    for key in set(os.environ) - set(environ):
        monkeypatch.delenv(key)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    client = client_for(mlflow_server)
    params_before = client.get_run(run_id).data.params

    args = TrainingArguments(output_dir=str(tmp_path), report_to=["mlflow"], run_name="hf-would-rename-it")
    state, control, callback = TrainerState(), TrainerControl(), MLflowCallback()
    try:
        callback.on_train_begin(args, state, control, model=None)
        for step, loss in ((1, 2.5), (2, 2.0)):
            state.global_step = step
            callback.on_log(args, state, control, logs={"loss": loss, "learning_rate": 1e-4})
        callback.on_train_end(args, state, control)
    finally:
        if mlflow.active_run() is not None:
            mlflow.end_run("FAILED")
    finish_tracking(plan, run_id)  # after the callback ended it: a no-op that keeps FINISHED

    run = client.get_run(run_id)
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")] == [(1, 2.5), (2, 2.0)]
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "ours"
    assert run.data.params == params_before, "the callback must not add or change params"


@pytest.mark.integration
def test_a_job_that_raises_leaves_its_run_failed(mlflow_server: str) -> None:
    plan, run_id, _ = start(secret_config(mlflow_server))
    with pytest.raises(ValueError, match="boom"), tracked_run(plan, run_id):
        raise ValueError("boom")
    assert client_for(mlflow_server).get_run(run_id).info.status == "FAILED"
    plan, run_id, _ = start(secret_config(mlflow_server))
    with tracked_run(plan, run_id):
        pass
    assert client_for(mlflow_server).get_run(run_id).info.status == "FINISHED"
