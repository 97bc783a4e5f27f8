"""Read one chat data file (JSON Lines or one JSON array) into conversations, reporting every bad row."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict, TypeVar

import msgspec
import numpy as np

from ftconfig.runtime.config._errors import DataError, ErrorItem
from ftconfig.runtime.config._files import compression_of, special_file_problem

__all__ = [
    "PLACEHOLDER",
    "ChatMessage",
    "ChatRecord",
    "Conversation",
    "RowProblem",
    "certainly_too_long",
    "check_assistant_turns",
    "longest_token_chars",
    "read_conversations",
    "read_file_bytes",
    "read_rows",
]

# More bad rows than this are summarised as "... and N more", so a broken 50k-row file stays readable.
MAX_REPORTED_ROWS = 20


class ChatMessage(TypedDict):
    """One message of the data format; a TypedDict so rows decode straight into chat-template dicts."""

    role: str
    content: str


class ChatRecord(msgspec.Struct):
    """One row of the data format: `{"messages": [...]}`; other row keys (`id`, `tags`, ...) are ignored."""

    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1)]


Conversation = list[ChatMessage]
Row = TypeVar("Row")


class RowProblem(ValueError):
    """A row that decodes but breaks a rule of its format; the message says what is wrong, in words."""


_ROW_DECODER = msgspec.json.Decoder(ChatRecord)
_ARRAY_DECODER = msgspec.json.Decoder(list[msgspec.Raw])
_ROW_SHAPE = 'each row is {"messages": [{"role": "...", "content": "..."}, ...]}'
_JSON_TYPES = {
    "object": "an object",
    "array": "a list",
    "str": "a string",
    "int": "a number",
    "float": "a number",
    "bool": "a boolean",
    "null": "null",
}
_VALIDATION = re.compile(r"^(?P<what>.*?)(?: - at `(?P<at>[^`]*)`)?$")
_EXPECTED = re.compile(r"^Expected `(?P<want>\w+)`(?P<length> of length >= 1)?(?:, got `(?P<got>\w+)`)?$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>\w+)`$")


def read_file_bytes(path: Path, *, location: str, shown: str) -> bytes:
    """The raw bytes of a data file; a missing or unreadable file names the config entry that points at it."""
    if (problem := special_file_problem(path)) is not None:
        raise DataError(ErrorItem(location, problem))
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(ErrorItem(location, f"file not found: {shown}")) from None
    except IsADirectoryError:
        raise DataError(ErrorItem(location, f"is a directory, not a data file: {shown}")) from None
    except OSError as exc:
        raise DataError(ErrorItem(location, f"cannot read {shown} ({exc.strerror})")) from None


def read_conversations(raw: bytes, *, name: str) -> list[Conversation]:
    """Decode and check every chat row of one file; raise one DataError listing all bad rows (`name:line`)."""
    return read_rows(raw, name=name, decode=lambda text: _ROW_DECODER.decode(text).messages, shape=_ROW_SHAPE)


def read_rows(raw: bytes, *, name: str, decode: Callable[[bytes], Row], shape: str) -> list[Row]:
    """Decode and check every row of one file with `decode` (msgspec errors or RowProblem for a bad row); raise
    one DataError listing all bad rows (`name:line`). `shape` says in words what a row looks like.

    A file whose first character is `[` and that parses as one JSON array is read as an array (rows are then
    located as `name[index]`); anything else is JSON Lines, blank lines skipped.
    """
    if (compression := compression_of(raw)) is not None:
        raise DataError(
            ErrorItem(
                name,
                f"the file is {compression}-compressed",
                "Decompress it; data files are plain JSON Lines.",
            )
        )
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    stripped = raw.lstrip()
    rows = _array_rows(raw, name=name) if stripped.startswith(b"[") else None
    if rows is None:
        rows = [(f"{name}:{number}", line) for number, line in enumerate(raw.splitlines(), 1) if line.strip()]
    if not rows:
        raise DataError(ErrorItem(name, "the file has no rows", f"Add rows: {shape}"))
    decoded: list[Row] = []
    problems: list[ErrorItem] = []
    bad_rows = 0
    for where, text in rows:
        try:
            decoded.append(decode(text))
            continue
        except (msgspec.DecodeError, RowProblem) as exc:  # ValidationError: wrong shape rather than bad JSON
            message = _row_message(text, exc, shape)
        except UnicodeDecodeError as exc:  # msgspec checks UTF-8 inside strings only as it decodes them
            message = f"not UTF-8 text (byte {exc.start} of the row); save the file as UTF-8"
        bad_rows += 1
        if len(problems) < MAX_REPORTED_ROWS:
            problems.append(ErrorItem(where, message))
    if bad_rows > len(problems):
        more = bad_rows - len(problems)
        problems.append(
            ErrorItem(name, f"... and {more} more bad rows ({bad_rows} of {len(rows)} rows are bad)")
        )
    if problems:
        raise DataError(problems)
    return decoded


def check_assistant_turns(conversations: list[Conversation], *, name: str) -> None:
    """A file in which no conversation has an assistant turn would train on nothing useful: a DataError."""
    if not any(message["role"] == "assistant" for messages in conversations for message in messages):
        raise DataError(
            ErrorItem(
                name,
                f"none of its {len(conversations)} conversations has an assistant turn, so there is nothing "
                "to learn from it",
                'Each conversation needs at least one {"role": "assistant", ...} message.',
            )
        )


# What an over-long conversation is replaced with before tokenising: it keeps its row (ids, mixing and splitting
# stay as they were) and the length filter then drops it, counted with the other too-long examples.
PLACEHOLDER: Conversation = [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}]


def longest_token_chars(tokenizer: Any) -> int:
    """The most characters any one token of the vocabulary can stand for (its stored form is at least as long:
    byte-level BPE stores one character per byte, SentencePiece '▁' per space, byte tokens as '<0xAB>')."""
    return max((len(token) for token in tokenizer.get_vocab()), default=1) or 1


def certainly_too_long(
    conversations: list[Conversation], *, max_seq_length: int, token_chars: int
) -> np.ndarray:
    """Which conversations have more content characters than max_seq_length tokens can hold.

    Checked before rendering and tokenising, so one huge row costs a length count instead of gigabytes of
    template output and token ids; the bound is safe (such a row always tokenises too long).
    """
    limit = max_seq_length * token_chars
    return np.fromiter(
        (sum(len(message["content"]) for message in messages) > limit for messages in conversations),
        dtype=bool,
        count=len(conversations),
    )


def _array_rows(raw: bytes, *, name: str) -> list[tuple[str, bytes]] | None:
    """Rows of a JSON-array file, or None when the text is rather JSON Lines whose first row is a list."""
    try:
        items = _ARRAY_DECODER.decode(raw)
    except msgspec.DecodeError as exc:  # the top level is known to be '[', so this is a syntax error
        lines = [line for line in raw.splitlines() if line.strip()]
        if len(lines) > 1 and _parses(lines[0]):
            return None  # JSON Lines; its rows will be reported one by one
        message = _syntax_message(raw, exc)
        where = f"{name}:{_error_line(raw)}"
        raise DataError(
            ErrorItem(where, f"the file starts with '[' but is not one JSON array: {message}")
        ) from None
    return [(f"{name}[{index}]", bytes(item)) for index, item in enumerate(items)]


def _parses(line: bytes) -> bool:
    try:
        msgspec.json.decode(line)
    except msgspec.DecodeError:
        return False
    return True


def _row_message(text: bytes, exc: msgspec.DecodeError | RowProblem, shape: str) -> str:
    if isinstance(exc, RowProblem):
        return str(exc)
    if isinstance(exc, msgspec.ValidationError):
        return _validation_message(str(exc), shape)
    return _syntax_message(text, exc)


def _syntax_message(text: bytes, exc: Exception) -> str:
    """Words for text that is not JSON: Python's parser message (it gives the column), else msgspec's."""
    try:
        json.loads(text.decode("utf-8"))
    except UnicodeDecodeError as unicode_exc:
        return f"not valid JSON: not UTF-8 text (byte {unicode_exc.start})"
    except json.JSONDecodeError as json_exc:
        return f"not valid JSON: {json_exc.msg} (column {json_exc.colno})"
    except ValueError:
        pass
    return f"not valid JSON: {exc}"


def _error_line(text: bytes) -> int:
    """The line of the first JSON syntax error in a whole file (1 when Python's parser finds none)."""
    try:
        json.loads(text.decode("utf-8", errors="replace"))
    except json.JSONDecodeError as exc:
        return exc.lineno
    return 1


def _validation_message(text: str, shape: str) -> str:
    """Turn msgspec's `Expected X, got Y - at $.path` into what is wrong with the row, in words."""
    match = _VALIDATION.match(text)
    what, at = (match["what"], match["at"] or "$") if match else (text, "$")
    field = "the row" if at == "$" else "`" + at.removeprefix("$.") + "`"
    if missing := _MISSING.match(what):
        suffix = f"; {shape}" if at == "$" else ""
        return f"{field} has no `{missing['field']}` key{suffix}"
    if expected := _EXPECTED.match(what):
        if expected["length"]:
            return f"{field} is an empty list; a conversation needs at least one message"
        got = _JSON_TYPES.get(expected["got"] or "", expected["got"])
        want = _JSON_TYPES.get(expected["want"], expected["want"])
        if at == "$":
            return f"the row is {got}, not an object; {shape}"
        if at.endswith("messages"):
            return f"{field} is {got}, not a list of messages; {shape}"
        return f"{field} is {got}, not {want}"
    return f"{text}; {shape}"
