"""Load a trained model for inference: the inference tokenizer, the base model, the adapter on top, eval mode."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import torch
from transformers import AutoTokenizer, GenerationConfig, PreTrainedTokenizerBase

from ftconfig.generated.config import BnBQuantizationConfig, NoQuantizationConfig
from ftconfig.runtime.config._errors import ConfigError, ErrorItem, UserError
from ftconfig.runtime.inference._run_dir import ADAPTER_CONFIG_NAME, ModelSource
from ftconfig.runtime.model._generation_config import inference_generation_config
from ftconfig.runtime.model._loading import load_model
from ftconfig.runtime.training._output import RESOLVED_CONFIG_NAME

__all__ = ["LoadedModel", "base_model_of", "load_inference_model", "load_inference_tokenizer"]

logger = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A model ready for generate() (adapter attached, eval mode) with the tokenizer it was saved with."""

    model: Any
    tokenizer: PreTrainedTokenizerBase
    source: ModelSource

    @property
    def device(self) -> torch.device:
        return cast(torch.device, next(self.model.parameters()).device)


@contextlib.contextmanager
def _load_errors(location: str, what: str) -> Iterator[None]:
    """Files that do not load (missing, broken, a base of another size) are the argument's fault."""
    try:
        yield
    except UserError:
        raise
    except (OSError, ValueError) as exc:
        raise UserError(ErrorItem(location, f"cannot load the {what}: {str(exc).strip()}")) from exc
    except RuntimeError as exc:
        if "size mismatch" not in str(exc):
            raise
        raise UserError(
            ErrorItem(location, f"the {what} does not fit its base model: {str(exc).strip().splitlines()[0]}")
        ) from exc


def load_inference_tokenizer(
    source: ModelSource, *, padding_side: str | None = "left"
) -> PreTrainedTokenizerBase:
    """The tokenizer a run saved for inference (BOS on, EOS = end of turn), left-padded for batches (None:
    as saved).

    A tokenizer without a pad token pads with EOS: padding is masked out, so which token it is does not matter.
    """
    kwargs = {"padding_side": padding_side} if padding_side is not None else {}
    with _load_errors(str(source.checkpoint), "tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(source.tokenizer_source, **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise UserError(
            ErrorItem(
                str(source.checkpoint),
                "the tokenizer has no chat template, so conversations cannot be turned into prompts",
                "Use a checkpoint written by ftrun, or a chat model",
            )
        )
    return cast(PreTrainedTokenizerBase, tokenizer)


def _resize_for_tokenizer(model: Any, tokenizer: PreTrainedTokenizerBase) -> None:
    """The original base under an adapter trained on a grown vocabulary gets the rows the adapter fills in."""
    rows = int(model.get_input_embeddings().weight.shape[0])
    if len(tokenizer) > rows:
        logger.info(
            "growing the base model's embeddings from %d to %d rows for the adapter", rows, len(tokenizer)
        )
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)


def _generation_config(
    source: ModelSource, model: Any, tokenizer: PreTrainedTokenizerBase
) -> GenerationConfig:
    """The checkpoint's generation config (older checkpoints: the base's), stopping at the tokenizer's EOS,
    which a tokenizer saved by ftrun sets to the end-of-turn token."""
    base = model.generation_config
    if (source.checkpoint / "generation_config.json").is_file():
        with _load_errors(str(source.checkpoint), "generation config"):
            base = GenerationConfig.from_pretrained(source.checkpoint)
    return inference_generation_config(base, tokenizer, str(tokenizer.eos_token))


def _base_not_loaded(source: ModelSource, error: ConfigError) -> UserError:
    """A base model named by a run that does not load here: say where the name came from and the way out."""
    if source.run_dir is None and source.adapter is None:
        return error.with_source(str(source.checkpoint))
    where = (
        f"{source.run_dir / RESOLVED_CONFIG_NAME} ($.config.run_conf.model)"
        if source.run_dir is not None
        else f"{source.checkpoint / ADAPTER_CONFIG_NAME} (base_model_name_or_path)"
    )
    reason = "; ".join(item.message for item in error.items)
    return UserError(
        ErrorItem(
            where,
            f"cannot load the base model: {reason}",
            "Relative paths are read from the current directory: run from where ftrun ran, "
            "or pass --base-model PATH",
        )
    )


def base_model_of(model: Any) -> Any:
    """The transformers model inside a PeftModel (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def load_inference_model(
    source: ModelSource,
    *,
    quant_conf: BnBQuantizationConfig | NoQuantizationConfig | None = None,
    padding_side: str | None = "left",
) -> LoadedModel:
    """Load tokenizer, base model and adapter as `source` describes, in eval mode, on the GPU when there is one."""
    tokenizer = load_inference_tokenizer(source, padding_side=padding_side)
    run_conf = source.base_run_conf
    quant = quant_conf if quant_conf is not None else NoQuantizationConfig()
    try:
        # The base model, then (with an adapter) the PeftModel around it.
        model: Any = load_model(run_conf, quant, use_cache=True)
    except ConfigError as exc:
        raise _base_not_loaded(source, exc) from None
    quantized = isinstance(quant, BnBQuantizationConfig)
    if run_conf.model_args.device_map is None and not quantized and torch.cuda.is_available():
        model = model.to("cuda")
    if source.adapter is not None:
        from peft import PeftModel

        _resize_for_tokenizer(model, tokenizer)
        with _load_errors(str(source.adapter), "adapter"):
            model = PeftModel.from_pretrained(model, str(source.adapter), is_trainable=False)
    base_model_of(model).generation_config = _generation_config(source, base_model_of(model), tokenizer)
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, source=source)
