"""The base model: from_pretrained arguments, loading with user errors mapped, embedding growth, new base."""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import msgspec
import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from ftconfig.generated.config import (
    BnBQuantizationConfig,
    ModelArguments,
    NoQuantizationConfig,
    RunConfig,
)
from ftconfig.runtime._errors import ConfigError, ErrorItem
from ftconfig.runtime._quantization import build_quantization_config
from ftconfig.runtime._schema_errors import suggest

__all__ = [
    "check_model_reference",
    "embedding_rows",
    "grow_embeddings",
    "load_model",
    "looks_like_hub_id",
    "model_load_kwargs",
    "save_new_basemodel",
]

logger = logging.getLogger(__name__)

MODEL = "$.run_conf.model"
MODEL_ARGS = "$.run_conf.model_args"

# ModelArguments fields that transformers 5.24 no longer uses (measured on the tiny model): the first two are
# popped and ignored by from_pretrained, `resume_download` reaches the model's __init__ and raises TypeError.
_DROPPED = {
    "low_cpu_mem_usage": "transformers 5 always loads without a first random initialisation",
    "offload_state_dict": "transformers 5 ignores it",
    "resume_download": "downloads always resume in transformers 5 (passing it crashes the model constructor)",
}
# Fields with their own rule in model_load_kwargs rather than "pass when changed".
_OWN_RULE = {"torch_dtype", "use_cache", "device_map", "trust_remote_code"}
# device_map values that spread one model over every visible device.
_SPREADING_DEVICE_MAPS = {"auto", "balanced", "balanced_low_0", "sequential"}
# A Hub repository id: `name` or `namespace/name` (huggingface_hub's rule, without its length limit).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
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


