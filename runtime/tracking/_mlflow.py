"""MLflow tracking: which server (CLI > config > environment), one run per job opened by the main process only.

ftconfig opens the run itself before the weights load, so a wrong URI or run id fails in seconds, and logs what
the run really uses: the resolved config flattened as params, `resolved_config.json` as an artifact and the
library versions as tags. It then hands the run to transformers' MLflowCallback through the environment
(`MLFLOW_RUN_ID`), which adds the per-step metrics to the same run and ends it at train end. The callback logs
no params of its own (`MLFLOW_MAX_LOG_PARAMS=0`): ours already hold every training argument, and two writers of
one key with different values make MLflow raise mid-run.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from ftconfig.runtime.config._errors import ConfigError, ErrorItem
from ftconfig.runtime.config._secrets import REDACTED, redact_uri
from ftconfig.runtime.tracking._plan import TrackingPlan

__all__ = [
    "check_tracking_server",
    "finish_tracking",
    "flatten_params",
    "server_unreachable",
    "start_tracking",
    "tracked_run",
]

logger = logging.getLogger(__name__)

ARTIFACT_NAME = "resolved_config.json"  # the same name and content as the file next to the checkpoints
VERSION_TAG_PREFIX = "ftconfig.version."
_PROBE_TIMEOUT_S = 5.0
# MLflow's own defaults (7 retries with exponential backoff, 120 s per request) make a dead server stall a
# training run for many minutes per logged step. These bound it to about half a minute; a value the user set wins.
BOUNDED_HTTP = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
_DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def flatten_params(document: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts become dotted keys (`data_conf.chat_template_name`); other values become their JSON text.

    Strings stay as they are; keys get characters MLflow refuses replaced by "_".
    """
    params: dict[str, str] = {}
    for key, value in document.items():
        name = f"{prefix}{_param_key(str(key))}"
        if isinstance(value, Mapping) and value:
            params.update(flatten_params(value, f"{name}."))
        else:
            params[name] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return params


def _param_key(key: str) -> str:
    return "".join(char if char.isalnum() or char in "_-. /:" else "_" for char in key) or "_"


def check_tracking_server(plan: TrackingPlan) -> None:
    """Fail in seconds when an http(s) tracking server does not accept connections.

    The MLflow client retries a dead server with backoff for minutes; a TCP connect says it at once. Cheap
    enough to call before the data is prepared.

    Raises:
        ConfigError: nothing listens at the server's host and port.
    """
    parts = urlsplit(plan.tracking_uri)
    scheme = parts.scheme.lower().split("+")[0]
    if scheme in _DATABASE_SCHEMES:
        _check_database_store(plan, scheme)
        return
    reason = server_unreachable(plan)
    if reason is not None:
        raise ConfigError(
            ErrorItem(
                plan.uri_location,
                f"cannot reach the MLflow server at {plan.display_uri} ({reason})",
                "Start the server (mlflow server --host HOST --port PORT) or fix the URI.",
            )
        ) from None


def server_unreachable(plan: TrackingPlan, timeout_s: float = _PROBE_TIMEOUT_S) -> str | None:
    """Why an http(s) tracking server accepts no TCP connection ('connection refused', 'timed out'), or None
    (also for stores that are not servers)."""
    parts = urlsplit(plan.tracking_uri)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            return None
    except ValueError as exc:  # a port that is not a number
        return str(exc)
    except OSError as exc:
        return "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))


