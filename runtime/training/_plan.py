"""The dry-run plan: what a run would do, computed from the tokenizer and data without loading weights."""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any

from ftconfig.runtime.config._structs import is_dpo, variant_tag

if TYPE_CHECKING:
    from ftconfig.runtime.training._run import PreparedRun

__all__ = [
    "build_plan",
    "first_example",
    "keep_training_only_libraries_out",
    "marked_example",
    "optimizer_steps",
    "plan_warnings",
    "render_plan",
    "render_short_plan",
]


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
    if (
        not is_dpo(run.config) and run.config.sft_args.packing
    ):  # a batch then holds packs of examples, as the run will build them
        from ftconfig.runtime.data._collator import pack_examples

        lengths = run.data.train.with_format("numpy", columns=["length"])[:]["length"]
        rows = len(pack_examples(lengths, int(run.config.sft_args.max_seq_length)))
    batches = math.ceil(rows / (resolved.per_device_train_batch_size * resolved.world_size))
    steps_per_epoch = max(1, math.ceil(batches / resolved.gradient_accumulation_steps))
    return math.ceil(resolved.num_train_epochs * steps_per_epoch)


def first_preference(run: PreparedRun) -> dict[str, str]:
    """The first preference row rendered (special tokens kept): prompt, chosen and rejected answer; `text` is
    prompt + chosen and `trained_text` the chosen answer (the part DPO scores), as for SFT examples."""
    row = run.data.train[0]

    def decode(ids: list[int]) -> str:
        return str(run.tokenizer.decode(ids, skip_special_tokens=False))

    return {
        "prompt": decode(row["prompt_ids"]),
        "chosen": decode(row["chosen_ids"]),
        "rejected": decode(row["rejected_ids"]),
        "text": decode(row["prompt_ids"] + row["chosen_ids"]),
        "trained_text": decode(row["chosen_ids"]),
    }


def first_example(run: PreparedRun) -> dict[str, str]:
    """The first training example as rendered text (special tokens kept) and the part that is trained."""
    from ftconfig.runtime.data._encode import trained_text

    if is_dpo(run.config):
        return first_preference(run)
    row = run.data.train[0]
    return {
        "text": run.tokenizer.decode(row["input_ids"], skip_special_tokens=False),
        "trained_text": trained_text(run.tokenizer, row["input_ids"], row["labels"]),
    }


def marked_example(run: PreparedRun, *, start: str = "«", end: str = "»") -> str:
    """The first example with every trained span wrapped in markers, for the human-readable plan."""
    if is_dpo(run.config):
        pair = first_preference(run)
        return (
            f"chosen:   {pair['prompt']}{start}{pair['chosen']}{end}\n"
            f"rejected: {pair['prompt']}{start}{pair['rejected']}{end}"
        )
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


def training_and_saving(run: PreparedRun) -> tuple[list[str], list[str]]:
    """What the run will train and what it will save (new tokens' rows included), read from the model's config."""
    from ftconfig.runtime.model._loading import embedding_rows, embeddings_tied
    from ftconfig.runtime.model._new_tokens import describe_training
    from ftconfig.runtime.training._run import writes_base_copy

    config = run.config
    token_ids = run.setup.new_token_ids
    base_copy = config.sft_args.save_name_if_new_basemodel if writes_base_copy(config) else None
    return describe_training(
        peft_type=variant_tag(config.peft_conf),
        peft_kwargs=dict(getattr(config.peft_conf, "peft_kwargs", {}) or {}),
        token_ids=token_ids,
        rows=embedding_rows(config.run_conf) if token_ids else None,
        tied=embeddings_tied(config.run_conf) if token_ids else False,
        final_name=config.run_conf.final_checkpoint_name,
        base_copy=base_copy if token_ids else None,
    )


def _interval(value: float, steps: int) -> int:
    """A logging/eval interval in optimizer steps (transformers reads a value below 1 as a ratio of the run)."""
    return max(1, math.ceil(value * steps)) if value < 1 else int(value)


def plan_warnings(run: PreparedRun, steps: int) -> list[str]:
    """What a run will silently not do although the config looks as if it would: log a loss, use its
    validation data. Each message says which setting to change."""
    args = run.config.training_args
    warnings: list[str] = []
    logging_interval = _interval(args.logging_steps, steps)
    if args.logging_strategy == "steps" and logging_interval > steps and not args.logging_first_step:
        warnings.append(
            f"no training loss will be logged: training_args.logging_steps is {args.logging_steps} but the run "
            f"takes {steps} optimizer steps. Set training_args.logging_steps to a smaller number "
            f"(e.g. {max(1, steps // 10)})"
        )
    validation = 0 if run.data.validation is None else len(run.data.validation)
    if validation and args.eval_strategy == "no":
        warnings.append(
            f"the {validation} validation examples are never evaluated: training_args.eval_strategy is 'no'. "
            "Set training_args.eval_strategy: steps (with eval_steps) or epoch, or validation_data: NONE"
        )
    elif validation and args.eval_strategy == "steps":
        eval_every = args.eval_steps if args.eval_steps is not None else args.logging_steps
        if _interval(eval_every, steps) > steps:
            warnings.append(
                f"the {validation} validation examples are never evaluated: evaluation every "
                f"{_interval(eval_every, steps)} steps, but the run takes {steps} optimizer steps. "
                "Set training_args.eval_steps to a smaller number"
            )
    return warnings


