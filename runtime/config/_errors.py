"""User-facing errors: data, not strings, rendered once; torch-free so the validator can raise them."""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass
from typing import NoReturn, Self

__all__ = ["BUG_EXIT_CODE", "ConfigError", "DataError", "ErrorItem", "UserError", "report_bug"]

BUG_EXIT_CODE = 1


@dataclass(frozen=True)
class ErrorItem:
    """One problem: where it is (`$.a.b[1]` or `file.jsonl:17`), what is wrong, and what to do."""

    location: str
    message: str
    hint: str | None = None

    def render(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        return f"{text}. {self.hint}" if self.hint else text


class UserError(Exception):
    """A mistake in the user's config, data or command line. Exit code 2, no traceback."""

    exit_code = 2
    headline = "error"

    def __init__(self, items: list[ErrorItem] | ErrorItem | str, *, source: str | None = None) -> None:
        if isinstance(items, str):
            items = [ErrorItem("", items)]
        elif isinstance(items, ErrorItem):
            items = [items]
        self.items = list(items)
        self.source = source
        super().__init__(str(self))

    def with_source(self, source: str) -> Self:
        """The same error, attributed to a file (keeps the first source given)."""
        if self.source is None:
            self.source = source
        return self

    def __str__(self) -> str:
        """The message, with credentials in any URI it quotes redacted (messages echo config values)."""
        from ftconfig.runtime.config._secrets import redact_text

        where = f" in {self.source}" if self.source else ""
        if len(self.items) == 1:
            return redact_text(f"{self.headline}{where}: {self.items[0].render()}")
        lines = [f"{self.headline}{where}: {len(self.items)} problems"]
        lines += [f"  - {item.render()}" for item in self.items]
        return redact_text("\n".join(lines))


class ConfigError(UserError):
    """The config is invalid (schema, cross-field or preflight rule)."""

    headline = "invalid config"


class DataError(UserError):
    """A data file is missing or malformed."""

    headline = "invalid data"


def report_bug(program: str) -> NoReturn:
    """For an exception that is not a UserError (so not the user's mistake): its traceback, one line that asks
    for a report, exit 1. Call it from an `except` block."""
    traceback.print_exc()
    print(f"{program}: this is a bug in ftconfig, please report it with the traceback", file=sys.stderr)
    sys.exit(BUG_EXIT_CODE)