def _check_database_store(plan: TrackingPlan, scheme: str) -> None:
    """A database store needs its SQLAlchemy driver installed and, for sqlite, a file it can write."""
    from pathlib import Path

    if scheme == "sqlite":
        from ftconfig.runtime.config._files import writable_location_problem

        database = plan.tracking_uri.split(":///", 1)[1] if ":///" in plan.tracking_uri else ""
        if database and database != ":memory:":
            path = Path(database.split("?", 1)[0])
            problem = writable_location_problem(path.parent)
            if problem is None and path.exists() and (path.is_dir() or not os.access(path, os.W_OK)):
                problem = f"{path} is not a writable file"
            if problem is not None:
                raise ConfigError(
                    ErrorItem(plan.uri_location, f"the sqlite store cannot be written: {problem}")
                )
        return
    try:
        from sqlalchemy.engine import make_url

        make_url(plan.tracking_uri).get_dialect().import_dbapi()
    except ImportError as exc:
        module = getattr(exc, "name", None) or str(exc)
        raise ConfigError(
            ErrorItem(
                plan.uri_location,
                f"{plan.display_uri} needs the database driver {module!r}, which is not installed",
                f"Install it (e.g. pip install {_DRIVER_PACKAGES.get(str(module), str(module))}) or use another "
                "tracking URI.",
            )
        ) from None
    except Exception as exc:  # an unknown dialect or malformed URL
        raise ConfigError(
            ErrorItem(plan.uri_location, f"{plan.display_uri} is not a usable database URI: {exc}")
        ) from None


_DRIVER_PACKAGES = {
    "psycopg2": "psycopg2-binary",
    "pymysql": "pymysql",
    "MySQLdb": "mysqlclient",
    "pyodbc": "pyodbc",
}


def start_tracking(
    plan: TrackingPlan | None,
    resolved_document: Mapping[str, Any],
    *,
    is_main: bool,
    environ: MutableMapping[str, str] | None = None,
) -> str | None:
    """Open (or continue) the job's MLflow run on the main process and hand it to transformers.

    `resolved_document` is what `resolved_config_document` returns (the content of resolved_config.json): its
    config is logged as params with section keys (`training_args.learning_rate`), its resolved values as
    `resolved.*`, its versions as `ftconfig.version.*` tags, and the whole of it as the `resolved_config.json`
    artifact. Then the environment transformers' MLflowCallback reads is set, so the callback logs the metrics
    into this run: MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME, MLFLOW_RUN_ID, HF_MLFLOW_LOG_ARTIFACTS,
    MLFLOW_FLATTEN_PARAMS, MLFLOW_MAX_LOG_PARAMS=0, MLFLOW_TAGS (keeps the run name: the callback would rename
    the run to training_args.run_name); MLFLOW_NESTED_RUN and DISABLE_MLFLOW_INTEGRATION are removed.

    Returns:
        The run id on the main process; None on other processes and when tracking is off (they touch nothing).

    Raises:
        ConfigError: the server is unreachable, the run id names no live run or belongs to another experiment,
            or the experiment is deleted.
        ConfigError: also when the server answers with an error (not MLflow, a store it cannot write).
    """
    if plan is None or not is_main:
        return None
    environ = os.environ if environ is None else environ
    for name, value in BOUNDED_HTTP.items():
        environ.setdefault(name, value)
    check_tracking_server(plan)
    with _mlflow_errors(plan):
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=plan.tracking_uri)
        params = _scrub(_params_of(resolved_document), plan.secrets)
        tags = _scrub(_version_tags(resolved_document), plan.secrets)
        if plan.run_id is not None:
            run_id, experiment_name, run_name = _continue_run(client, plan)
            params = _new_params(client, run_id, params)
        else:
            experiment_id = _experiment_id(client, plan)
            from mlflow.tracking.context.registry import resolve_tags

            run = client.create_run(experiment_id, run_name=plan.run_name, tags=resolve_tags(tags))
            run_id, experiment_name, run_name = run.info.run_id, plan.experiment_name, plan.run_name
        from mlflow.entities import Param, RunTag

        items = list(params.items())
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params per call
            client.log_batch(run_id, params=[Param(key, value) for key, value in items[start : start + 100]])
        if plan.run_id is not None:
            client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])
        text = json.dumps(_scrub(dict(resolved_document), plan.secrets), indent=2, ensure_ascii=False) + "\n"
        client.log_text(run_id, text, ARTIFACT_NAME)
    _hand_over(environ, plan, run_id=run_id, experiment_name=experiment_name, run_name=run_name)
    logger.info(
        "MLflow: run %r (%s) in experiment %r at %s", run_name, run_id, experiment_name, plan.display_uri
    )
    return run_id


