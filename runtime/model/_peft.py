"""peft_conf → PEFT: check peft_kwargs before any model loads, build the peft config, wrap the model.

peft is imported only where a config is built or a model wrapped: importing it imports bitsandbytes and
`torch._inductor` (seconds), which the dry run never needs; its kwargs check reads peft's source instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ftconfig.generated.config import NoPeftConfig, PeftConfig, PretrainedPeftConfig, RunConfig
from ftconfig.runtime.config._errors import ConfigError, ErrorItem
from ftconfig.runtime.config._schema_errors import describe_value, suggest
from ftconfig.runtime.model._loading import embedding_rows, model_skeleton
from ftconfig.runtime.model._new_tokens import NewTokenRows, add_new_rows, finish_adapter_with_new_rows
from ftconfig.runtime.model._peft_fields import peft_config_fields
from ftconfig.runtime.model._references import looks_like_hub_id
from ftconfig.runtime.model._weights_files import first_damaged_file

if TYPE_CHECKING:
    import peft
    from peft import PeftModel
    from transformers import PreTrainedModel

__all__ = [
    "apply_peft",
    "build_peft_config",
    "check_adapter_fits_model",
    "check_adapter_reference",
    "check_adapter_vocabulary",
    "check_peft_kwargs",
    "peft_config_class",
]

logger = logging.getLogger(__name__)

KWARGS = "$.peft_conf.peft_kwargs"
ADAPTER = "$.peft_conf.name_or_path"
# Set by peft_conf itself (peft_type, task_type) or by peft (bookkeeping), never through peft_kwargs.
_NOT_KWARGS = {
    "peft_type": "it is peft_conf.peft_type",
    "task_type": "it is peft_conf.task_type",
    "auto_mapping": "peft sets it",
    "peft_version": "peft sets it",
    "base_model_name_or_path": "peft sets it from the model",
    "inference_mode": "ftconfig trains the adapter",
}


def peft_config_class(peft_type: str) -> type[peft.PeftConfig]:
    """peft's config dataclass for a peft_type name (`LORA` → LoraConfig)."""
    import peft
    from peft import PeftType

    cls: type[peft.PeftConfig] = peft.PEFT_TYPE_TO_CONFIG_MAPPING[PeftType(peft_type)]
    return cls


def _peft_type(peft_conf: Any) -> str:
    """The peft_type of a config variant: msgspec keeps a tag on the struct class, not on the instance."""
    tag: str = type(peft_conf).__struct_config__.tag
    return tag


def _field_types(cls: type[peft.PeftConfig]) -> dict[str, Any]:
    """Constructor fields of a peft config class and their annotations (None where unresolvable)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # a forward reference peft cannot resolve: check names only
        hints = {}
    return {field.name: hints.get(field.name) for field in dataclasses.fields(cls) if field.init}


def _mentions_literal(annotation: Any) -> bool:
    """Literals in peft annotations can be incomplete ("pissa_niter_[number of iters]"), so skip them."""
    if typing.get_origin(annotation) is typing.Literal:
        return True
    return any(_mentions_literal(arg) for arg in typing.get_args(annotation))


def _type_problem(value: Any, annotation: Any) -> str | None:
    """Why value does not fit a field's annotation (no coercion); None if it fits or cannot be told."""
    if annotation is None or _mentions_literal(annotation):
        return None
    try:
        msgspec.convert(value, annotation, strict=True)
    except msgspec.ValidationError as exc:
        return str(exc)
    except (
        TypeError
    ):  # an annotation msgspec cannot express (e.g. a dataclass-or-dict union): leave it to peft
        return None
    return None


def _declared_fields(peft_type: str) -> tuple[str, dict[str, Any]]:
    """Class name and constructor fields for peft_type: from peft's source, else (unusual layout) imported."""
    declared = peft_config_fields(peft_type)
    if declared is not None:
        return declared.class_name, declared.fields
    cls = peft_config_class(peft_type)
    return cls.__name__, _field_types(cls)


def _key_items(peft_conf: Any) -> list[ErrorItem]:
    class_name, fields = _declared_fields(_peft_type(peft_conf))
    items = []
    for key, value in peft_conf.peft_kwargs.items():
        where = f"{KWARGS}.{key}"
        if key in _NOT_KWARGS:
            items.append(ErrorItem(where, f"'{key}' cannot be set in peft_kwargs: {_NOT_KWARGS[key]}"))
        elif key not in fields:
            hint = suggest(key, (name for name in fields if name not in _NOT_KWARGS))
            items.append(
                ErrorItem(where, f"{class_name} ({_peft_type(peft_conf)}) has no option '{key}'", hint)
            )
        else:
            problem = _type_problem(value, fields[key])
            if problem is not None:
                items.append(
                    ErrorItem(where, f"{describe_value(value)} does not fit {class_name}.{key}: {problem}")
                )
    return items


