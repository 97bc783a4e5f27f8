"""Small helpers over the generated msgspec structs."""

from __future__ import annotations

from typing import Any

import msgspec


def variant_tag(value: msgspec.Struct) -> Any:
    """The discriminator value of a tagged union variant (msgspec keeps it on the class, not the instance)."""
    return type(value).__struct_config__.tag
