"""One run, top to bottom: resolve -> preflight -> tokenizer -> data -> model -> PEFT -> trainer -> train -> save.

Everything that can be checked without model weights (batch split, resume target, output_dir, peft kwargs, model
reference, training arguments, tokenizer, pad strategy, data) runs first, so a user mistake costs seconds and
leaves nothing in output_dir. `prepare_run` is also the whole of `ftrun --dry-run`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from ftconfig.runtime.config._errors import ConfigError, ErrorItem, UserError
from ftconfig.runtime.config._files import writable_location_problem
from ftconfig.runtime.config._resolve import ResolvedRun, resolve_output_dir, resolve_run
from ftconfig.runtime.tracking._mlflow import check_tracking_server
from ftconfig.runtime.tracking._plan import resolve_tracking
from ftconfig.runtime.training._checkpoints import (
    checkpoint_step,
    guard_output_dir,
    remove_numbered_checkpoints,
    resolve_resume,
)
from ftconfig.runtime.training._lock import check_not_running, output_dir_lock

if TYPE_CHECKING:
    from ftconfig.generated.config import FinetuningConfig
    from ftconfig.runtime.data._prepare import PreparedData
    from ftconfig.runtime.data._tokenizer import TokenizerSetup
    from ftconfig.runtime.tracking._plan import TrackingPlan

logger = logging.getLogger("ftconfig")


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

    config: FinetuningConfig
    resolved: ResolvedRun
    resume: str | bool
    sft_config: Any
    tokenizer: Any
    setup: TokenizerSetup
    data: PreparedData
    tracking: TrackingPlan | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def output_dir(self) -> Path:
        return Path(self.resolved.output_dir)


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


def _is_quantized(config: FinetuningConfig) -> bool:
    from ftconfig.generated.config import BnBQuantizationConfig

    return isinstance(config.quant_conf, BnBQuantizationConfig)


def _check_combinations(config: FinetuningConfig) -> None:
    """Cross-section rules the schema cannot state because they need library facts."""
    from ftconfig.generated.config import NoPeftConfig

    if _is_quantized(config) and isinstance(config.peft_conf, NoPeftConfig):
        raise ConfigError(
            ErrorItem(
                "$.peft_conf",
                "a quantized model cannot be trained without an adapter",
                "Use an adapter (e.g. peft_type: LORA) or quant_conf: no-quantization.",
            )
        )
    if config.sft_args.packing:
        _check_packing_attention(config.run_conf.model_args.attn_implementation)


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


@contextlib.contextmanager
def interrupts_kept() -> Iterator[None]:
    """Let Ctrl-C and SIGTERM out as themselves when a library's clean-up replaced them with its own error.

    datasets' worker pool, interrupted while it waits, raises a TimeoutError from its `finally` block; the
    KeyboardInterrupt (or the SIGTERM raised like it) is then only that error's context. Re-raising it gives the
    clean stop (exit 130 or 143, one line) instead of a traceback; the pool has already ended its workers.
    Ctrl-C in a terminal reaches the forked workers too: they ignore it (the handler is inherited), since the
    main process ends them, instead of each printing its own KeyboardInterrupt traceback.
    """
    owner = os.getpid()

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if os.getpid() == owner:
            raise KeyboardInterrupt

    previous = None
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    except Exception as error:
        interrupt = _interrupt_behind(error)
        if interrupt is None:
            raise
        raise interrupt from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _interrupt_behind(error: BaseException) -> KeyboardInterrupt | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, KeyboardInterrupt):
            return current
        current = current.__cause__ or current.__context__
    return None


def check_output_locations(output_dir: Path, cache_dir: Path) -> None:
    """output_dir and the data cache must be folders this process can create and write (nothing is written)."""
    problems = []
    if (problem := writable_location_problem(output_dir)) is not None:
        problems.append(ErrorItem("$.training_args.output_dir", problem))
    if (problem := writable_location_problem(cache_dir)) is not None:
        problems.append(ErrorItem("data cache (FTCONFIG_CACHE_DIR)", problem))
    if problems:
        raise ConfigError(problems)


@contextlib.contextmanager
def _library_seam(location: str) -> Iterator[None]:
    """Training-argument contradictions that transformers/TRL detect become config errors."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        raise ConfigError(ErrorItem(location, str(exc).strip().splitlines()[0])) from exc


