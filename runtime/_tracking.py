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
import time
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import msgspec

from ftconfig.runtime._errors import ConfigError, ErrorItem
from ftconfig.runtime._secrets import REDACTED, redact_uri, secret_values

if TYPE_CHECKING:
    from ftconfig.generated.config import FinetuningConfig
    from ftconfig.runtime._run import RunOptions

__all__ = [
    "TrackingPlan",
    "adjust_report_to",
    "check_tracking_server",
    "finish_tracking",
    "flatten_params",
    "resolve_tracking",
    "start_tracking",
    "tracked_run",
]

logger = logging.getLogger("ftconfig")

DEFAULT_EXPERIMENT = "default"
ARTIFACT_NAME = "resolved_config.json"  # the same name and content as the file next to the checkpoints
VERSION_TAG_PREFIX = "ftconfig.version."
_TRUE_VALUES = {"1", "true", "yes", "on"}
# Tracking-store schemes MLflow 3.17 knows (a test compares them with MLflow's own registry). A database URI may
# carry a driver: postgresql+psycopg2://.
_SCHEMES = {"http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks", "databricks-uc", "uc"}
_FILE_STORE_HINT = (
    "MLflow 3.17 keeps the local file store in maintenance mode and refuses it. Use a database file such as "
    "sqlite:///mlflow.db or an http(s) server, or set MLFLOW_ALLOW_FILE_STORE=true to use it anyway."
)
_PROBE_TIMEOUT_S = 5.0
_MIN_SCRUB_LENGTH = 6  # shorter "secrets" (a user name like "user") would garble ordinary values

Source = Literal["cli", "config", "env"]


@dataclass(frozen=True)
class TrackingPlan:
    """Where and how a job is tracked; `resolve_tracking` returns None when tracking is off.

    `tracking_uri` keeps any credentials (the client needs them); `display_uri` is the one to show.
    """

    tracking_uri: str = field(repr=False)
    experiment_name: str
    run_id: str | None
    run_name: str
    log_artifacts: bool
    source: Source
    # False for the "default" fallback: a continued run then keeps its own experiment.
    experiment_given: bool = True
    secrets: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @property
    def display_uri(self) -> str:
        return redact_uri(self.tracking_uri)

    @property
    def uri_location(self) -> str:
        return {
            "cli": "--mlflow-server-uri",
            "config": "$.tracking.mlflow_server_uri",
            "env": "MLFLOW_TRACKING_URI",
        }[self.source]

    @property
    def run_id_location(self) -> str:
        return "MLFLOW_RUN_ID" if self.source == "env" else "$.tracking.run_id"


# --------------------------------------------------------------------------------------------------------------
# Resolution (pure: no network, no mlflow import)


def resolve_tracking(
    config: FinetuningConfig, options: RunOptions, environ: Mapping[str, str]
) -> TrackingPlan | None:
    """Decide whether and where a job is tracked, without contacting the server.

    Precedence: `--mlflow-server-uri` > `config.tracking` > env `MLFLOW_TRACKING_URI` (an empty value is unset,
    and env `DISABLE_MLFLOW_INTEGRATION=TRUE` turns only the environment source off). Experiment:
    `--experiment-name` > `tracking.experiment_name` > env `MLFLOW_EXPERIMENT_NAME` > "default". Run:
    `tracking.run_id` (or env `MLFLOW_RUN_ID` when the URI also comes from the environment) continues that run;
    otherwise a new run named `tracking.run_name` > `training_args.run_name` > `<output dir>-<time>-<random>`.

    Raises:
        ConfigError: the URI has an unknown scheme or is a local file store MLflow 3.17 refuses.
    """
    tracking = config.tracking
    uri: str | None
    if options.mlflow_server_uri:
        uri, source = options.mlflow_server_uri, "cli"
    elif tracking is not None:
        uri, source = tracking.mlflow_server_uri, "config"
    elif environ.get("MLFLOW_TRACKING_URI") and not _is_true(environ.get("DISABLE_MLFLOW_INTEGRATION")):
        uri, source = environ["MLFLOW_TRACKING_URI"], "env"
    else:
        return None
    experiment = (
        options.experiment_name
        or (tracking.experiment_name if tracking else None)
        or environ.get("MLFLOW_EXPERIMENT_NAME")
    )
    run_id = tracking.run_id if tracking else None
    if run_id is None and source == "env":
        run_id = environ.get("MLFLOW_RUN_ID") or None
    if tracking is not None:
        log_artifacts = _is_true(tracking.hf_mlflow_log_artifacts)
    else:
        log_artifacts = _is_true(environ.get("HF_MLFLOW_LOG_ARTIFACTS"))
    plan = TrackingPlan(
        tracking_uri=uri,
        experiment_name=experiment or DEFAULT_EXPERIMENT,
        run_id=run_id,
        run_name=(tracking.run_name if tracking else None)
        or config.training_args.run_name
        or unique_run_name(config),
        log_artifacts=log_artifacts,
        source=source,  # type: ignore[arg-type]
        experiment_given=experiment is not None,
        secrets=_secrets(config, uri, environ),
    )
    _check_uri(plan, environ)
    return plan


