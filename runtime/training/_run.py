"""One run, top to bottom: resolve -> preflight -> tokenizer -> data -> model -> PEFT -> trainer -> train -> save.

Everything that can be checked without model weights (batch split, resume target, output_dir, peft kwargs, model
reference, training arguments, tokenizer, pad strategy, data) runs first, so a user mistake costs seconds and
leaves nothing in output_dir. `prepare_run` is also the whole of `ftrun --dry-run`.

The module reads in call order: `train` -> `prepare_run` and its checks -> `_train_and_save` and its steps.
Torch-side modules are imported inside the functions that need them, so the checks run before they load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from ftconfig.generated.config import NoPeftConfig
from ftconfig.runtime.config._errors import ConfigError, ErrorItem, UserError
from ftconfig.runtime.config._files import writable_location_problem
from ftconfig.runtime.config._resolve import (
    ResolvedRun,
    build_dpo_config,
    build_sft_config,
    resolve_output_dir,
    resolve_run,
)
from ftconfig.runtime.config._secrets import detach_hub_token
from ftconfig.runtime.config._structs import is_dpo, is_quantized, variant_tag
from ftconfig.runtime.model._hub import check_hub_references
from ftconfig.runtime.tracking._mlflow import check_tracking_server, start_tracking, tracked_run
from ftconfig.runtime.tracking._plan import resolve_tracking
from ftconfig.runtime.training._checkpoints import (
    checkpoint_step,
    config_changes,
    guard_output_dir,
    remove_numbered_checkpoints,
    resolve_resume,
)
from ftconfig.runtime.training._interrupts import interrupts_kept
from ftconfig.runtime.training._lock import check_not_running, output_dir_lock
from ftconfig.runtime.training._output import (
    RESOLVED_CONFIG_NAME,
    naming_storage_failures,
    replace_directory,
    resolved_config_document,
    write_json_atomic,
)

if TYPE_CHECKING:
    from transformers import TrainerCallback

    from ftconfig.generated.config import DPOFinetuningConfig, FinetuningConfig
    from ftconfig.runtime.data._prepare import PreparedData
    from ftconfig.runtime.data._tokenizer import TokenizerSetup
    from ftconfig.runtime.tracking._plan import TrackingPlan

__all__ = [
    "PreparedRun",
    "RunOptions",
    "RunResult",
    "check_output_locations",
    "launcher_variable",
    "prepare_run",
    "process_world",
    "train",
    "weights_digest",
    "writes_base_copy",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """What the command line adds to a config."""

    num_preprocess_workers: int = 1
    overwrite: bool = False
    cache_dir: Path | None = None
    mlflow_server_uri: str | None = None
    experiment_name: str | None = None


@dataclass
class PreparedRun:
    """A run checked and ready except for the model weights."""

    config: FinetuningConfig | DPOFinetuningConfig
    resolved: ResolvedRun
    resume: str | bool
    sft_config: Any  # the trainer's arguments: TRL SFTConfig, or DPOConfig for method dpo
    tokenizer: Any
    setup: TokenizerSetup
    data: PreparedData
    tracking: TrackingPlan | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def output_dir(self) -> Path:
        return Path(self.resolved.output_dir)


@dataclass(frozen=True)
class RunResult:
    """What a finished run left: where its final checkpoint is, its metrics and a fingerprint of its weights."""

    output_dir: Path
    final_checkpoint: Path
    metrics: dict[str, float]
    log_history: list[dict[str, Any]]
    weights_sha256: str


def train(config: FinetuningConfig | DPOFinetuningConfig, options: RunOptions) -> RunResult:
    """Run the training a config describes and save the final checkpoint; returns where it went."""
    world_size, rank = process_world()
    output_dir = Path(resolve_output_dir(config))
    # Rank 0 holds output_dir for the whole job (the other ranks write only where rank 0 lets them).
    lock = output_dir_lock(output_dir) if rank == 0 else contextlib.nullcontext()
    with lock, naming_storage_failures(output_dir):
        return _prepare_and_train(config, options, world_size=world_size, rank=rank)


def _prepare_and_train(
    config: FinetuningConfig | DPOFinetuningConfig, options: RunOptions, *, world_size: int, rank: int
) -> RunResult:
    run = prepare_run(config, options, world_size=world_size)
    if rank == 0:
        _announce_plan(run)
    if run.tracking is not None and run.tracking.display_uri != run.tracking.tracking_uri:
        # MLflow prints "View run ... at: <tracking URI>" to stdout when a run ends, credentials included.
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    run_id = start_tracking(run.tracking, resolved_config_document(config, run.resolved), is_main=rank == 0)
    with tracked_run(run.tracking, run_id):
        return _train_and_save(run, is_main=rank == 0, replace_earlier=options.overwrite and not run.resume)


def _announce_plan(run: PreparedRun) -> None:
    """The short form of the dry-run plan, and what the run will silently not do, before the weights load."""
    from ftconfig.runtime.training._plan import build_plan, render_short_plan

    plan = build_plan(run)
    for line in render_short_plan(plan):
        logger.info("%s", line)
    for warning in plan["warnings"]:
        logger.warning("warning: %s", warning)


def prepare_run(
    config: FinetuningConfig | DPOFinetuningConfig, options: RunOptions, *, world_size: int
) -> PreparedRun:
    """Resolve and preflight a run, load the tokenizer and prepare the data; loads no weights."""
    # The cheap checks first, before the heavy libraries are even imported.
    resolved = resolve_run(config, world_size=world_size)
    output_dir = Path(resolved.output_dir)
    resume = resolve_resume(config.run_conf.resume_from_checkpoint, output_dir)
    guard_output_dir(
        output_dir,
        final_name=config.run_conf.final_checkpoint_name,
        resume=resume,
        overwrite=options.overwrite,
        setting=config.run_conf.resume_from_checkpoint,
    )
    from ftconfig.runtime.data._cache import default_cache_dir

    cache_dir = options.cache_dir or default_cache_dir()
    check_output_locations(output_dir, cache_dir)
    if process_world()[1] == 0:
        check_not_running(output_dir)
    _check_combinations(config)
    # A mistyped model path, or a Hub model with no Hub to get it from, fails now and in well under two seconds.
    check_hub_references(config)
    # A bad or unreachable tracking server is found now, not after the data is prepared or the model trained.
    tracking = resolve_tracking(
        config,
        os.environ,
        mlflow_server_uri=options.mlflow_server_uri,
        experiment_name=options.experiment_name,
    )
    if tracking is not None and process_world()[1] == 0:
        check_tracking_server(tracking)

    from ftconfig.runtime.config._report_to import adjust_report_to
    from ftconfig.runtime.data._preference import prepare_preferences
    from ftconfig.runtime.data._prepare import prepare_data
    from ftconfig.runtime.data._tokenizer import build_tokenizer, check_completions_only
    from ftconfig.runtime.model._adapter_targets import check_adapter_targets
    from ftconfig.runtime.model._loading import check_model_reference
    from ftconfig.runtime.model._new_tokens import check_new_token_training
    from ftconfig.runtime.model._peft import (
        check_adapter_fits_model,
        check_adapter_reference,
        check_adapter_vocabulary,
        check_peft_kwargs,
    )
    from ftconfig.runtime.training._integrations import check_push_to_hub, check_report_to

    check_peft_kwargs(config.peft_conf)
    check_adapter_reference(config.peft_conf)
    check_model_reference(config.run_conf)
    check_adapter_targets(config.peft_conf, config.run_conf)
    check_adapter_fits_model(config.peft_conf, config.run_conf)
    # Only the main process reports to MLflow: one run per job.
    report_mlflow = tracking is not None and process_world()[1] == 0
    # What report_to and push_to_hub need (packages, token, network) is there, before the weights load.
    check_report_to(adjust_report_to(config.training_args.report_to, report_mlflow))
    check_push_to_hub(config.training_args)
    if is_dpo(config):
        sft_config = build_dpo_config(config, resolved, report_mlflow=report_mlflow)
    else:
        sft_config = build_sft_config(config, resolved, report_mlflow=report_mlflow)
    tokenizer, setup = build_tokenizer(config.run_conf, config.data_conf)
    check_adapter_vocabulary(
        config.peft_conf, config.run_conf, tokenizer_size=len(tokenizer), added_tokens=setup.added_tokens
    )
    check_new_token_training(
        variant_tag(config.peft_conf),
        dict(getattr(config.peft_conf, "peft_kwargs", {}) or {}),
        setup.new_token_ids,
    )
    # The pad strategy was checked by build_tokenizer before it set the pad token (checking it again here would
    # see the pad token unk-convert-to-eos had just set and refuse it).
    if not is_dpo(config) and config.sft_args.train_on_completions_only:
        check_completions_only(tokenizer, setup)
    # Rank 0 tokenises and fills the cache; the other ranks wait, then read the cache. Touching `device` sets up
    # the process group first: before that, TrainingArguments reports world_size 1 and would not wait.
    _ = sft_config.device
    prepare = prepare_preferences if is_dpo(config) else prepare_data
    with (
        sft_config.main_process_first(desc="data preparation"),
        naming_storage_failures(cache_dir),
        interrupts_kept(),
    ):
        data = prepare(
            config,  # type: ignore[arg-type]  # the function matching the method
            tokenizer,
            setup,
            num_proc=options.num_preprocess_workers,
            cache_dir=cache_dir,
        )
    return PreparedRun(
        config=config,
        resolved=resolved,
        resume=resume,
        sft_config=sft_config,
        tokenizer=tokenizer,
        setup=setup,
        data=data,
        tracking=tracking,
    )


def _check_combinations(config: FinetuningConfig | DPOFinetuningConfig) -> None:
    """Cross-section rules the schema cannot state because they need library facts."""
    if is_quantized(config.quant_conf) and isinstance(config.peft_conf, NoPeftConfig):
        raise ConfigError(
            ErrorItem(
                "$.peft_conf",
                "a quantized model cannot be trained without an adapter",
                "Use an adapter (e.g. peft_type: LORA) or quant_conf: no-quantization.",
            )
        )
    if not is_dpo(config) and config.sft_args.packing:
        _check_packing_attention(config.run_conf.model_args.attn_implementation)
    if writes_base_copy(config) and is_quantized(config.quant_conf):
        raise ConfigError(
            ErrorItem(
                "$.sft_args.save_new_basemodel",
                "a copy of the base model with grown embeddings cannot be saved from a quantized model "
                "(only its quantized weights are loaded)",
                "Leave save_new_basemodel false: the adapter holds the new tokens' rows and loads onto the "
                "original base model resized to the tokenizer's length.",
            )
        )


def writes_base_copy(config: FinetuningConfig | DPOFinetuningConfig) -> TypeGuard[FinetuningConfig]:
    """Whether a run whose chat template adds tokens also saves a grown base-model copy: only with an adapter
    and only when sft_args.save_new_basemodel asks (a full-model run's checkpoints hold the grown embeddings)."""
    if is_dpo(config):
        return False  # DPO configs have no sft_args: the adapter carries the new rows
    return bool(config.sft_args.save_new_basemodel) and not isinstance(config.peft_conf, NoPeftConfig)


def _check_packing_attention(attn_implementation: str | None) -> str:
    """The packed batch layout for an attention implementation; a ConfigError when it would mix examples."""
    from ftconfig.runtime.data._collator import packed_layout

    layout = packed_layout(attn_implementation)
    if layout is None:
        raise ConfigError(
            ErrorItem(
                "$.run_conf.model_args.attn_implementation",
                f"packing needs an attention implementation that keeps packed examples apart, "
                f"not {attn_implementation!r}",
                "Use sdpa, eager, flex_attention or flash_attention_2, or set sft_args.packing: false.",
            )
        )
    return layout


def _train_and_save(run: PreparedRun, *, is_main: bool, replace_earlier: bool = False) -> RunResult:
    from trl import SFTTrainer  # type: ignore[attr-defined]  # trl's __init__ exports lazily

    from ftconfig.runtime.tracking._guard import guard_tracking_callbacks
    from ftconfig.runtime.training._model_card import name_base_model_in_card
    from ftconfig.runtime.training._rotation import NumberedCheckpointRotation

    config = run.config
    final_dir = run.output_dir / config.run_conf.final_checkpoint_name
    partial_dir = final_dir.with_name(f".{final_dir.name}.partial")
    if is_main:
        shutil.rmtree(partial_dir, ignore_errors=True)  # left by a run killed while saving
        _report_resume(run)
    model = _load_and_adapt_model(run, is_main=is_main)
    train_dataset, eval_dataset, collator = _datasets_and_collator(run, model)
    limit = config.training_args.save_total_limit
    detach_hub_token(run.sft_config, os.environ)  # else pickled into every training_args.bin
    callbacks: list[TrainerCallback] = [NumberedCheckpointRotation(limit)] if limit else []
    if is_dpo(config):
        from ftconfig.runtime.training._dpo import build_dpo_trainer

        trainer = build_dpo_trainer(
            model,
            args=run.sft_config,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            tokenizer=run.tokenizer,
            callbacks=callbacks,
            uses_adapter=not isinstance(config.peft_conf, NoPeftConfig),
        )
    else:
        trainer = SFTTrainer(
            model=model,
            args=run.sft_config,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=run.tokenizer,
            data_collator=collator,
            callbacks=callbacks,
        )
    name_base_model_in_card(trainer, config.run_conf.model)
    guard_tracking_callbacks(trainer, run.tracking)
    if is_main:
        write_json_atomic(
            run.output_dir / RESOLVED_CONFIG_NAME, resolved_config_document(config, run.resolved)
        )
    if is_main and replace_earlier:
        # Only now, with everything loaded: a run that fails earlier leaves the earlier run as it was.
        remove_numbered_checkpoints(run.output_dir)
    metrics = _train(trainer, run)
    # Written beside the final checkpoint, then renamed: a crash never leaves a half-written checkpoint-final.
    try:
        trainer.save_model(str(partial_dir))
        if is_main:
            if is_dpo(config):
                from ftconfig.runtime.training._dpo import drop_reference_adapter

                drop_reference_adapter(partial_dir)
            _save_generation_config(trainer, partial_dir)
            trainer.save_state()
            replace_directory(partial_dir, final_dir)
    except BaseException:  # Ctrl-C / SIGTERM included: what was written so far is useless
        if is_main:
            shutil.rmtree(partial_dir, ignore_errors=True)
        raise
    trainer.accelerator.wait_for_everyone()
    return RunResult(
        output_dir=run.output_dir,
        final_checkpoint=final_dir,
        metrics=metrics,
        log_history=list(trainer.state.log_history),
        weights_sha256=weights_digest(trainer.accelerator.unwrap_model(trainer.model)),
    )


def _report_resume(run: PreparedRun) -> None:
    """On resume, say what differs from the run that wrote the checkpoint (the current config wins)."""
    previous_path = run.output_dir / RESOLVED_CONFIG_NAME
    if not run.resume or not previous_path.is_file():
        return
    previous = json.loads(previous_path.read_text(encoding="utf-8"))
    current = resolved_config_document(run.config, run.resolved)
    changes = config_changes(previous.get("config", {}), current["config"])
    changes += config_changes(previous.get("resolved", {}), current["resolved"], "$.resolved")
    logger.info("resuming from %s", run.resume)
    for line in changes:
        logger.warning("changed since the checkpoint was written (the current value is used): %s", line)


def _load_and_adapt_model(run: PreparedRun, *, is_main: bool) -> Any:
    """Weights load only now, after every check passed; then embeddings grow and the adapter is attached."""
    import torch
    from transformers import enable_full_determinism, set_seed

    from ftconfig.runtime.model._embeddings import grow_embeddings, save_new_basemodel
    from ftconfig.runtime.model._generation_config import inference_generation_config
    from ftconfig.runtime.model._loading import load_model
    from ftconfig.runtime.model._peft import apply_peft
    from ftconfig.runtime.model._quantization import quant_storage_for_fsdp

    config = run.config
    # Seeded before the weights load: embedding growth samples new rows, and every rank must draw the same ones.
    if run.sft_config.full_determinism:
        enable_full_determinism(config.training_args.seed)
    else:
        set_seed(config.training_args.seed)
        if config.run_conf.determinism == "half":
            # Deterministic implementations where PyTorch has them; a warning, not an error, where it has none.
            torch.use_deterministic_algorithms(True, warn_only=True)
    model = load_model(
        config.run_conf,
        quant_storage_for_fsdp(config.quant_conf, config.training_args),
        use_cache=run.resolved.use_cache,
        world_size=run.resolved.world_size,
        local_rank=launcher_variable("LOCAL_RANK", 0),
    )
    new_rows = grow_embeddings(model, run.tokenizer, run.setup.new_token_ids)
    # Every model this run saves (full checkpoints, the grown base) stops generating at the end of a turn.
    model.generation_config = inference_generation_config(
        model.generation_config, run.tokenizer, run.setup.inference_eos
    )
    if new_rows is not None and writes_base_copy(config) and is_main:
        # Only on request: the adapter holds the new rows, and any copy of the base resized to the tokenizer fits it.
        save_new_basemodel(model, run.tokenizer, run.output_dir / config.sft_args.save_name_if_new_basemodel)
    return apply_peft(
        model,
        config.peft_conf,
        quantized=is_quantized(config.quant_conf),
        gradient_checkpointing=run.resolved.gradient_checkpointing,
        gradient_checkpointing_kwargs=config.training_args.gradient_checkpointing_kwargs
        if isinstance(config.training_args.gradient_checkpointing_kwargs, dict)
        else None,
        new_rows=new_rows,
    )


def _datasets_and_collator(run: PreparedRun, model: Any) -> tuple[Any, Any, Any]:
    """The training and validation datasets and the collator: padded examples, or packs (sft_args.packing).

    Packs are laid out for the attention implementation the model really loaded with (the default is only
    known now); TRL's own packing is not used because it needs its own collator and its own preparation.
    """
    from ftconfig.runtime.data._collator import build_data_collator, build_packed_collator, pack_dataset

    data = run.data
    if is_dpo(run.config):  # TRL's preference collator pads prompt + chosen / prompt + rejected itself
        return data.train, data.validation, None
    if not run.config.sft_args.packing:
        return data.train, data.validation, build_data_collator(run.tokenizer, run.setup)
    layout = _check_packing_attention(getattr(model.config, "_attn_implementation", None))
    capacity = int(run.config.sft_args.max_seq_length)
    train = pack_dataset(data.train, capacity)
    validation = None if data.validation is None else pack_dataset(data.validation, capacity)
    logger.info(
        "packing: %d training examples in %d packs of up to %d tokens (%s layout)",
        len(data.train),
        len(train),
        capacity,
        layout,
    )
    return train, validation, build_packed_collator(run.tokenizer, run.setup, layout=layout)


def _save_generation_config(trainer: Any, checkpoint: Path) -> None:
    """An adapter checkpoint gets the generation config too (PEFT saves none), so that whoever loads it
    with its base model can stop at the end of a turn; full-model saves already wrote it."""
    if (checkpoint / "generation_config.json").is_file():
        return
    model = trainer.accelerator.unwrap_model(trainer.model)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.generation_config.save_pretrained(checkpoint)


def _train(trainer: Any, run: PreparedRun) -> dict[str, float]:
    """trainer.train(), resuming as resolved; a checkpoint that already reached max_steps is only loaded.

    transformers 5.24 checks max_steps after each optimizer step, not before the first one, so resuming from a
    checkpoint at global_step == max_steps (a job killed between its last checkpoint and the final save, or a
    finished run resumed with 'auto') would train one step too many.
    """
    resume = str(run.resume) if run.resume else None
    max_steps = int(run.sft_config.max_steps)
    step = checkpoint_step(Path(resume)) if resume else None
    sharded = trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled  # they load inside the training loop
    if resume is None or step is None or max_steps <= 0 or step < max_steps or sharded:
        return dict(trainer.train(resume_from_checkpoint=resume).metrics)
    from transformers import TrainerState

    logger.info(
        "%s already reached max_steps (%d): nothing left to train, its weights are final", resume, max_steps
    )
    trainer._load_from_checkpoint(resume)
    trainer.state = TrainerState.load_from_json(str(Path(resume) / "trainer_state.json"))
    return {}


def weights_digest(model: Any) -> str:
    """A fingerprint of every parameter (name, shape, sum and sum of squares in float64): equal on every rank of
    a correct DDP run. Per-tensor sums on the tensor's own device, so a large model is never copied to the CPU.
    """
    import torch

    digest = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            values = tensor.detach().to(torch.float64)
            digest.update(
                f"{name}{tuple(tensor.shape)}{values.sum().item()!r}{values.square().sum().item()!r}".encode()
            )
    return digest.hexdigest()


def launcher_variable(name: str, default: int, *, minimum: int = 0) -> int:
    """A whole number a launcher (torchrun, accelerate, a scheduler) put in the environment; UserError if not."""
    text = os.environ.get(name)
    if text is None or text.strip() == "":
        return default
    try:
        value = int(text.strip())
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise UserError(
            ErrorItem(
                f"environment variable {name}",
                f"{text!r} is not a whole number >= {minimum}",
                "Launchers (torchrun, accelerate launch) set it; unset it for a single-process run.",
            )
        )
    return value


def process_world() -> tuple[int, int]:
    """(world size, global rank) as torchrun / accelerate launch set them; (1, 0) for a plain process."""
    world_size = launcher_variable("WORLD_SIZE", 1, minimum=1)
    rank = launcher_variable("RANK", 0)
    launcher_variable("LOCAL_RANK", 0)
    if rank >= world_size:
        raise UserError(
            ErrorItem("environment variable RANK", f"{rank} is not below WORLD_SIZE ({world_size})")
        )
    return world_size, rank


def check_output_locations(output_dir: Path, cache_dir: Path) -> None:
    """output_dir and the data cache must be folders this process can create and write (nothing is written)."""
    problems = []
    if (problem := writable_location_problem(output_dir)) is not None:
        problems.append(ErrorItem("$.training_args.output_dir", problem))
    if (problem := writable_location_problem(cache_dir)) is not None:
        problems.append(ErrorItem("data cache (FTCONFIG_CACHE_DIR)", problem))
    if problems:
        raise ConfigError(problems)