def _construct(peft_conf: Any, extra: dict[str, Any]) -> peft.PeftConfig:
    """Build the config class, turning its own validation errors into a ConfigError on peft_kwargs."""
    items = _key_items(peft_conf)
    if items:
        raise ConfigError(items)
    cls = peft_config_class(_peft_type(peft_conf))
    try:
        return cls(task_type=peft_conf.task_type, **peft_conf.peft_kwargs, **extra)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            ErrorItem(KWARGS, f"{cls.__name__} rejects these options: {str(exc).strip()}")
        ) from exc


def _peft_importable() -> bool:
    """False in a dry run, which keeps peft out of the process (see ftconfig.runtime.training._plan)."""
    try:
        return importlib.util.find_spec("peft") is not None
    except ValueError:  # sys.modules["peft"] set to None without a spec
        return False


def check_peft_kwargs(peft_conf: PeftConfig) -> None:
    """Check peft_kwargs against peft's config class for peft_type before any model loads (also in --dry-run).

    Unknown keys get "Did you mean ...?" and values of the wrong JSON type are named, from the fields peft's
    source declares (no import). Where peft may be imported (a real run), the class's own cross-field rules
    then run by constructing it; the dry run, which keeps peft out, leaves them to the real run. Range rules
    that peft only checks when it wraps a model (e.g. `r > 0`) are checked by check_adapter_fits_model, before
    any weights load, in the real run (and in a dry run that may import peft).
    """
    if isinstance(peft_conf, (NoPeftConfig, PretrainedPeftConfig)):
        return
    items = _key_items(peft_conf)
    if items:
        raise ConfigError(items)
    if _peft_importable():
        _construct(peft_conf, {})


def check_adapter_reference(peft_conf: PeftConfig) -> None:
    """PRETRAINED_PEFT: a local folder must hold an adapter_config.json, a Hub id must resolve to one (its
    adapter_config.json only, from the Hub or its cache); checked before any weights load."""
    if not isinstance(peft_conf, PretrainedPeftConfig):
        return
    reference = peft_conf.name_or_path
    path = Path(reference).expanduser()
    hint = "Point it at a folder written by PEFT's save_pretrained (e.g. an adapter run's checkpoint)."
    if path.is_dir():
        if not (path / "adapter_config.json").is_file():
            raise ConfigError(
                ErrorItem(
                    ADAPTER, f"{str(path)!r} is not an adapter folder (it has no adapter_config.json)", hint
                )
            )
        if (damage := first_damaged_file(path)) is not None:
            raise ConfigError(
                ErrorItem(ADAPTER, f"the adapter's {damage[0].name} is {damage[1]} ({damage[0]})")
            )
        return
    if path.exists():
        raise ConfigError(ErrorItem(ADAPTER, f"{reference!r} is a file, not an adapter folder", hint))
    if not looks_like_hub_id(reference):
        raise ConfigError(
            ErrorItem(ADAPTER, f"no adapter folder (with adapter_config.json) at {reference!r}", hint)
        )
    if not _peft_importable():  # the dry run: a Hub id is resolved when the real run loads the adapter
        return
    import peft

    with _adapter_load_errors(reference):
        peft.PeftConfig.from_pretrained(reference)


def check_adapter_vocabulary(
    peft_conf: PeftConfig, run_conf: RunConfig, *, tokenizer_size: int, added_tokens: int
) -> None:
    """PRETRAINED_PEFT and a chat template whose new tokens grow the embeddings cannot go together (preflight:
    found before the weights load and before the grown base model would be saved into output_dir)."""
    if not isinstance(peft_conf, PretrainedPeftConfig) or added_tokens <= 0:
        return

    rows = embedding_rows(run_conf)
    if rows is None or tokenizer_size <= rows:
        return
    raise ConfigError(
        ErrorItem(
            "$.peft_conf",
            f"a pretrained adapter cannot be combined with the {added_tokens} new tokens the chat template "
            f"adds: the model's embeddings would grow from {rows} to {tokenizer_size} rows and would have to "
            "train as well",
            "Use the chat template the adapter was trained with, or keep-original.",
        )
    )


def check_adapter_fits_model(peft_conf: PeftConfig, run_conf: RunConfig) -> None:
    """Wrap a weightless copy of the model (meta tensors) in the new adapter, before any weights load.

    peft checks ranges (`r > 0`) and whether target_modules match any layer only when it wraps a model; doing
    it on the skeleton finds those mistakes before any weights load and before anything is written to output_dir
    (in the real run; the dry run keeps peft out and leaves them to it).
    """
    if isinstance(peft_conf, (NoPeftConfig, PretrainedPeftConfig)) or not _peft_importable():
        return  # the dry run keeps peft out: the real run checks this before any weights load
    config = build_peft_config(peft_conf)
    assert config is not None
    import peft
    from accelerate import init_empty_weights

    with init_empty_weights():
        skeleton = model_skeleton(run_conf)
        try:
            peft.get_peft_model(skeleton, config)
        except ValueError as exc:
            raise ConfigError(
                ErrorItem(KWARGS, f"peft cannot apply these options to the model: {str(exc).strip()}")
            ) from None


