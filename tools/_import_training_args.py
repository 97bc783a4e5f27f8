"""Build the training_args schemas from the installed libraries: transformers' `TrainingArguments` for SFT
(`schema/training_args.schema.json`) and TRL's `DPOConfig` for DPO (`schema/dpo_training_args.schema.json`).

The training arguments are the libraries' surface, not ours: restating ~130 fields by hand would drift with every
release. This importer reads the dataclasses (name, type, default, help) and writes JSON Schemas that
`ftschema import-training-args --check` compares against in CI.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import types
import typing
from pathlib import Path
from typing import Any

from ftconfig.tools._files import write_or_check

__all__ = [
    "BATCH_FIELDS",
    "DESCRIPTION_NOTES",
    "LEGACY_FIELDS",
    "OWNED_ELSEWHERE",
    "SCHEMA_ID",
    "SECRET_FIELDS",
    "build_training_args_schema",
    "import_training_args",
    "render_training_args_schema",
]

SCHEMA_ID = "https://ftconfig.dev/schema/training_args.schema.json"
DPO_SCHEMA_ID = "https://ftconfig.dev/schema/dpo_training_args.schema.json"
SCHEMA_FILE = "training_args.schema.json"
DPO_SCHEMA_FILE = "dpo_training_args.schema.json"

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
    "pass `ftrun --overwrite` to replace it, set run_conf.resume_from_checkpoint, or choose a new output_dir",
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
    "group_by_length": "removed in transformers 5: write train_sampling_strategy: group_by_length instead "
    "(group_by_length: false is the default; delete it)",
    "adafactor": "removed in transformers 5: write optim: adafactor instead (adafactor: false: delete it)",
    "torchdynamo": "removed in transformers 5: write torch_compile_backend: <backend> instead",
    "fp16_opt_level": "removed in transformers 5 (apex AMP is gone; fp16/bf16 use torch AMP): delete the key",
    "fsdp_min_num_params": "removed in transformers 5: write fsdp_config: {min_num_params: ...} instead",
    "fsdp_transformer_layer_cls_to_wrap": "removed in transformers 5: write fsdp_config: "
    "{transformer_layer_cls_to_wrap: ...} instead",
    "include_inputs_for_metrics": "removed in transformers 5: write include_for_metrics: [inputs] instead",
    "push_to_hub_model_id": "removed in transformers 5: write hub_model_id: <organization>/<name> instead",
    "push_to_hub_organization": "removed in transformers 5: write hub_model_id: <organization>/<name> instead",
    "tpu_metrics_debug": "removed in transformers 5: write debug: tpu_metrics_debug instead",
    "use_legacy_prediction_loop": "removed in transformers 5 (one evaluation loop remains): delete the key",
}

# Fields that hold secrets, marked in the schema (`x-ftconfig-secret`) so that nothing ftconfig writes or logs
# carries them ("value": the whole value is a secret).
SECRET_FIELDS = {"hub_token": "value"}

# DPOConfig fields that ftconfig sets from another section, or that have no meaning when ftconfig prepares the data
# and builds the models itself.
DPO_OWNED_ELSEWHERE = {
    "model_init_kwargs": "set run_conf.model_args instead (ftconfig loads the model and its reference itself)",
    "trust_remote_code": "set run_conf.model_args.trust_remote_code instead",
    "dataset_num_proc": "ftconfig prepares the data itself: use ftrun --num-preprocess-workers instead",
    "pad_token": "deprecated in TRL: the pad token comes from data_conf.missing_pad_token_strategy",
}

# Keys that DPO configs written for TRL before 1.0 use, with what to write now. Only those the installed TRL
# really lacks end up in the schema.
DPO_LEGACY_FIELDS = {
    "max_prompt_length": "removed in TRL 1: write max_length instead (it bounds prompt + answer; with "
    "truncation_mode keep_start the prompt is kept and the answer cut)",
    "max_completion_length": "removed in TRL 1: write max_length instead (it bounds prompt + answer together)",
    "max_target_length": "removed in TRL 1: write max_length instead (it bounds prompt + answer together)",
    "reference_free": "removed in TRL 1: the reference is always used; for a reference-free objective write "
    "loss_type: [apo_zero] or a SimPO-style loss_type instead, else delete the key",
    "rpo_alpha": "removed in TRL 1: write loss_type: [sigmoid, sft] and loss_weights: [1.0, ALPHA] instead",
    "generate_during_eval": "removed in TRL 1: delete the key",
    "is_encoder_decoder": "removed in TRL 1: only causal language models are trained; delete the key",
    "label_pad_token_id": "removed in TRL 1: answers are masked by the collator; delete the key",
    "padding_value": "removed in TRL 1: padding uses the tokenizer's pad token "
    "(data_conf.missing_pad_token_strategy); delete the key",
    "ref_model_init_kwargs": "removed in TRL 1: ftconfig builds the reference from the policy (a frozen copy, "
    "or the base with the adapter disabled); delete the key",
    "model_adapter_name": "removed in TRL 1: delete the key",
    "ref_adapter_name": "removed in TRL 1: the reference of an adapter run is its base with the adapter "
    "disabled; delete the key",
    "force_use_ref_model": "removed in TRL 1: delete the key",
    "use_logits_to_keep": "removed in TRL 1: delete the key",
    "use_liger_loss": "removed in TRL 1: write use_liger_kernel instead",
    "base_model_attribute_name": "removed in TRL 1: delete the key",
    "tools": "removed in TRL 1: delete the key",
}

# The seed system's defaults where it chose one (TRL's own max_length is 1024).
DPO_DEFAULTS = {"max_length": 2048}

_DPO_ONLY_HINT = (
    "It is a DPO setting (TRL's DPOConfig), but this config's method is sft: set method: dpo to train with DPO, "
    "or delete the key"
)

# DPO keys that SFT configs reach for, with what SFT uses.
_SFT_HINTS = {
    "max_length": "max_length is DPO's sequence limit, but this config's method is sft: write "
    "sft_args.max_seq_length instead, or set method: dpo",
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
    if field.name in SECRET_FIELDS:
        prop["x-ftconfig-secret"] = SECRET_FIELDS[field.name]
    return prop


def _fields(cls: type) -> list[dataclasses.Field[Any]]:
    return [field for field in dataclasses.fields(cls) if field.init and not field.name.startswith("_")]


def _loss_type_property(prop: dict[str, Any]) -> dict[str, Any]:
    """`loss_type` is a list of names; TRL also takes one name. The names are those its help text lists."""
    text = prop["description"]
    listed = text.split("Possible values are:", 1)[-1].split(".", 1)[0]
    names = re.findall(r"`'([a-z_]+)'`", listed)
    item: dict[str, Any] = {"type": "string", "enum": names} if names else {"type": "string"}
    return {
        "anyOf": [item, {"type": "array", "items": item, "minItems": 1}],
        "default": prop["default"],
        "description": text,
    }


def _schema(
    *, schema_id: str, title: str, description: str, properties: dict[str, Any], forbidden: dict[str, str]
) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_id,
        "title": title,
        "description": description,
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "x-ftconfig-forbidden": forbidden,
    }


def _dpo_only_fields() -> list[str]:
    from transformers import TrainingArguments
    from trl import DPOConfig  # type: ignore[attr-defined]  # trl's __init__ exports lazily

    base = {field.name for field in _fields(TrainingArguments)}
    return [field.name for field in _fields(DPOConfig) if field.name not in base]


def build_training_args_schema() -> dict[str, Any]:
    """Return the SFT training_args schema for the installed transformers (imports transformers: slow)."""
    import transformers
    from transformers import TrainingArguments

    properties: dict[str, Any] = {}
    for field in _fields(TrainingArguments):
        if field.name in BATCH_FIELDS | OWNED_ELSEWHERE:
            continue
        properties[field.name] = _property(field)
    apply_library_bounds(properties)
    forbidden = BATCH_FIELDS | OWNED_ELSEWHERE
    forbidden.update({key: why for key, why in LEGACY_FIELDS.items() if key not in properties})
    dpo_only = [*_dpo_only_fields(), *DPO_LEGACY_FIELDS]
    for key in dpo_only:
        if key not in properties:
            forbidden[key] = DPO_OWNED_ELSEWHERE.get(key) or _SFT_HINTS.get(key, _DPO_ONLY_HINT)
    return _schema(
        schema_id=SCHEMA_ID,
        title="SilogenTrainingArguments",
        description=(
            "HuggingFace TrainingArguments as config, with ftconfig conventions. Generated from transformers "
            f"{transformers.__version__} by `ftschema import-training-args`; do not edit by hand. The batch-size "
            "fields are not allowed here: batchsize_conf sets them."
        ),
        properties=properties,
        forbidden=forbidden,
    )


def build_dpo_training_args_schema() -> dict[str, Any]:
    """Return the DPO training_args schema: TRL's DPOConfig, i.e. TrainingArguments plus the DPO fields."""
    import transformers
    import trl
    from trl import DPOConfig  # type: ignore[attr-defined]  # trl's __init__ exports lazily

    skipped = BATCH_FIELDS | OWNED_ELSEWHERE | DPO_OWNED_ELSEWHERE
    properties: dict[str, Any] = {}
    for field in _fields(DPOConfig):
        if field.name in skipped:
            continue
        prop = _property(field)
        if field.name in DPO_DEFAULTS:
            prop["default"] = DPO_DEFAULTS[field.name]
            prop["description"] += (
                f" ftconfig's default is {DPO_DEFAULTS[field.name]} (TRL's is {field.default})."
            )
            prop.pop("nullable", None)
        if field.name == "loss_type":
            prop = _loss_type_property(prop)
        properties[field.name] = prop
    apply_library_bounds(properties)
    forbidden = dict(skipped)
    legacy = LEGACY_FIELDS | DPO_LEGACY_FIELDS
    forbidden.update({key: why for key, why in legacy.items() if key not in properties})
    return _schema(
        schema_id=DPO_SCHEMA_ID,
        title="SilogenDPOConfig",
        description=(
            "TRL's DPOConfig as config (the transformers TrainingArguments plus the DPO fields), with ftconfig "
            f"conventions. Generated from TRL {trl.__version__} and transformers {transformers.__version__} by "
            "`ftschema import-training-args`; do not edit by hand. The batch-size fields are not allowed here: "
            "batchsize_conf sets them."
        ),
        properties=properties,
        forbidden=forbidden,
    )


def _render(schema: dict[str, Any]) -> str:
    """A schema file's exact text (stable key order, trailing newline)."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def render_training_args_schema() -> str:
    return _render(build_training_args_schema())


def render_dpo_training_args_schema() -> str:
    return _render(build_dpo_training_args_schema())


def import_training_args(schema_dir: Path, *, check: bool) -> bool:
    """Write (or, with check, compare) both training_args schemas; return True when both files are up to date."""
    fresh = True
    for name, render in (
        (SCHEMA_FILE, render_training_args_schema),
        (DPO_SCHEMA_FILE, render_dpo_training_args_schema),
    ):
        fresh = write_or_check(schema_dir / name, render(), check=check) and fresh
    return fresh
