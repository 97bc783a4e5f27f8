"""Where and how a job is tracked: MLflow server (CLI > config > environment), experiment, run; pure, no mlflow import.

The plan is decided before anything heavy runs, so a wrong URI is a config error in milliseconds.
`_mlflow.py` then opens the run the plan describes.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import msgspec

from ftconfig.runtime.config._errors import ConfigError, ErrorItem
from ftconfig.runtime.config._secrets import redact_uri, secret_values

if TYPE_CHECKING:
    from ftconfig.generated.config import DPOFinetuningConfig, FinetuningConfig

__all__ = [
    "DEFAULT_EXPERIMENT",
    "TrackingPlan",
    "is_true",
    "resolve_tracking",
    "unique_run_name",
]
logger = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "default"
_TRUE_VALUES = {"1", "true", "yes", "on"}
# Tracking-store schemes MLflow 3.17 knows (a test compares them with MLflow's own registry). A database URI may
# carry a driver: postgresql+psycopg2://.
_SCHEMES = {"http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks", "databricks-uc", "uc"}
_FILE_STORE_HINT = (
    "MLflow 3.17 keeps the local file store in maintenance mode and refuses it. Use a database file such as "
    "sqlite:///mlflow.db or an http(s) server, or set MLFLOW_ALLOW_FILE_STORE=true to use it anyway."
)
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


def resolve_tracking(
    config: FinetuningConfig | DPOFinetuningConfig,
    environ: Mapping[str, str],
    *,
    mlflow_server_uri: str | None = None,
    experiment_name: str | None = None,
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
    source: Source
    if mlflow_server_uri:
        uri, source = mlflow_server_uri, "cli"
    elif tracking is not None:
        uri, source = tracking.mlflow_server_uri, "config"
    elif environ.get("MLFLOW_TRACKING_URI") and not is_true(environ.get("DISABLE_MLFLOW_INTEGRATION")):
        uri, source = environ["MLFLOW_TRACKING_URI"], "env"
    else:
        return None
    experiment = (
        experiment_name
        or (tracking.experiment_name if tracking else None)
        or environ.get("MLFLOW_EXPERIMENT_NAME")
    )
    run_id = tracking.run_id if tracking else None
    if run_id is None and source == "env":
        run_id = environ.get("MLFLOW_RUN_ID") or None
    if tracking is not None:
        log_artifacts = is_true(tracking.hf_mlflow_log_artifacts)
    else:
        log_artifacts = is_true(environ.get("HF_MLFLOW_LOG_ARTIFACTS"))
    plan = TrackingPlan(
        tracking_uri=uri,
        experiment_name=experiment or DEFAULT_EXPERIMENT,
        run_id=run_id,
        run_name=(tracking.run_name if tracking else None)
        or config.training_args.run_name
        or unique_run_name(config),
        log_artifacts=log_artifacts,
        source=source,
        experiment_given=experiment is not None,
        secrets=_secrets(config, uri, environ),
    )
    _check_uri(plan, environ)
    return plan


def unique_run_name(config: FinetuningConfig | DPOFinetuningConfig) -> str:
    """`<output dir name>-<YYYYmmdd-HHMMSS>-<4 hex>`: from system entropy, so the seeded `random` stays put.

    MLflow's own random names repeat across runs seeded alike (two seed-0 runs were both "overjoyed-slug-911").
    """
    from ftconfig.runtime.config._resolve import resolve_output_dir

    base = Path(resolve_output_dir(config)).name or "run"
    return f"{base}-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(2).hex()}"


def is_true(value: object) -> bool:
    """A bool, or a string that means true ("1", "true", "yes", "on", in any case)."""
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() in _TRUE_VALUES


def _secrets(
    config: FinetuningConfig | DPOFinetuningConfig, uri: str, environ: Mapping[str, str]
) -> tuple[str, ...]:
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
        if is_true(environ.get("MLFLOW_ALLOW_FILE_STORE")):
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