def build_peft_config(
    peft_conf: PeftConfig, *, new_rows: NewTokenRows | None = None
) -> peft.PeftConfig | None:
    """The peft config for a new adapter; None for NO_PEFT and PRETRAINED_PEFT (which brings its own).

    `new_rows` (a chat template's new tokens) are added to what trains: only those rows where the adapter type
    supports trainable tokens, else whole embedding copies (runtime/model/_new_tokens.py).
    """
    if isinstance(peft_conf, (NoPeftConfig, PretrainedPeftConfig)):
        return None
    config = _construct(peft_conf, {})
    if new_rows is not None:
        add_new_rows(config, new_rows, peft_type=_peft_type(peft_conf), peft_kwargs=peft_conf.peft_kwargs)
    return config


@contextlib.contextmanager
def _adapter_load_errors(name_or_path: str) -> Iterator[None]:
    """Loading a pretrained adapter: a missing or mismatched adapter is the config's fault."""
    try:
        yield
    except (OSError, ValueError) as exc:
        raise ConfigError(ErrorItem(ADAPTER, f"cannot load the adapter {name_or_path!r}: {exc}")) from exc
    except RuntimeError as exc:
        if "size mismatch" not in str(exc):
            raise
        raise ConfigError(
            ErrorItem(ADAPTER, f"the adapter {name_or_path!r} was trained on a different base model: {exc}")
        ) from exc


def apply_peft(
    model: PreTrainedModel,
    peft_conf: PeftConfig,
    *,
    quantized: bool,
    gradient_checkpointing: bool,
    gradient_checkpointing_kwargs: dict[str, Any] | None,
    new_rows: NewTokenRows | None = None,
) -> PreTrainedModel | PeftModel:
    """Wrap the model as peft_conf says; NO_PEFT returns it unchanged (every parameter trains).

    A quantized model first goes through peft's k-bit preparation (norms to fp32, input grads, and gradient
    checkpointing with the user's kwargs, which may be unset: None is passed through as no kwargs, not
    unpacked). Unquantized models need
    nothing here: transformers' gradient_checkpointing_enable, which the Trainer calls, makes the embeddings'
    outputs require grad so that reentrant checkpointing still reaches the adapters. With `new_rows`, the
    adapter also trains the new tokens' rows, and its saves hold those rows, never full embedding matrices.
    """
    if isinstance(peft_conf, NoPeftConfig):
        if quantized:
            raise ConfigError(
                ErrorItem(
                    "$.peft_conf",
                    "a quantized model cannot train without an adapter (its quantized weights do not train)",
                    "Use an adapter, e.g. peft_type: LORA, or quant_conf.quantization_type: no-quantization.",
                )
            )
        return model
    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training

    if quantized:
        model = prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]  # unannotated in peft
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs=gradient_checkpointing_kwargs,
        )
    wrapped: PeftModel
    if isinstance(peft_conf, PretrainedPeftConfig):
        if new_rows is not None and new_rows.grown:
            raise ConfigError(
                ErrorItem(
                    "$.peft_conf",
                    "a pretrained adapter cannot be combined with new tokens that grow the model's "
                    f"embeddings ({', '.join(new_rows.modules)} would have to train as well)",
                    "Use the chat template the adapter was trained with, or keep-original.",
                )
            )
        check_adapter_reference(peft_conf)
        with _adapter_load_errors(peft_conf.name_or_path):
            wrapped = PeftModel.from_pretrained(model, peft_conf.name_or_path, is_trainable=True)
    else:
        config = build_peft_config(peft_conf, new_rows=new_rows)
        assert config is not None  # only NO_PEFT and PRETRAINED_PEFT build none, both handled above
        try:
            wrapped = get_peft_model(model, config)
        except ValueError as exc:  # e.g. r <= 0, target_modules not in this model
            raise ConfigError(
                ErrorItem(KWARGS, f"peft cannot apply these options to the model: {str(exc).strip()}")
            ) from exc
    if new_rows is not None and not isinstance(peft_conf, PretrainedPeftConfig):
        finish_adapter_with_new_rows(wrapped)
    trainable, total = wrapped.get_nb_trainable_parameters()
    logger.info(
        "PEFT model trainable params: %d || all params: %d || trainable%%: %.4f",
        trainable,
        total,
        100 * trainable / total,
    )
    return wrapped
