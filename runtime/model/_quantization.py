"""quant_conf → a transformers BitsAndBytesConfig (or None), plus the FSDP storage-dtype rule done right."""

from __future__ import annotations

import logging

import msgspec
import torch
from transformers import BitsAndBytesConfig

from ftconfig.generated.config import (
    BnBQuantizationConfig,
    NoQuantizationConfig,
    SilogenDPOConfig,
    SilogenTrainingArguments,
)
from ftconfig.runtime.config._errors import ConfigError, ErrorItem

__all__ = ["build_quantization_config", "quant_storage_for_fsdp"]

logger = logging.getLogger(__name__)

# Fields whose values are dtype names; BitsAndBytesConfig wants torch dtypes there.
_DTYPE_FIELDS = ("bnb_4bit_compute_dtype", "bnb_4bit_quant_storage")


def build_quantization_config(
    quant_conf: BnBQuantizationConfig | NoQuantizationConfig,
) -> BitsAndBytesConfig | None:
    """The `quantization_config` for from_pretrained: BnB fields as written, null ones left to transformers.

    Nothing is filled in here (in particular not `bnb_4bit_quant_storage` for every BnB config): the storage
    dtype only matters under FSDP, and `quant_storage_for_fsdp` decides that from the training arguments.
    """
    if isinstance(quant_conf, NoQuantizationConfig):
        return None
    kwargs = {name: value for name, value in msgspec.structs.asdict(quant_conf).items() if value is not None}
    for name in _DTYPE_FIELDS:
        if name in kwargs:
            kwargs[name] = getattr(torch, kwargs[name])
    try:
        return BitsAndBytesConfig(**kwargs)  # type: ignore[no-untyped-call]  # unannotated in transformers
    except ValueError as exc:  # the schema already rules out both/neither bit width; this is the safety net
        raise ConfigError(ErrorItem("$.quant_conf", str(exc))) from exc


def quant_storage_for_fsdp(
    quant_conf: BnBQuantizationConfig | NoQuantizationConfig,
    training_args: SilogenTrainingArguments | SilogenDPOConfig,
) -> BnBQuantizationConfig | NoQuantizationConfig:
    """A copy of quant_conf whose 4-bit storage dtype matches the training dtype, when FSDP is really on.

    FSDP flattens parameters of one dtype, so packed 4-bit weights must be stored in the dtype the rest of the
    model trains in. Only then, and only when the user left `bnb_4bit_quant_storage` null, is it filled in.
    """
    fsdp_on = bool(training_args.fsdp and training_args.fsdp.strip())
    if not (
        fsdp_on
        and isinstance(quant_conf, BnBQuantizationConfig)
        and quant_conf.load_in_4bit
        and quant_conf.bnb_4bit_quant_storage is None
    ):
        return quant_conf
    storage = "bfloat16" if training_args.bf16 else "float16" if training_args.fp16 else "float32"
    logger.info(
        "FSDP with 4-bit quantization: storing the packed weights as %s (the training dtype).", storage
    )
    return msgspec.structs.replace(quant_conf, bnb_4bit_quant_storage=storage)