def _is_quantized(quant_conf: BnBQuantizationConfig | NoQuantizationConfig) -> bool:
    return isinstance(quant_conf, BnBQuantizationConfig)


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

    `dtype` is always passed (the schema default "auto" really means the checkpoint's dtype), `use_cache` is
    the resolved value, and every other field only when it differs from its schema default, so transformers
    keeps its own defaults and nothing unknown ends up on `model.config`. Loads no weights (preflight may call
    it).
    """
    args = run_conf.model_args
    defaults = _field_defaults()
    quantized = _is_quantized(quant_conf)
    kwargs: dict[str, Any] = {
        "dtype": args.torch_dtype if args.torch_dtype == "auto" else getattr(torch, args.torch_dtype),
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


def _local_problem(reference: str, subfolder: str | None) -> ErrorItem | None:
    """What is wrong with a model reference that names a local path; None when it is fine or a hub id."""
    path = Path(reference).expanduser()
    if path.is_dir():
        folder = path / subfolder if subfolder else path
        if (folder / "config.json").is_file():
            return None
        return ErrorItem(
            MODEL,
            f"{str(folder)!r} is a folder but not a model folder (it has no config.json)",
            "Point run_conf.model at the folder that save_pretrained wrote.",
        )
    if path.exists():
        return ErrorItem(
            MODEL, f"{reference!r} is a file, not a model folder", "Point it at the folder that holds it."
        )
    if looks_like_hub_id(reference):
        return None  # may be a Hub id; only the Hub (or its cache) can tell
    return ErrorItem(MODEL, f"no model folder at {reference!r}", _nearby(path))


def looks_like_hub_id(reference: str) -> bool:
    """Whether a reference that is no local path could still name a Hub repository (`name`, `org/name`)."""
    return bool(_HUB_ID.match(reference)) and not reference.startswith((".", "~"))


def _nearby(path: Path) -> str:
    """A hint naming similar entries of the parent folder, which catches typos in paths."""
    parent = path.parent
    if parent.is_dir():
        hint = suggest(path.name, (child.name for child in parent.iterdir() if child.is_dir()))
        if hint:
            return str(hint)
    return "Check the path (relative paths start from the directory ftrun runs in)."


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _unavailable_hub_id(reference: str, args: ModelArguments, exc: BaseException) -> ConfigError:
    where = "in the local Hugging Face cache"
    if args.local_files_only or _offline():
        hint = "Offline mode is on (HF_HUB_OFFLINE or local_files_only): only folders and cached models load."
    else:
        hint = f"Check the id, the revision and your access token ({exc})."
    if "/" in reference and Path(reference).parent.is_dir():
        hint = f"{hint} {_nearby(Path(reference))}"
    return ConfigError(
        ErrorItem(
            MODEL,
            f"{reference!r} is neither a local model folder nor a model found {where} or on the Hub",
            hint,
        )
    )


@contextlib.contextmanager
def _model_load_errors(run_conf: RunConfig) -> Iterator[None]:
    """The one seam where load failures caused by the config become ConfigErrors; anything else propagates."""
    reference, args = run_conf.model, run_conf.model_args
    try:
        yield
    except OSError as exc:
        if exc.errno not in _USER_ERRNOS:
            raise
        problem = _local_problem(reference, args.subfolder)
        if problem is not None:
            raise ConfigError(problem) from exc
        if Path(reference).expanduser().is_dir():
            raise ConfigError(
                ErrorItem(
                    MODEL, f"cannot load the model in {reference!r}: {exc}", "Is a weights file missing?"
                )
            ) from exc
        raise _unavailable_hub_id(reference, args, exc) from exc
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
    problem = _local_problem(run_conf.model, args.subfolder)
    if problem is not None:
        raise ConfigError(problem)
    if Path(run_conf.model).expanduser().is_dir():
        return
    _model_config(run_conf)


def _model_config(run_conf: RunConfig) -> Any:
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
    rows = getattr(_model_config(run_conf).get_text_config(), "vocab_size", None)
    return rows if isinstance(rows, int) else None


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
    problem = _local_problem(run_conf.model, run_conf.model_args.subfolder)
    if problem is not None:
        raise ConfigError(problem)
    with _model_load_errors(run_conf):
        model: PreTrainedModel = AutoModelForCausalLM.from_pretrained(run_conf.model, **kwargs)
    return model


def _module_name(model: torch.nn.Module, module: torch.nn.Module) -> str:
    """The short name PEFT matches in modules_to_save (`embed_tokens`, `lm_head`, ...)."""
    for name, candidate in model.named_modules():
        if candidate is module:
            return str(name.rsplit(".", 1)[-1])
    raise LookupError(
        "embedding module not found in the model"
    )  # not a user mistake: a model we cannot handle


def grow_embeddings(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, added_tokens: int
) -> list[str]:
    """Give the model rows for tokens the chat template added; return the modules an adapter must then save.

    Nothing happens when no tokens were added or the model already has spare rows for them. New rows start
    at the old rows' mean (`mean_resizing`), so the new tokens begin as an average token rather than noise.
    With an adapter, both the input and the output embeddings must train and be saved (tied ones are kept tied
    by `apply_peft`), else the new tokens could be read but never predicted.
    """
    size = len(tokenizer)
    rows = int(cast(torch.Tensor, model.get_input_embeddings().weight).shape[0])
    if added_tokens <= 0 or size <= rows:
        if added_tokens > 0:
            logger.info(
                "The %d new tokens fit in the model's %d embedding rows; nothing to grow.", added_tokens, rows
            )
        return []
    if getattr(model, "is_quantized", False):
        raise ConfigError(
            ErrorItem(
                "$.quant_conf",
                f"the chat template adds {added_tokens} tokens, so the model's {rows} embedding rows would "
                f"have to grow to {size}, and a grown base model must be saved next to the adapter, which a "
                "quantized model can only do with its quantized weights",
                "Use a chat template whose tokens the tokenizer already has (e.g. keep-original), "
                "or train without quantization (quant_conf.quantization_type: no-quantization).",
            )
        )
    model.resize_token_embeddings(size, mean_resizing=True)
    logger.info("Grew the embeddings from %d to %d rows for %d new tokens.", rows, size, added_tokens)
    modules = [_module_name(model, model.get_input_embeddings())]
    output = model.get_output_embeddings()  # type: ignore[no-untyped-call]
    if output is not None:
        modules.append(_module_name(model, output))
    return modules


def save_new_basemodel(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: str | Path) -> Path:
    """Save the grown, untrained base model and its tokenizer: the base that an adapter with new tokens needs.

    Written into a temporary sibling folder and renamed into place, so a crash never leaves a half-written
    base that merging or serving would then pick up. An existing folder at `path` is replaced.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replaced = target.exists()
    if replaced:
        target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        if replaced:
            old.rename(target)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if replaced:
        shutil.rmtree(old, ignore_errors=True)
    logger.warning(
        "Saved a new base model with the grown vocabulary to %s. Use it as the base for the adapter.", target
    )
    return target