def prepare_run(config: FinetuningConfig, options: RunOptions, *, world_size: int) -> PreparedRun:
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

    check_output_locations(output_dir, options.cache_dir or default_cache_dir())
    if process_world()[1] == 0:
        check_not_running(output_dir)
    _check_combinations(config)
    # A bad or unreachable tracking server is found now, not after the data is prepared or the model trained.
    tracking = resolve_tracking(
        config,
        os.environ,
        mlflow_server_uri=options.mlflow_server_uri,
        experiment_name=options.experiment_name,
    )
    if tracking is not None and process_world()[1] == 0:
        check_tracking_server(tracking)

    from ftconfig.runtime.config._resolve import build_sft_config
    from ftconfig.runtime.data._prepare import prepare_data
    from ftconfig.runtime.data._tokenizer import build_tokenizer, check_completions_only, check_pad_strategy
    from ftconfig.runtime.model._loading import check_model_reference
    from ftconfig.runtime.model._peft import (
        check_adapter_fits_model,
        check_adapter_reference,
        check_adapter_vocabulary,
        check_peft_kwargs,
    )

    check_peft_kwargs(config.peft_conf)
    check_adapter_reference(config.peft_conf)
    check_model_reference(config.run_conf)
    check_adapter_fits_model(config.peft_conf, config.run_conf)
    with _library_seam("$.training_args"):
        # Only the main process reports to MLflow: one run per job.
        report_mlflow = tracking is not None and process_world()[1] == 0
        sft_config = build_sft_config(config, resolved, report_mlflow=report_mlflow)
    tokenizer, setup = build_tokenizer(config.run_conf, config.data_conf)
    check_adapter_vocabulary(
        config.peft_conf, config.run_conf, tokenizer_size=len(tokenizer), added_tokens=setup.added_tokens
    )
    check_pad_strategy(tokenizer, config.data_conf.missing_pad_token_strategy)
    if config.sft_args.train_on_completions_only:
        check_completions_only(tokenizer, setup)
    # Rank 0 tokenises and fills the cache; the other ranks wait, then read the cache. Touching `device` sets up
    # the process group first: before that, TrainingArguments reports world_size 1 and would not wait.
    _ = sft_config.device
    from ftconfig.runtime.training._output import naming_storage_failures

    cache_dir = options.cache_dir or default_cache_dir()
    with (
        sft_config.main_process_first(desc="data preparation"),
        naming_storage_failures(cache_dir),
        interrupts_kept(),
    ):
        data = prepare_data(
            config,
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


@dataclass(frozen=True)
class RunResult:
    output_dir: Path
    final_checkpoint: Path
    metrics: dict[str, float]
    log_history: list[dict[str, Any]]
    weights_sha256: str


def _load_and_adapt_model(run: PreparedRun, *, is_main: bool) -> Any:
    """Weights load only now, after every check passed; then embeddings grow and the adapter is attached."""
    from transformers import enable_full_determinism, set_seed

    from ftconfig.generated.config import NoPeftConfig
    from ftconfig.runtime.model._embeddings import grow_embeddings, save_new_basemodel
    from ftconfig.runtime.model._loading import load_model
    from ftconfig.runtime.model._peft import apply_peft
    from ftconfig.runtime.model._quantization import quant_storage_for_fsdp

    config = run.config
    # Seeded before the weights load: embedding growth samples new rows, and every rank must draw the same ones.
    if config.training_args.full_determinism:
        enable_full_determinism(config.training_args.seed)
    else:
        set_seed(config.training_args.seed)
    model = load_model(
        config.run_conf,
        quant_storage_for_fsdp(config.quant_conf, config.training_args),
        use_cache=run.resolved.use_cache,
        world_size=run.resolved.world_size,
        local_rank=launcher_variable("LOCAL_RANK", 0),
    )
    modules_to_save = grow_embeddings(model, run.tokenizer, run.setup.added_tokens)
    uses_adapter = not isinstance(config.peft_conf, NoPeftConfig)
    if uses_adapter and run.setup.added_tokens > 0 and is_main:
        # An adapter trained on a grown vocabulary only fits a base model with the same vocabulary.
        save_new_basemodel(model, run.tokenizer, run.output_dir / config.sft_args.save_name_if_new_basemodel)
    return apply_peft(
        model,
        config.peft_conf,
        quantized=_is_quantized(config),
        gradient_checkpointing=run.resolved.gradient_checkpointing,
        gradient_checkpointing_kwargs=config.training_args.gradient_checkpointing_kwargs
        if isinstance(config.training_args.gradient_checkpointing_kwargs, dict)
        else None,
        modules_to_save=modules_to_save,
    )


def _report_resume(run: PreparedRun) -> None:
    """On resume, say what differs from the run that wrote the checkpoint (the current config wins)."""
    import json

    from ftconfig.runtime.training._checkpoints import config_changes
    from ftconfig.runtime.training._output import RESOLVED_CONFIG_NAME, resolved_config_document

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


def weights_digest(model: Any) -> str:
    """A fingerprint of every parameter (name, shape, sum and sum of squares in float64): equal on every rank of
    a correct DDP run. Per-tensor sums on the tensor's own device, so a large model is never copied to the CPU.
    """
    import hashlib

    import torch

    digest = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            values = tensor.detach().to(torch.float64)
            digest.update(
                f"{name}{tuple(tensor.shape)}{values.sum().item()!r}{values.square().sum().item()!r}".encode()
            )
    return digest.hexdigest()


def _datasets_and_collator(run: PreparedRun, model: Any) -> tuple[Any, Any, Any]:
    """The training and validation datasets and the collator: padded examples, or packs (sft_args.packing).

    Packs are laid out for the attention implementation the model really loaded with (the default is only
    known now); TRL's own packing is not used because it needs its own collator and its own preparation.
    """
    from ftconfig.runtime.data._collator import build_data_collator, build_packed_collator, pack_dataset

    data = run.data
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


def train(config: FinetuningConfig, options: RunOptions) -> RunResult:
    """Run the training a config describes and save the final checkpoint; returns where it went."""
    world_size, rank = process_world()
    # Rank 0 holds output_dir for the whole job (the other ranks write only where rank 0 lets them).
    lock = output_dir_lock(Path(resolve_output_dir(config))) if rank == 0 else contextlib.nullcontext()
    from ftconfig.runtime.training._output import naming_storage_failures

    output_dir = Path(resolve_output_dir(config))
    with lock, naming_storage_failures(output_dir):
        return _prepare_and_train(config, options, world_size=world_size, rank=rank)


def _prepare_and_train(
    config: FinetuningConfig, options: RunOptions, *, world_size: int, rank: int
) -> RunResult:
    from ftconfig.runtime.tracking._mlflow import start_tracking, tracked_run
    from ftconfig.runtime.training._output import resolved_config_document

    run = prepare_run(config, options, world_size=world_size)
    if run.tracking is not None and run.tracking.display_uri != run.tracking.tracking_uri:
        # MLflow prints "View run ... at: <tracking URI>" to stdout when a run ends, credentials included.
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    run_id = start_tracking(run.tracking, resolved_config_document(config, run.resolved), is_main=rank == 0)
    with tracked_run(run.tracking, run_id):
        return _train_and_save(run, is_main=rank == 0, replace_earlier=options.overwrite and not run.resume)


def _train_and_save(run: PreparedRun, *, is_main: bool, replace_earlier: bool = False) -> RunResult:
    from trl import SFTTrainer

    from ftconfig.runtime.config._secrets import detach_hub_token
    from ftconfig.runtime.tracking._guard import guard_tracking_callbacks
    from ftconfig.runtime.training._output import (
        RESOLVED_CONFIG_NAME,
        replace_directory,
        resolved_config_document,
        write_json_atomic,
    )
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
    trainer = SFTTrainer(
        model=model,
        args=run.sft_config,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=run.tokenizer,
        data_collator=collator,
        callbacks=[NumberedCheckpointRotation(limit)] if limit else [],
    )
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
