"""Resolution: the pure step from a validated config (+ world size) to the numbers a run really uses.

Applied once, to copies: the loaded config is never changed, so loading and resolving twice gives the same run
(LR overrides applied to the config itself would compound on every reload).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ftconfig.runtime.config._errors import ConfigError, ErrorItem
from ftconfig.runtime.config._files import special_file_problem
from ftconfig.runtime.config._report_to import adjust_report_to

if TYPE_CHECKING:
    from ftconfig.generated.config import DPOFinetuningConfig, FinetuningConfig

__all__ = [
    "DEFAULT_OUTPUT_DIR",
    "ResolvedRun",
    "build_dpo_config",
    "build_sft_config",
    "gradient_checkpointing_requested",
    "resolve_learning_rate",
    "resolve_output_dir",
    "resolve_run",
    "split_batch",
    "training_arguments_kwargs",
]

logger = logging.getLogger(__name__)

DEFAULT_OUTPUT_DIR = "checkpoints"


class ResolvedRun(msgspec.Struct, kw_only=True, frozen=True):
    """The values a run uses that the config does not state directly."""

    world_size: int
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    per_device_eval_batch_size: int
    learning_rate: float
    num_train_epochs: float
    max_steps: int
    gradient_checkpointing: bool
    use_cache: bool
    output_dir: str


def split_batch(total: int, max_per_device: int, world_size: int) -> tuple[int, int]:
    """(per-device batch, accumulation steps) with world_size x per_device x accumulation == total.

    The smallest accumulation whose product with the process count divides the total and brings the per-device
    batch under the cap. Raises ConfigError when the processes do not divide the total.
    """
    if world_size < 1:
        raise ConfigError(ErrorItem("--world-size", f"must be at least 1, got {world_size}"))
    if total % world_size:
        raise ConfigError(
            ErrorItem(
                "$.batchsize_conf.total_train_batch_size",
                f"{total} is not divisible by the number of processes ({world_size})",
                f"Use a multiple of {world_size}, e.g. {math.ceil(total / world_size) * world_size}.",
            )
        )
    per_device, accumulation = total // world_size, 1
    while per_device > max_per_device:
        accumulation += 1
        if total % (world_size * accumulation) == 0:
            per_device = total // (world_size * accumulation)
    return per_device, accumulation


def resolve_learning_rate(config: FinetuningConfig | DPOFinetuningConfig) -> float:
    """training_args.learning_rate x lr_multiplier, then scaled by sqrt or linear total batch size."""
    overrides = config.overrides
    learning_rate = config.training_args.learning_rate * overrides.lr_multiplier
    total = config.batchsize_conf.total_train_batch_size
    if overrides.lr_batch_size_scaling == "sqrt":
        learning_rate *= math.sqrt(total)
    elif overrides.lr_batch_size_scaling == "linear":
        learning_rate *= total
    return learning_rate


def gradient_checkpointing_requested(config: FinetuningConfig | DPOFinetuningConfig) -> bool:
    args = config.training_args
    return bool(args.activation_checkpointing or args.gradient_checkpointing)


def resolve_output_dir(config: FinetuningConfig | DPOFinetuningConfig) -> str:
    """training_args.output_dir, else $CHECKPOINTS_PATH (the helm convention), else ./checkpoints."""
    return config.training_args.output_dir or os.environ.get("CHECKPOINTS_PATH") or DEFAULT_OUTPUT_DIR


def resolve_run(config: FinetuningConfig | DPOFinetuningConfig, *, world_size: int) -> ResolvedRun:
    """Every derived value of a run, for a given number of processes."""
    batch = config.batchsize_conf
    per_device, accumulation = split_batch(
        batch.total_train_batch_size, batch.max_per_device_train_batch_size, world_size
    )
    checkpointing = gradient_checkpointing_requested(config)
    use_cache = config.run_conf.model_args.use_cache
    if checkpointing and use_cache:
        logger.warning(
            "gradient checkpointing is on, so model use_cache is turned off (they are mutually exclusive)"
        )
        use_cache = False
    epochs = config.overrides.num_train_epochs
    return ResolvedRun(
        world_size=world_size,
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        per_device_eval_batch_size=batch.per_device_eval_batch_size or per_device,
        learning_rate=resolve_learning_rate(config),
        num_train_epochs=float(epochs if epochs is not None else config.training_args.num_train_epochs),
        max_steps=config.training_args.max_steps,
        gradient_checkpointing=checkpointing,
        use_cache=use_cache,
        output_dir=resolve_output_dir(config),
    )


def _deepspeed_with_batch(deepspeed: Any, resolved: ResolvedRun, total: int) -> Any:
    """Write the batch split into a DeepSpeed config given as an object or a JSON file path."""
    if not deepspeed:
        return deepspeed
    location = "$.training_args.deepspeed"
    if isinstance(deepspeed, str):
        path = Path(deepspeed)
        if (problem := special_file_problem(path)) is not None:
            raise ConfigError(ErrorItem(location, problem))
        try:
            deepspeed = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(ErrorItem(location, f"file not found: {path}")) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(ErrorItem(location, f"{path} is not valid JSON: {exc}")) from None
        except OSError as exc:
            raise ConfigError(ErrorItem(location, f"cannot read {path} ({exc.strerror})")) from None
        if not isinstance(deepspeed, dict):
            raise ConfigError(ErrorItem(location, f"{path} holds no JSON object"))
    return {
        **deepspeed,
        "train_micro_batch_size_per_gpu": resolved.per_device_train_batch_size,
        "gradient_accumulation_steps": resolved.gradient_accumulation_steps,
        "train_batch_size": total,
    }


def _resolved_training_kwargs(
    config: FinetuningConfig | DPOFinetuningConfig, resolved: ResolvedRun, *, report_mlflow: bool
) -> dict[str, Any]:
    """The user's training_args with the resolved values written in (shared by SFT and DPO).

    Every training_args value is passed explicitly, so TRL's own differing defaults (bf16 and gradient
    checkpointing on, learning rate 2e-5) never switch on behind the user's back.
    """
    kwargs: dict[str, Any] = msgspec.to_builtins(config.training_args)
    kwargs.update(
        output_dir=resolved.output_dir,
        per_device_train_batch_size=resolved.per_device_train_batch_size,
        gradient_accumulation_steps=resolved.gradient_accumulation_steps,
        per_device_eval_batch_size=resolved.per_device_eval_batch_size,
        learning_rate=resolved.learning_rate,
        num_train_epochs=resolved.num_train_epochs,
        deepspeed=_deepspeed_with_batch(
            kwargs.get("deepspeed"), resolved, config.batchsize_conf.total_train_batch_size
        ),
        # ftconfig, not report_to, decides about MLflow; None, "none", ["none"] and "all" are all accepted.
        report_to=adjust_report_to(kwargs.get("report_to"), report_mlflow),
        # run_conf.determinism: full is transformers' full determinism (the Trainer seeds with it too).
        full_determinism=bool(kwargs.get("full_determinism")) or config.run_conf.determinism == "full",
        # ftconfig rotates numbered checkpoints itself: transformers would also delete checkpoint-new-basemodel.
        save_total_limit=None,
    )
    if kwargs.get("ddp_find_unused_parameters") is None and _trains_an_adapter(config):
        # transformers would pass True for any PEFT model (it only looks inside a PreTrainedModel), and DDP then
        # walks the graph after every step and warns that it found nothing: an adapter's parameters are all used.
        kwargs["ddp_find_unused_parameters"] = False
    return kwargs


def training_arguments_kwargs(
    config: FinetuningConfig, resolved: ResolvedRun, *, report_mlflow: bool = False
) -> dict[str, Any]:
    """Keyword arguments for TRL's SFTConfig: the resolved training_args plus ftconfig's data settings."""
    kwargs = _resolved_training_kwargs(config, resolved, report_mlflow=report_mlflow)
    kwargs.update(
        # Data is prepared (templated, tokenised, masked, length-filtered) by ftconfig; TRL must not redo it.
        max_length=config.sft_args.max_seq_length,
        dataset_kwargs={"skip_prepare_dataset": True},
        # sft_args.packing is done by ftconfig too (runtime/data/_collator.py: packs of prepared examples, our
        # collator). TRL's packing would insist on its own collator and preparation, so it stays off.
        packing=False,
        padding_free=False,
    )
    return kwargs


def _trains_an_adapter(config: FinetuningConfig | DPOFinetuningConfig) -> bool:
    from ftconfig.generated.config import NoPeftConfig

    return not isinstance(config.peft_conf, NoPeftConfig)


def _cpu_fallback(kwargs: dict[str, Any]) -> dict[str, Any]:
    """use_cpu when there is no accelerator (imports torch: training path only).

    Without it, transformers still trains on the CPU but sets up no process group, so every process of a torchrun
    job would train alone. use_cpu=True makes accelerate use gloo across CPU processes.
    """
    import torch

    if not kwargs["use_cpu"] and not torch.accelerator.is_available():
        kwargs["use_cpu"] = True
        kwargs["dataloader_pin_memory"] = False  # nothing to pin for; avoids torch's warning on every epoch
    return kwargs


def _construct_training_config(config_class: Any, kwargs: dict[str, Any]) -> Any:
    """TRL's config from our kwargs; transformers' and TRL's rejections of contradictory arguments (ValueError)
    become config errors with their whole message."""
    if kwargs.get("deepspeed") and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(
            ErrorItem(
                "$.training_args.deepspeed",
                "DeepSpeed is configured but the deepspeed package is not installed",
                "Install it (pip install deepspeed) or remove training_args.deepspeed.",
            )
        )
    try:
        return config_class(**_cpu_fallback(kwargs))
    except ValueError as exc:  # how transformers and TRL reject contradictory training arguments
        raise ConfigError(
            ErrorItem("$.training_args", " ".join(str(exc).split()) or type(exc).__name__)
        ) from exc
    except ImportError as exc:  # e.g. training_args.deepspeed without the deepspeed package
        raise ConfigError(
            ErrorItem(
                "$.training_args",
                f"these settings need a package that is not installed ({str(exc).strip().splitlines()[0]})",
                "Install it, or remove the setting that needs it (deepspeed, a tracker in report_to, ...)",
            )
        ) from exc


def build_sft_config(config: FinetuningConfig, resolved: ResolvedRun, *, report_mlflow: bool = False) -> Any:
    """TRL SFTConfig for the run (imports TRL: training path only)."""
    from trl import SFTConfig  # type: ignore[attr-defined]  # trl's __init__ exports lazily

    return _construct_training_config(
        SFTConfig, training_arguments_kwargs(config, resolved, report_mlflow=report_mlflow)
    )


def build_dpo_config(
    config: DPOFinetuningConfig, resolved: ResolvedRun, *, report_mlflow: bool = False
) -> Any:
    """TRL DPOConfig for the run: the DPO fields (beta, loss_type, max_length, ...) pass through as written."""
    from trl import DPOConfig  # type: ignore[attr-defined]  # trl's __init__ exports lazily

    return _construct_training_config(
        DPOConfig, _resolved_training_kwargs(config, resolved, report_mlflow=report_mlflow)
    )
