"""Build `schema/training_args.schema.json` from the installed transformers `TrainingArguments`.

The training arguments are transformers' surface, not ours: restating ~110 fields by hand would drift with every
transformers release. This importer reads the dataclass (name, type, default, help) and writes a JSON Schema that
`ftschema import-training-args --check` compares against in CI.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from pathlib import Path
from typing import Any

SCHEMA_ID = "https://ftconfig.dev/schema/training_args.schema.json"

# The batch split is ftconfig's job (batchsize_conf); these would contradict it.
BATCH_FIELDS = {
    "per_device_train_batch_size": "ftconfig derives it from batchsize_conf; set "
    "batchsize_conf.max_per_device_train_batch_size (and total_train_batch_size) instead",
    "per_device_eval_batch_size": "ftconfig derives it from batchsize_conf; set "
    "batchsize_conf.per_device_eval_batch_size instead",
    "gradient_accumulation_steps": "ftconfig derives it from batchsize_conf.total_train_batch_size, "
    "max_per_device_train_batch_size and the number of processes",
}

# Fields that another section of the config owns.
OWNED_ELSEWHERE = {
    "resume_from_checkpoint": "set run_conf.resume_from_checkpoint instead (true, false, 'auto' or a path)",
}

# Keys that configs written for transformers 4 use, with what to write now. Only those the installed
# transformers really lacks end up in the schema.
LEGACY_FIELDS = {
    "warmup_ratio": "removed in transformers 5: write warmup_steps instead (a float below 1 is a ratio of the "
    "total steps, e.g. warmup_ratio: 0.01 -> warmup_steps: 0.01)",
    "evaluation_strategy": "renamed in transformers 5: write eval_strategy instead",
    "no_cuda": "removed in transformers 5: write use_cpu: true instead",
    "overwrite_output_dir": "removed in transformers 5: ftrun refuses an output_dir that holds a finished run; "
    "set run_conf.resume_from_checkpoint or choose a new output_dir",
    "logging_dir": "removed in transformers 5: trackers choose their own log location; use the tracking section",
    "save_safetensors": "removed in transformers 5: checkpoints are always saved as safetensors; delete the key",
    "include_tokens_per_second": "removed in transformers 5: write include_num_input_tokens_seen instead",
    "use_ipex": "removed in transformers 5: delete the key",
    "jit_mode_eval": "removed in transformers 5: delete the key",
    "use_mps_device": "removed in transformers 5: the device is chosen automatically; delete the key",
    "per_gpu_train_batch_size": BATCH_FIELDS["per_device_train_batch_size"],
    "per_gpu_eval_batch_size": BATCH_FIELDS["per_device_eval_batch_size"],
    "tpu_num_cores": "removed in transformers 5: delete the key",
    "push_to_hub_token": "renamed: write hub_token instead",
    "half_precision_backend": "removed in transformers 5: delete the key",
    "fp16_backend": "removed in transformers 5: delete the key",
    "mp_parameters": "removed in transformers 5: delete the key",
    "past_index": "removed in transformers 5: delete the key",
    "ray_scope": "removed in transformers 5: delete the key",
    "split_batches": "moved: write accelerator_config: {split_batches: ...} instead",
    "dispatch_batches": "moved: write accelerator_config: {dispatch_batches: ...} instead",
}

# Upstream defaults that depend on the environment get a stable one here, said in the description.
DESCRIPTION_NOTES = {
    "output_dir": " ftconfig: when null, $CHECKPOINTS_PATH if set, else ./checkpoints.",
    "report_to": " ftconfig adds 'mlflow' when tracking is on (see the tracking section).",
}


# Bounds that torch, numpy and transformers enforce only once training starts (after the weights load), stated
# in the schema so that a bad value is a config error naming its path before anything runs or is written.
_SEED_RANGE = {"minimum": 0, "maximum": 2**32 - 1}
LIBRARY_BOUNDS: dict[str, dict[str, Any]] = {
    "learning_rate": {"minimum": 0},  # torch.optim: "Invalid learning rate"
    "adam_beta1": {"minimum": 0, "exclusiveMaximum": 1},  # torch.optim: "Invalid beta parameter"
    "adam_beta2": {"minimum": 0, "exclusiveMaximum": 1},
    "adam_epsilon": {"minimum": 0},  # torch.optim: "Invalid epsilon value"
    "weight_decay": {"minimum": 0},  # torch.optim: "Invalid weight_decay value"
    "dataloader_num_workers": {"minimum": 0},  # torch DataLoader
    "dataloader_prefetch_factor": {"minimum": 1},  # torch DataLoader
    "seed": _SEED_RANGE,  # numpy.random.seed
    "data_seed": _SEED_RANGE,
    "warmup_steps": {"minimum": 0},  # transformers
    "logging_steps": {"exclusiveMinimum": 0},  # transformers: 0 with the steps strategy is an error
    "save_steps": {"exclusiveMinimum": 0},
    "eval_steps": {"exclusiveMinimum": 0},
    "torch_empty_cache_steps": {"exclusiveMinimum": 0},
    "num_train_epochs": {"minimum": 0},  # 0 with max_steps unset is a cross-field rule in finetuning.schema
}


def apply_library_bounds(properties: dict[str, Any]) -> None:
    """Add LIBRARY_BOUNDS to the imported properties (only for fields the installed transformers has)."""
    for name, bounds in LIBRARY_BOUNDS.items():
        if name in properties and bounds:
            properties[name] = _with_bounds(properties[name], bounds)


def _with_bounds(prop: dict[str, Any], bounds: dict[str, Any]) -> dict[str, Any]:
    """Insert the bounds after `type` (a null stays allowed: JSON Schema number bounds ignore non-numbers)."""
    result: dict[str, Any] = {}
    for key, value in prop.items():
        result[key] = value
        if key == "type":
            result.update(bounds)
    return result


def _json_type_of(annotation: Any) -> dict[str, Any]:
    """Map one Python annotation of a TrainingArguments field to a JSON Schema fragment."""
    if annotation is type(None):
        return {"type": "null"}
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "integer"}
    if annotation is float:
        return {"type": "number"}
    if annotation is str:
        return {"type": "string"}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {"type": "string", "enum": [member.value for member in annotation]}
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        values = [value for value in args if value is not None]
        if all(isinstance(value, bool) for value in values):
            # datamodel-code-generator turns Literal[False] into bool anyway; say so in the schema, so that
            # jsonschema and the generated structs accept the same documents.
            return {"type": "boolean"}
        fragment: dict[str, Any] = {"enum": values}
        return fragment
    if origin in (list, tuple):
        item = _json_type_of(args[0]) if args else {}
        return {"type": "array", "items": item} if item else {"type": "array"}
    if origin is dict or annotation is dict:
        return {"type": "object"}
    if origin in (typing.Union, types.UnionType):
        return _union(args)
    # A library class (e.g. accelerate's ParallelismConfig): a mapping of its keyword arguments.
    return {"type": "object"}


def _union(args: tuple[Any, ...]) -> dict[str, Any]:
    """Union of annotations: an enum absorbs a plain `str`, simple types merge into a type list."""
    parts = [_json_type_of(arg) for arg in args]
    string_enums = [part for part in parts if "enum" in part and part.get("type") == "string"]
    if string_enums and {"type": "string"} in parts:
        parts = [part for part in parts if part != {"type": "string"}]
    if len(parts) == 1:
        return parts[0]
    if all(set(part) == {"type"} and isinstance(part["type"], str) for part in parts):
        return {"type": [part["type"] for part in parts]}
    if len(parts) == 2 and {"type": "null"} in parts:
        other = next(part for part in parts if part != {"type": "null"})
        if "enum" in other:
            return (
                {**other, "enum": [*other["enum"], None], "type": [other["type"], "null"]}
                if "type" in other
                else {**other, "enum": [*other["enum"], None]}
            )
    return {"anyOf": parts}


def _default_of(field: dataclasses.Field[Any]) -> tuple[bool, Any]:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return False, None
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, float) and value.is_integer() and field.type in (int, "int"):
        value = int(value)
    json.dumps(value)  # every default must be plain JSON
    return True, value


def _property(field: dataclasses.Field[Any]) -> dict[str, Any]:
    prop = _json_type_of(field.type)
    choices = field.metadata.get("choices")
    if choices is not None and "enum" not in prop:
        values = list(choices)
        prop = {**prop, "enum": [*values, None] if "null" in str(prop.get("type")) else values}
    has_default, default = _default_of(field)
    if has_default:
        if "enum" in prop and default not in prop["enum"] and isinstance(default, str):
            prop["enum"] = [*prop["enum"], default]
        prop["default"] = default
        if default is None:
            # Tells datamodel-code-generator (--strict-nullable) to emit `= None` instead of UNSET.
            prop["nullable"] = True
    help_text = " ".join(str(field.metadata.get("help") or field.name.replace("_", " ")).split())
    help_text = help_text.replace("%%", "%")  # argparse escaping in transformers' help strings
    prop["description"] = help_text + DESCRIPTION_NOTES.get(field.name, "")
    return prop


def build_training_args_schema() -> dict[str, Any]:
    """Return the training_args schema for the installed transformers (imports transformers: slow)."""
    import transformers
    from transformers import TrainingArguments

    properties: dict[str, Any] = {}
    for field in dataclasses.fields(TrainingArguments):
        if not field.init or field.name.startswith("_") or field.name in BATCH_FIELDS | OWNED_ELSEWHERE:
            continue
        properties[field.name] = _property(field)
    apply_library_bounds(properties)
    forbidden = BATCH_FIELDS | OWNED_ELSEWHERE
    forbidden.update({key: why for key, why in LEGACY_FIELDS.items() if key not in properties})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "SilogenTrainingArguments",
        "description": (
            "HuggingFace TrainingArguments as config, with ftconfig conventions. Generated from transformers "
            f"{transformers.__version__} by `ftschema import-training-args`; do not edit by hand. The batch-size "
            "fields are not allowed here: batchsize_conf sets them."
        ),
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "x-ftconfig-forbidden": forbidden,
    }


def render_training_args_schema() -> str:
    """The schema file's exact text (stable key order, trailing newline)."""
    return json.dumps(build_training_args_schema(), indent=2, ensure_ascii=False) + "\n"


def import_training_args(schema_dir: Path, *, check: bool) -> bool:
    """Write (or, with check, compare) the training_args schema; return True when the file is up to date."""
    target = schema_dir / "training_args.schema.json"
    text = render_training_args_schema()
    current = target.read_text(encoding="utf-8") if target.exists() else None
    if check:
        return current == text
    if current != text:
        target.write_text(text, encoding="utf-8")
    return True