def finish_tracking(plan: TrackingPlan | None, run_id: str | None, status: str = "FINISHED") -> None:
    """End the job's run: FINISHED after training, FAILED (or KILLED on Ctrl-C) when the job raised.

    transformers' callback ends the run FINISHED at train end, but not when training raises, and a failure after
    training (saving) must still show. Never raises: a tracking problem must not hide the job's own error.
    """
    if plan is None or run_id is None:
        return
    try:
        import mlflow

        active = mlflow.active_run()
        if active is not None and active.info.run_id == run_id:
            mlflow.end_run(status)
            return
        client = mlflow.MlflowClient(tracking_uri=plan.tracking_uri)
        if status != "FINISHED" or client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status)
    except Exception as exc:
        logger.warning(
            "MLflow: could not mark run %s %s: %s",
            run_id,
            status,
            _scrub_text(str(exc).splitlines()[0] if str(exc) else repr(exc), plan.secrets),
        )


@contextmanager
def tracked_run(plan: TrackingPlan | None, run_id: str | None) -> Iterator[None]:
    """Around the rest of the job: the run ends FINISHED, FAILED when the job raises, KILLED on Ctrl-C."""
    try:
        yield
    except KeyboardInterrupt:
        finish_tracking(plan, run_id, "KILLED")
        raise
    except BaseException:
        finish_tracking(plan, run_id, "FAILED")
        raise
    finish_tracking(plan, run_id)


def _params_of(resolved_document: Mapping[str, Any]) -> dict[str, str]:
    resolved = {
        key: value for key, value in resolved_document.get("resolved", {}).items() if key != "versions"
    }
    params = {**flatten_params(resolved_document.get("config", {})), **flatten_params(resolved, "resolved.")}
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    for key, value in params.items():
        if len(value) > MAX_PARAM_VAL_LENGTH:
            logger.warning(
                "MLflow: param %s is longer than %d characters and was cut (%s has it whole)",
                key,
                MAX_PARAM_VAL_LENGTH,
                ARTIFACT_NAME,
            )
            params[key] = value[: MAX_PARAM_VAL_LENGTH - 3] + "..."
    return params


def _version_tags(resolved_document: Mapping[str, Any]) -> dict[str, str]:
    versions = resolved_document.get("resolved", {}).get("versions", {})
    return {f"{VERSION_TAG_PREFIX}{name}": str(version) for name, version in versions.items()}


def _scrub(value: Any, secrets: Sequence[str]) -> Any:
    """Any secret still present (it should not be: the document is redacted) becomes '<redacted>'."""
    if isinstance(value, str):
        return _scrub_text(value, secrets)
    if isinstance(value, Mapping):
        return {key: _scrub(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, secrets) for item in value]
    return value


