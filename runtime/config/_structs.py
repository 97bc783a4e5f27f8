"""Small helpers over the generated msgspec structs."""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Any

import msgspec

from ftconfig.generated.config import (
    BnBQuantizationConfig,
    DPOFinetuningConfig,
    FinetuningConfig,
    NoQuantizationConfig,
)

if TYPE_CHECKING:
    from typing_extensions import TypeIs

__all__ = ["is_dpo", "is_quantized", "literal_values", "variant_tag"]


def variant_tag(value: msgspec.Struct) -> Any:
    """The discriminator value of a tagged union variant (msgspec keeps it on the class, not the instance)."""
    return type(value).__struct_config__.tag


def literal_values(alias: Any) -> tuple[str, ...]:
    """The allowed values of a generated enum alias (`Annotated[Literal[...], Meta(...)]`), in schema order.

    Code that needs a schema enum's values reads them here instead of restating the list.
    """
    literal = typing.get_args(alias)[0] if typing.get_origin(alias) is typing.Annotated else alias
    return tuple(typing.get_args(literal))


def is_quantized(quant_conf: BnBQuantizationConfig | NoQuantizationConfig) -> bool:
    """Whether the base model loads quantized (a bitsandbytes quant_conf)."""
    return isinstance(quant_conf, BnBQuantizationConfig)


def is_dpo(config: FinetuningConfig | DPOFinetuningConfig) -> TypeIs[DPOFinetuningConfig]:
    """Whether the config trains with DPO (method: dpo) rather than SFT (narrows the type for the type checker)."""
    return isinstance(config, DPOFinetuningConfig)
