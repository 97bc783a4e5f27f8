"""Limits on the shape of a parsed document: a hostile YAML/JSON file is refused in milliseconds.

YAML aliases let a few hundred bytes stand for billions of values (an "alias bomb") or for a value that contains
itself; deep nesting exhausts Python's recursion limit. The parser builds such documents cheaply because it
shares the aliased values, but every later step (--set, validation, copying) would walk them in full. One
memoised walk over the shared graph measures the expanded size, the depth and any cycle first.
"""

from __future__ import annotations

from typing import Any

from ftconfig.runtime.config._errors import ConfigError, ErrorItem

__all__ = ["MAX_DEPTH", "MAX_VALUES", "check_document_shape"]

# A real config nests about 6 levels and holds a few hundred values; these leave room for library option bags.
MAX_DEPTH = 64
MAX_VALUES = 100_000


class _Refused(Exception):
    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def check_document_shape(document: Any, *, name: str) -> None:
    """Raise ConfigError naming `name` when the document nests too deep, refers to itself or expands too far."""
    try:
        _expanded_size(document, depth=0, on_path=set(), sizes={})
    except _Refused as refused:
        raise ConfigError(ErrorItem(name, refused.message)) from None


def _expanded_size(value: Any, *, depth: int, on_path: set[int], sizes: dict[int, int]) -> int:
    """How many values the document holds once every alias is expanded (memoised per shared object)."""
    if not isinstance(value, dict | list):
        return 1
    key = id(value)
    if key in on_path:
        raise _Refused("the document contains itself (a recursive YAML alias); write the values out")
    if key in sizes:
        return sizes[key]
    if depth >= MAX_DEPTH:
        raise _Refused(f"the document nests deeper than {MAX_DEPTH} levels; no config needs that")
    on_path.add(key)
    children = value.values() if isinstance(value, dict) else value
    total = 1
    for child in children:
        total += _expanded_size(child, depth=depth + 1, on_path=on_path, sizes=sizes)
        if total > MAX_VALUES:
            raise _Refused(
                f"the document expands to more than {MAX_VALUES:,} values (YAML aliases repeating "
                "aliases?); no config needs that"
            )
    on_path.discard(key)
    sizes[key] = total
    return total
