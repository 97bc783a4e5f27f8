"""Which model layers an adapter's target_modules reach, checked before any weights load.

TRL's SFTTrainer computes the loss from the output layer's weight directly (its fused LM head), so an adapter
layer on `lm_head` would never train and TRL refuses it once the model is loaded. The check here finds that from
the model's config alone: the model is built on the meta device (no memory, no weights), and PEFT's own
matching rule decides which modules target_modules names. LoRA on the input embeddings (`embed_tokens`) is
PEFT's supported Embedding path and trains, tied or untied.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from ftconfig.generated.config import NoPeftConfig, PeftConfig, PretrainedPeftConfig, RunConfig
from ftconfig.runtime.config._errors import ConfigError, ErrorItem

__all__ = ["check_adapter_targets", "output_layer_name", "targets_module"]

TARGETS = "$.peft_conf.peft_kwargs.target_modules"

logger = logging.getLogger(__name__)


def output_layer_name(run_conf: RunConfig) -> str | None:
    """The full module name of the model's output layer (e.g. `lm_head`), from its config only."""
    from accelerate import init_empty_weights

    from ftconfig.runtime.model._loading import model_skeleton

    try:
        with init_empty_weights():
            model = model_skeleton(run_conf)
    except ConfigError:
        raise
    except Exception as exc:  # an architecture that cannot be built bare: PEFT and TRL still check it later
        logger.debug("cannot build %s on the meta device to check target_modules: %s", run_conf.model, exc)
        return None
    output = model.get_output_embeddings()  # type: ignore[no-untyped-call]  # unannotated in transformers
    if output is None:
        return None
    return next((name for name, module in model.named_modules() if module is output), None)


def _target_modules(peft_conf: Any) -> Any:
    kwargs = getattr(peft_conf, "peft_kwargs", None) or {}
    return kwargs.get("target_modules")


def targets_module(name: str, target_modules: str | list[str], exclude_modules: Any = None) -> bool:
    """PEFT's rule for whether target_modules names the module `name`: a string is a regular expression the
    whole name must match; a list names modules by their full name or its last dotted parts. Written out here
    (and compared with peft's own function in the tests) so that the dry run, which keeps peft out, and the
    real run decide alike."""
    if exclude_modules and targets_module(name, exclude_modules):
        return False
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, name) is not None
    return any(name == target or name.endswith("." + target) for target in target_modules)


def check_adapter_targets(peft_conf: PeftConfig, run_conf: RunConfig) -> None:
    """A new adapter whose target_modules reach the output layer is a ConfigError (preflight and dry run)."""
    if isinstance(peft_conf, NoPeftConfig | PretrainedPeftConfig):
        return
    targets = _target_modules(peft_conf)
    if (
        targets is None or targets == "all-linear"
    ):  # peft's defaults and all-linear leave the output layer out
        return
    name = output_layer_name(run_conf)
    if name is None:
        return
    exclude = (getattr(peft_conf, "peft_kwargs", None) or {}).get("exclude_modules")
    if not targets_module(name, targets, exclude):
        return
    raise ConfigError(
        ErrorItem(
            TARGETS,
            f"target_modules reaches the output layer '{name}', which cannot carry an adapter: TRL computes the "
            "loss from its weight directly, so the adapter would never train",
            f"Remove '{name.rsplit('.', 1)[-1]}' from target_modules; to train the output layer, list it in "
            "peft_kwargs.modules_to_save instead (it then trains in full). LoRA on embed_tokens works.",
        )
    )