def build_plan(run: PreparedRun) -> dict[str, Any]:
    """The plan as one JSON-able object: world size, per-device batch, accumulation, effective LR, epochs and
    steps, example and token counts, dropped examples and the first training example, plus a few more."""
    resolved, data, config = run.resolved, run.data, run.config
    trained, saved = training_and_saving(run)
    steps = optimizer_steps(run)
    return {
        "method": config.method,
        "world_size": resolved.world_size,
        "per_device_train_batch_size": resolved.per_device_train_batch_size,
        "gradient_accumulation_steps": resolved.gradient_accumulation_steps,
        "per_device_eval_batch_size": resolved.per_device_eval_batch_size,
        "total_train_batch_size": config.batchsize_conf.total_train_batch_size,
        "learning_rate": resolved.learning_rate,
        "num_train_epochs": resolved.num_train_epochs,
        "max_steps": resolved.max_steps,
        "optimizer_steps": steps,
        "train_examples": len(data.train),
        "validation_examples": len(data.validation) if data.validation is not None else 0,
        "dropped_examples": data.dropped_train,
        "dropped_validation_examples": data.dropped_validation,
        "train_tokens": data.train_tokens,
        "data_cache_hit": data.cache_hit,
        "chat_template": config.data_conf.chat_template_name,
        "added_tokens": run.setup.added_tokens,
        "new_token_ids": list(run.setup.new_token_ids),
        "trained": trained,
        "saved": saved,
        "peft_type": variant_tag(config.peft_conf),
        "quantization": variant_tag(config.quant_conf),
        "output_dir": resolved.output_dir,
        "resume_from_checkpoint": run.resume,
        "first_example": first_example(run),
        "warnings": plan_warnings(run, steps),
    }


def render_plan(run: PreparedRun, plan: dict[str, Any]) -> str:
    """The plan for people: aligned key/value lines and the first example with its trained part marked."""
    lines = [
        "ftrun plan (dry run: no weights loaded, output_dir untouched; the data preparation cache is filled)"
    ]
    shown = [key for key in plan if key not in ("first_example", "warnings")]
    width = max(len(key) for key in shown)
    for key in shown:
        value = plan[key]
        if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
            lines += [f"  {(key if i == 0 else '').ljust(width)}  {item}" for i, item in enumerate(value)]
        else:
            lines.append(f"  {key.ljust(width)}  {value}")
    what = (
        "first preference pair (the answers DPO scores between « »)"
        if is_dpo(run.config)
        else "first training example (trained part between « »)"
    )
    lines += ["", f"{what}:", marked_example(run)]
    if plan["warnings"]:
        lines += ["", "warnings:", *(f"  - {warning}" for warning in plan["warnings"])]
    return "\n".join(lines)


def render_short_plan(plan: dict[str, Any]) -> list[str]:
    """The plan in three lines, printed when a real run starts (the dry run shows all of it)."""
    steps_from = "max_steps" if plan["max_steps"] > 0 else f"{plan['num_train_epochs']:g} epochs"
    processes = plan["world_size"]
    dropped = plan["dropped_examples"]
    return [
        f"plan: {processes} process{'es' if processes != 1 else ''} × batch {plan['per_device_train_batch_size']} "
        f"× accumulation {plan['gradient_accumulation_steps']} = {plan['total_train_batch_size']} examples "
        f"per step; {plan['optimizer_steps']} optimizer steps ({steps_from}); "
        f"learning rate {plan['learning_rate']:g}",
        f"data: {plan['train_examples']} training examples ({plan['train_tokens']} tokens), "
        f"{plan['validation_examples']} validation examples"
        + (f", {dropped} dropped as longer than max_seq_length" if dropped else ""),
        f"training: {_training_words(plan)}; output in {plan['output_dir']}",
    ]


def _training_words(plan: dict[str, Any]) -> str:
    peft_type, quantization = plan["peft_type"], plan["quantization"]
    words = {"NO_PEFT": "full finetuning", "PRETRAINED_PEFT": "a pretrained adapter, trained further"}
    what = words.get(peft_type, f"a new {peft_type} adapter")
    return what if quantization == "no-quantization" else f"{what} on a {quantization} quantized model"