def _scrub_text(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _experiment_id(client: Any, plan: TrackingPlan) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(plan.experiment_name)
    if experiment is None:
        try:
            return str(client.create_experiment(plan.experiment_name))
        except MlflowException as exc:  # another job created it meanwhile
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = client.get_experiment_by_name(plan.experiment_name)
    if experiment.lifecycle_stage == "deleted":
        raise ConfigError(
            ErrorItem(
                "--experiment-name"
                if plan.source == "cli" and plan.experiment_given
                else "$.tracking.experiment_name",
                f"the MLflow experiment {plan.experiment_name!r} is deleted",
                "Restore it (mlflow experiments restore) or choose another experiment name.",
            )
        )
    return str(experiment.experiment_id)


def _continue_run(client: Any, plan: TrackingPlan) -> tuple[str, str, str]:
    """(run id, experiment name, run name) of the run to continue; it is marked RUNNING again."""
    from mlflow.exceptions import MlflowException

    assert plan.run_id is not None
    try:
        run = client.get_run(plan.run_id)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            raise
        run = None
    if run is None or run.info.lifecycle_stage == "deleted":
        raise ConfigError(
            ErrorItem(
                plan.run_id_location,
                f"no MLflow run {plan.run_id!r} at {plan.display_uri}",
                "Give the id of an existing run (the MLflow UI shows it), or remove run_id to start a new run.",
            )
        )
    experiment_name = client.get_experiment(run.info.experiment_id).name
    if plan.experiment_given and experiment_name != plan.experiment_name:
        raise ConfigError(
            ErrorItem(
                plan.run_id_location,
                f"run {plan.run_id!r} belongs to experiment {experiment_name!r}, not {plan.experiment_name!r}",
                f"Set the experiment name to {experiment_name!r}, or remove run_id to start a new run.",
            )
        )
    if run.info.status != "RUNNING":
        client.update_run(run.info.run_id, status="RUNNING")
    return run.info.run_id, experiment_name, run.info.run_name


def _new_params(client: Any, run_id: str, params: dict[str, str]) -> dict[str, str]:
    """Params a continued run does not have yet; MLflow refuses to change a logged value, so changes are skipped."""
    logged = client.get_run(run_id).data.params
    changed = sorted(key for key, value in params.items() if key in logged and logged[key] != value)
    if changed:
        logger.warning(
            "MLflow: the continued run keeps its earlier values of %s (MLflow params cannot change; "
            "%s has the current ones)",
            ", ".join(changed),
            ARTIFACT_NAME,
        )
    return {key: value for key, value in params.items() if key not in logged}


def _hand_over(
    environ: MutableMapping[str, str], plan: TrackingPlan, *, run_id: str, experiment_name: str, run_name: str
) -> None:
    """Point transformers' MLflowCallback at our run: it resumes it, logs metrics, and ends it at train end."""
    if environ.pop("DISABLE_MLFLOW_INTEGRATION", None) is not None:
        logger.info(
            "MLflow: DISABLE_MLFLOW_INTEGRATION ignored (tracking was asked for by the %s)",
            "command line" if plan.source == "cli" else "config",
        )
    environ.pop("MLFLOW_NESTED_RUN", None)  # one run per job
    try:
        user_tags = json.loads(environ.get("MLFLOW_TAGS") or "{}")
    except json.JSONDecodeError:
        user_tags = {}
    environ.update(
        MLFLOW_TRACKING_URI=plan.tracking_uri,
        MLFLOW_EXPERIMENT_NAME=experiment_name,
        MLFLOW_RUN_ID=run_id,
        HF_MLFLOW_LOG_ARTIFACTS="TRUE" if plan.log_artifacts else "FALSE",
        MLFLOW_FLATTEN_PARAMS="TRUE",
        MLFLOW_MAX_LOG_PARAMS="0",
        MLFLOW_TAGS=json.dumps(
            {**(user_tags if isinstance(user_tags, dict) else {}), "mlflow.runName": run_name}
        ),
    )


@contextmanager
def _mlflow_errors(plan: TrackingPlan) -> Iterator[None]:
    """Failures while opening the run (before training) become a ConfigError naming where the URI came from:
    a server that answers HTTP but is not MLflow, a store that cannot be written, a missing database driver."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        message = _scrub_text(redact_uri(first), plan.secrets)
        hint = (
            "Install the missing package or use another tracking URI."
            if isinstance(exc, ImportError)
            else "Check that the URI points at an MLflow tracking server or a writable store."
        )
        raise ConfigError(
            ErrorItem(plan.uri_location, f"MLflow tracking at {plan.display_uri} failed: {message}", hint)
        ) from None
