"""The dry-run plan: what a run would do, computed from the tokenizer and data without loading weights."""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any

from ftconfig.runtime.config._structs import variant_tag

if TYPE_CHECKING:
    from ftconfig.runtime.training._run import PreparedRun


# Libraries only a real run needs. transformers' TrainingArguments imports peft whenever it is installed (for its
# PeftModel checks in the Trainer) and peft imports bitsandbytes, whose import compiles kernels with torch.compile
# (torch._inductor): about 3 s of a dry run that never wraps, quantizes or trains a model.
TRAINING_ONLY_LIBRARIES = ("peft", "bitsandbytes")


def keep_training_only_libraries_out() -> None:
    """Make peft and bitsandbytes look absent to this process, which will only plan (`ftrun --dry-run`).

    Call it before anything heavy is imported and only in a process that exits after planning (the `ftrun`
    program, not a caller of its `main`): a library imported while they were hidden has dropped its peft or
    bitsandbytes support for the rest of the process.
    Libraries already imported stay. peft_kwargs are still checked, from peft's source
    (ftconfig.runtime.model._peft_fields).
    """
    for name in TRAINING_ONLY_LIBRARIES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def optimizer_steps(run: PreparedRun) -> int:
    """Optimizer steps the trainer will take (max_steps wins over epochs, as in transformers)."""
    resolved = run.resolved
    if resolved.max_steps > 0:
        return resolved.max_steps
    rows = len(run.data.train)
    if run.config.sft_args.packing:  # a batch then holds packs of examples, as the run will build them
        from ftconfig.runtime.data._collator import pack_examples

        lengths = run.data.train.with_format("numpy", columns=["length"])[:]["length"]
        rows = len(pack_examples(lengths, int(run.config.sft_args.max_seq_length)))
    batches = math.ceil(rows / (resolved.per_device_train_batch_size * resolved.world_size))
    steps_per_epoch = max(1, math.ceil(batches / resolved.gradient_accumulation_steps))
    return math.ceil(resolved.num_train_epochs * steps_per_epoch)


def first_example(run: PreparedRun) -> dict[str, str]:
    """The first training example as rendered text (special tokens kept) and the part that is trained."""
    from ftconfig.runtime.data._encode import trained_text

    row = run.data.train[0]
    return {
        "text": run.tokenizer.decode(row["input_ids"], skip_special_tokens=False),
        "trained_text": trained_text(run.tokenizer, row["input_ids"], row["labels"]),
    }


def marked_example(run: PreparedRun, *, start: str = "«", end: str = "»") -> str:
    """The first example with every trained span wrapped in markers, for the human-readable plan."""
    row = run.data.train[0]
    pieces, current, trained = [], [], None
    for token, label in zip(row["input_ids"], row["labels"], strict=True):
        is_trained = label != -100
        if trained is not None and is_trained != trained:
            pieces.append((trained, current))
            current = []
        trained = is_trained
        current.append(token)
    if current:
        pieces.append((bool(trained), current))
    decode = run.tokenizer.decode
    return "".join(f"{start}{decode(ids)}{end}" if flag else decode(ids) for flag, ids in pieces)


def build_plan(run: PreparedRun) -> dict[str, Any]:
    """The plan as one JSON-able object (keys fixed by the contract, plus a few more)."""
    resolved, data, config = run.resolved, run.data, run.config
    return {
        "world_size": resolved.world_size,
        "per_device_train_batch_size": resolved.per_device_train_batch_size,
        "gradient_accumulation_steps": resolved.gradient_accumulation_steps,
        "per_device_eval_batch_size": resolved.per_device_eval_batch_size,
        "total_train_batch_size": config.batchsize_conf.total_train_batch_size,
        "learning_rate": resolved.learning_rate,
        "num_train_epochs": resolved.num_train_epochs,
        "max_steps": resolved.max_steps,
        "optimizer_steps": optimizer_steps(run),
        "train_examples": len(data.train),
        "validation_examples": len(data.validation) if data.validation is not None else 0,
        "dropped_examples": data.dropped_train,
        "dropped_validation_examples": data.dropped_validation,
        "train_tokens": data.train_tokens,
        "data_cache_hit": data.cache_hit,
        "chat_template": config.data_conf.chat_template_name,
        "added_tokens": run.setup.added_tokens,
        "peft_type": variant_tag(config.peft_conf),
        "quantization": variant_tag(config.quant_conf),
        "output_dir": resolved.output_dir,
        "resume_from_checkpoint": run.resume,
        "first_example": first_example(run),
    }


def render_plan(run: PreparedRun, plan: dict[str, Any]) -> str:
    """The plan for people: aligned key/value lines and the first example with its trained part marked."""
    lines = ["ftrun plan (dry run: no weights loaded, nothing written)"]
    shown = [key for key in plan if key != "first_example"]
    width = max(len(key) for key in shown)
    lines += [f"  {key.ljust(width)}  {plan[key]}" for key in shown]
    lines += ["", "first training example (trained part between « »):", marked_example(run)]
    return "\n".join(lines)
