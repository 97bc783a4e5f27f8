"""The base model: from_pretrained arguments, its config (no weights) and loading, with user errors mapped."""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from ftconfig.generated.config import (
    BnBQuantizationConfig,
    ModelArguments,
    NoQuantizationConfig,
    RunConfig,
)
from ftconfig.runtime.config._errors import ConfigError, ErrorItem
from ftconfig.runtime.config._structs import is_quantized
from ftconfig.runtime.model._quantization import build_quantization_config
from ftconfig.runtime.model._references import (
    MODEL,
    local_problem,
    unavailable_hub_id,
)
from ftconfig.runtime.model._weights_files import first_damaged_file

__all__ = [
    "check_model_reference",
    "embedding_rows",
    "embeddings_tied",
    "load_model",
    "model_config",
    "model_load_kwargs",
    "model_skeleton",
]

logger = logging.getLogger(__name__)

MODEL_ARGS = "$.run_conf.model_args"

# ModelArguments fields that transformers 5.24 no longer uses (measured on the tiny model): the first two are
# popped and ignored by from_pretrained, `resume_download` reaches the model's __init__ and raises TypeError.
_DROPPED = {
    "low_cpu_mem_usage": "transformers 5 always loads without a first random initialisation",
    "offload_state_dict": "transformers 5 ignores it",
    "resume_download": "downloads always resume in transformers 5 (passing it crashes the model constructor)",
}
# Fields with their own rule in model_load_kwargs rather than "pass when changed".
_OWN_RULE = {"dtype", "torch_dtype", "use_cache", "device_map", "trust_remote_code"}
# device_map values that spread one model over every visible device.
_SPREADING_DEVICE_MAPS = {"auto", "balanced", "balanced_low_0", "sequential"}
# OSErrors from loading that mean "the files are not there or not readable", i.e. the config points wrong.
# transformers raises plain OSError(message) (errno None) for missing folders, weights and offline hub ids.
_USER_ERRNOS = {None, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES}


def _field_defaults() -> dict[str, Any]:
    """ModelArguments' schema defaults, read from the generated struct so that nothing here restates them."""
    defaults: dict[str, Any] = {}
    for field in msgspec.structs.fields(ModelArguments):
        if field.default is not msgspec.NODEFAULT:
            defaults[field.name] = field.default
        elif field.default_factory is not msgspec.NODEFAULT:
            defaults[field.name] = field.default_factory()
    return defaults


@functools.cache
def _warn_once(message: str) -> None:
    logger.warning(message)


def _device_map(args: ModelArguments, *, quantized: bool, world_size: int, local_rank: int) -> Any:
    """The user's device_map, or one for a quantized model; None lets the Trainer place the model.

    A model spread over all devices ("auto", ...) cannot be combined with one process per device. A quantized
    model cannot be moved after loading, so on CUDA each process loads it straight onto its own device;
    without CUDA, transformers' own rule (the current accelerator, else CPU) is what we want.
    """
    device_map = args.device_map
    if device_map is not None:
        if world_size > 1 and isinstance(device_map, str) and device_map in _SPREADING_DEVICE_MAPS:
            raise ConfigError(
                ErrorItem(
                    f"{MODEL_ARGS}.device_map",
                    f"{device_map!r} spreads the model over every device, but this run has {world_size} "
                    "processes and each one owns a single device",
                    "Leave device_map null in multi-process runs.",
                )
            )
        return device_map
    if quantized and torch.cuda.is_available():
        return {"": local_rank}
    return None


def model_load_kwargs(
    run_conf: RunConfig,
    quant_conf: BnBQuantizationConfig | NoQuantizationConfig,
    *,
    use_cache: bool,
    world_size: int = 1,
    local_rank: int = 0,
) -> dict[str, Any]:
    """Keyword arguments for `AutoModelForCausalLM.from_pretrained(run_conf.model, **kwargs)`.

    `dtype` (from `dtype` or `torch_dtype`) is always passed (the schema default "auto" really means the
    checkpoint's dtype), `use_cache` is
    the resolved value, and every other field only when it differs from its schema default, so transformers
    keeps its own defaults and nothing unknown ends up on `model.config`. Loads no weights (preflight may call
    it).
    """
    args = run_conf.model_args
    defaults = _field_defaults()
    quantized = is_quantized(quant_conf)
    dtype = args.dtype if args.dtype is not None else args.torch_dtype  # the schema allows only one of them
    kwargs: dict[str, Any] = {
        "dtype": dtype if dtype == "auto" else getattr(torch, dtype),
        "use_cache": use_cache,
    }
    device_map = _device_map(args, quantized=quantized, world_size=world_size, local_rank=local_rank)
    if device_map is not None:
        kwargs["device_map"] = device_map
    if args.trust_remote_code:
        _warn_once(
            f"trust_remote_code is true: loading {run_conf.model!r} executes Python code from the model "
            "repository. Only use it with repositories you trust."
        )
        kwargs["trust_remote_code"] = True
    quantization_config = build_quantization_config(quant_conf)
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    for name, value in msgspec.structs.asdict(args).items():
        if name in _OWN_RULE or value == defaults[name]:
            continue
        if name in _DROPPED:
            _warn_once(f"{MODEL_ARGS}.{name} is set but not used: {_DROPPED[name]}.")
            continue
        kwargs[name] = value
    if isinstance(kwargs.get("max_memory"), dict):
        # Config keys are strings ("0: 20GiB" in YAML arrives as "0"); accelerate wants GPU indexes as ints.
        kwargs["max_memory"] = {
            int(key) if key.isdigit() else key: value for key, value in kwargs["max_memory"].items()
        }
    return kwargs


