"""Preflight for pass-through integrations: what `report_to` and `push_to_hub` need, checked before weights load.

transformers only finds out when the Trainer is built (a missing tensorboard) or when the first checkpoint is
pushed (no network, no token), both after the model has loaded and, for the push, after training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ftconfig.runtime.config._errors import ConfigError, ErrorItem

__all__ = ["check_push_to_hub", "check_report_to"]

REPORT_TO = "$.training_args.report_to"
PUSH_TO_HUB = "$.training_args.push_to_hub"

# transformers' availability check(s) for each integration, and what to install when one fails. MLflow is not
# here: ftconfig[train] installs it, and ftconfig itself decides whether it is used (the tracking section).
_AVAILABILITY: Mapping[str, tuple[tuple[str, ...], str]] = {
    "azure_ml": (("is_azureml_available",), "azureml-core"),
    "comet_ml": (("is_comet_available",), "comet-ml"),
    "neptune": (("is_neptune_available",), "neptune"),
    "tensorboard": (("is_tensorboard_available",), "tensorboard"),
    "trackio": (("is_trackio_available",), "trackio"),
    "wandb": (("is_wandb_available",), "wandb"),
    "codecarbon": (("is_codecarbon_available",), "codecarbon"),
    "clearml": (("is_clearml_available",), "clearml"),
    "dagshub": (("is_dagshub_available",), "dagshub"),
    "flyte": (
        ("is_flytekit_available", "is_flyte_deck_standard_available"),
        "flytekit flytekitplugins-deck-standard",
    ),
    "dvclive": (("is_dvclive_available",), "dvclive"),
    "swanlab": (("is_swanlab_available",), "swanlab"),
    "kubeflow": (("is_kubeflow_available",), "kubeflow-training"),
}


def check_report_to(report_to: Sequence[str]) -> None:
    """Every integration in the (adjusted) report_to list is one transformers knows and is installed."""
    from transformers.integrations import integration_utils

    known = list(integration_utils.INTEGRATION_TO_CALLBACK)
    problems: list[ErrorItem] = []
    for name in report_to:
        if name not in known:
            from ftconfig.runtime.config._schema_errors import suggest

            hint = suggest(name, known)
            problems.append(
                ErrorItem(
                    REPORT_TO,
                    f"{name!r} is not an integration transformers can report to",
                    str(hint) if hint else f"Use one of: {', '.join(known)}, or 'none'.",
                )
            )
            continue
        checks, package = _AVAILABILITY.get(name, ((), name))
        if not all(getattr(integration_utils, check, lambda: True)() for check in checks):
            problems.append(
                ErrorItem(
                    REPORT_TO,
                    f"reporting to {name!r} needs a package that is not installed",
                    f"Install it (pip install {package}) or remove {name!r} from report_to.",
                )
            )
    if problems:
        raise ConfigError(problems)


def _hub_token(hub_token: str | None) -> str | None:
    if hub_token:
        return hub_token
    from huggingface_hub import get_token

    return get_token()


def check_push_to_hub(training_args: Any) -> None:
    """push_to_hub needs a token and a Hub this process can reach; without either the push fails after
    training, when the run is over."""
    if not training_args.push_to_hub:
        return
    from ftconfig.runtime.model._hub import hub_unreachable_reason

    if _hub_token(training_args.hub_token) is None:
        raise ConfigError(
            ErrorItem(
                PUSH_TO_HUB,
                "pushing to the Hub needs a Hugging Face token, and none is set",
                "Log in (hf auth login), set HF_TOKEN, or set push_to_hub: false.",
            )
        )
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise ConfigError(
            ErrorItem(
                PUSH_TO_HUB,
                "pushing to the Hub is impossible in offline mode (HF_HUB_OFFLINE)",
                "Unset HF_HUB_OFFLINE or set push_to_hub: false.",
            )
        )
    reason = hub_unreachable_reason()
    if reason is not None:
        raise ConfigError(
            ErrorItem(
                PUSH_TO_HUB,
                f"the Hub ({constants.ENDPOINT}) cannot be reached ({reason}), so nothing could be pushed",
                "Check the network (or HTTPS_PROXY), or set push_to_hub: false and upload the checkpoint later.",
            )
        )
