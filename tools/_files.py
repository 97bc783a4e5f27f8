"""The one way a generator writes its file: compare with what is there, write only when it differs."""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_or_check"]


def write_or_check(path: Path, text: str, *, check: bool) -> bool:
    """Write `text` to `path` unless it is already there; with `check`, only compare.

    Returns True when the file is (now) up to date; with `check`, False when it is stale or missing.
    """
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if check:
        return current == text
    if current != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return True