@contextlib.contextmanager
def _model_load_errors(run_conf: RunConfig) -> Iterator[None]:
    """The one seam where load failures caused by the config become ConfigErrors; anything else propagates."""
    reference, args = run_conf.model, run_conf.model_args
    try:
        yield
    except OSError as exc:
        if exc.errno not in _USER_ERRNOS:
            raise
        problem = local_problem(reference, args.subfolder)
        if problem is not None:
            raise ConfigError(problem) from exc
        if Path(reference).expanduser().is_dir():
            raise ConfigError(
                ErrorItem(
                    MODEL, f"cannot load the model in {reference!r}: {exc}", "Is a weights file missing?"
                )
            ) from exc
        raise unavailable_hub_id(reference, args, exc) from exc
    except ValueError as exc:
        message = str(exc)
        if "Unrecognized model" in message:
            raise ConfigError(
                ErrorItem(MODEL, f"{reference!r} has a config.json without a known model_type: {message}")
            ) from exc
        if "attn_implementation" in message and args.attn_implementation is not None:
            raise ConfigError(ErrorItem(f"{MODEL_ARGS}.attn_implementation", message)) from exc
        if "trust_remote_code" in message and not args.trust_remote_code:
            raise ConfigError(
                ErrorItem(
                    f"{MODEL_ARGS}.trust_remote_code",
                    f"{reference!r} needs code from its repository to load",
                    "Set trust_remote_code: true if you trust that repository.",
                )
            ) from exc
        raise


def check_model_reference(run_conf: RunConfig) -> None:
    """Fail early (before data and weights) when run_conf.model names no loadable model.

    A local path must be a folder with a config.json. Anything else that looks like a Hub id is resolved with
    AutoConfig, which downloads or reads from cache only the small config file and respects offline mode.
    """
    args = run_conf.model_args
    problem = local_problem(run_conf.model, args.subfolder)
    if problem is not None:
        raise ConfigError(problem)
    folder = Path(run_conf.model).expanduser()
    if folder.is_dir():
        damage = first_damaged_file(folder / args.subfolder if args.subfolder else folder)
        if damage is not None:
            raise ConfigError(
                ErrorItem(
                    MODEL,
                    f"the model's {damage[0].name} is {damage[1]} ({damage[0]})",
                    "Copy or download the model again.",
                )
            )
        return
    model_config(run_conf)


def model_config(run_conf: RunConfig) -> Any:
    """The model's config (config.json only, no weights), with load failures mapped to ConfigErrors."""
    args = run_conf.model_args
    hub_kwargs = {
        name: getattr(args, name)
        for name in (
            "cache_dir",
            "revision",
            "token",
            "subfolder",
            "local_files_only",
            "proxies",
            "force_download",
        )
        if getattr(args, name) is not None
    }
    with _model_load_errors(run_conf):
        return AutoConfig.from_pretrained(
            run_conf.model, trust_remote_code=args.trust_remote_code, **hub_kwargs
        )


def embedding_rows(run_conf: RunConfig) -> int | None:
    """How many embedding rows the model has, read from its config (no weights); None when it does not say."""
    rows = getattr(model_config(run_conf).get_text_config(), "vocab_size", None)
    return rows if isinstance(rows, int) else None


def embeddings_tied(run_conf: RunConfig) -> bool:
    """Whether the model's config ties its input and output embeddings (no weights read)."""
    return bool(getattr(model_config(run_conf), "tie_word_embeddings", False))


def model_skeleton(run_conf: RunConfig) -> PreTrainedModel:
    """The model built from its config alone; call inside accelerate's init_empty_weights (no memory, no
    weights read), e.g. to check which layers an adapter would wrap."""
    config = model_config(run_conf)
    with _model_load_errors(run_conf):
        model: PreTrainedModel = AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]  # unannotated in transformers
            config, trust_remote_code=run_conf.model_args.trust_remote_code
        )
    return model


def load_model(
    run_conf: RunConfig,
    quant_conf: BnBQuantizationConfig | NoQuantizationConfig,
    *,
    use_cache: bool,
    world_size: int = 1,
    local_rank: int = 0,
) -> PreTrainedModel:
    """Load the base model as the config describes; config mistakes surface as ConfigErrors."""
    kwargs = model_load_kwargs(
        run_conf, quant_conf, use_cache=use_cache, world_size=world_size, local_rank=local_rank
    )
    problem = local_problem(run_conf.model, run_conf.model_args.subfolder)
    if problem is not None:
        raise ConfigError(problem)
    with _model_load_errors(run_conf):
        model: PreTrainedModel = AutoModelForCausalLM.from_pretrained(run_conf.model, **kwargs)
    return model