def unique_run_name(config: FinetuningConfig) -> str:
    """`<output dir name>-<YYYYmmdd-HHMMSS>-<4 hex>`: from system entropy, so the seeded `random` stays put.

    MLflow's own random names repeat across runs seeded alike (two seed-0 runs were both "overjoyed-slug-911").
    """
    from ftconfig.runtime._resolve import resolve_output_dir

    base = Path(resolve_output_dir(config)).name or "run"
    return f"{base}-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(2).hex()}"


def _is_true(value: object) -> bool:
    """A bool, or the seed's string form: "1", "true", "yes", "on" in any case are true."""
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() in _TRUE_VALUES


def _secrets(config: FinetuningConfig, uri: str, environ: Mapping[str, str]) -> tuple[str, ...]:
    document = msgspec.to_builtins(config)
    found = set(secret_values(document, dict(environ)))
    found |= set(secret_values({"tracking": {"mlflow_server_uri": uri}}, {}))  # a CLI/env URI's credentials
    return tuple(sorted((value for value in found if len(value) >= _MIN_SCRUB_LENGTH), key=len, reverse=True))


def _check_uri(plan: TrackingPlan, environ: Mapping[str, str]) -> None:
    uri = plan.tracking_uri
    scheme = uri.lower() if uri.lower() in _SCHEMES else urlsplit(uri).scheme.lower()  # "databricks" alone
    if len(scheme) == 1:  # C:\mlruns: a Windows drive, not a scheme
        scheme = ""
    if scheme in ("", "file"):
        if _is_true(environ.get("MLFLOW_ALLOW_FILE_STORE")):
            return
        raise ConfigError(
            ErrorItem(plan.uri_location, f"{plan.display_uri!r} is a local file store", _FILE_STORE_HINT)
        )
    if scheme.split("+", 1)[0] not in _SCHEMES:
        raise ConfigError(
            ErrorItem(
                plan.uri_location,
                f"{plan.display_uri!r} has an unknown scheme {scheme + '://'!r}",
                "Use http(s)://host:port for a server or sqlite:///mlflow.db for a local database file.",
            )
        )
    if scheme in ("http", "https"):
        try:
            urlsplit(uri).port  # noqa: B018 - raises on a non-numeric port
        except ValueError:
            raise ConfigError(
                ErrorItem(
                    plan.uri_location,
                    f"{plan.display_uri!r} has an invalid port",
                    "Write it as http://host:5000.",
                )
            ) from None
        if not urlsplit(uri).hostname:
            raise ConfigError(
                ErrorItem(
                    plan.uri_location, f"{plan.display_uri!r} names no host", "Write it as http://host:5000."
                )
            )


# --------------------------------------------------------------------------------------------------------------
# report_to


def adjust_report_to(
    report_to: str | Sequence[str] | None, enabled: bool, *, available: Sequence[str] | None = None
) -> list[str]:
    """The integrations transformers should report to: what the user asked for, with "mlflow" on or off.

    Accepts every form transformers does (None, "none", "all", one name, a list, ["none"]) and always returns a
    list that transformers accepts: "none" is dropped (transformers rejects it inside a list), and "all" is
    expanded to the installed integrations (`available`, by default asked of transformers) because "all but
    mlflow" is otherwise not expressible. "mlflow" is then added when tracking is enabled on this process and
    removed otherwise: ftconfig, not report_to, decides whether MLflow is used (as the reference did).
    """
    if report_to is None:
        names: list[str] = []
    elif isinstance(report_to, str):
        names = [report_to]
    else:
        names = list(report_to)
    result: list[str] = []
    for name in names:
        keyword = name.strip().lower()
        if keyword == "none":
            continue
        if keyword == "all":
            if available is None:
                from transformers.integrations.integration_utils import get_available_reporting_integrations

                available = list(get_available_reporting_integrations())  # type: ignore[no-untyped-call]
            expanded = list(available)
        else:
            expanded = ["mlflow" if keyword == "mlflow" else name]
        result += [item for item in expanded if item != "mlflow" and item not in result]
    return [*result, "mlflow"] if enabled else result


# --------------------------------------------------------------------------------------------------------------
# The run


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
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=_PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ConfigError(
            ErrorItem(
                plan.uri_location,
                f"cannot reach the MLflow server at {plan.display_uri} ({reason})",
                "Start the server (mlflow server --host HOST --port PORT) or fix the URI.",
            )
        ) from None


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
        RuntimeError: the server answered with an error.
    """
    if plan is None or not is_main:
        return None
    environ = os.environ if environ is None else environ
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
    """MLflow client failures (after the connect probe passed) become one clear, credential-free error."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as exc:
        from mlflow.exceptions import MlflowException

        if not isinstance(exc, MlflowException | OSError):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        message = _scrub_text(redact_uri(first), plan.secrets)
        raise RuntimeError(f"MLflow tracking at {plan.display_uri} failed: {message}") from None
