"""A small, dependency-free Language Server Protocol client over stdio.

Enough of LSP to drive ``yaml-language-server --stdio`` from tests: JSON-RPC 2.0 with
``Content-Length`` framing, a reader thread that routes responses to their waiting requests,
answers the server's own requests (``workspace/configuration`` and friends) and collects
``textDocument/publishDiagnostics`` notifications. Every wait has a timeout, so a server that
misbehaves makes the caller fail with :class:`LspTimeout` instead of hanging.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT = 15.0

# What the server gets for every item of a ``workspace/configuration`` request: validation,
# hover and completion on, and no schema associations of its own (documents name their schema
# with a ``# yaml-language-server: $schema=...`` modeline).
DEFAULT_SETTINGS: dict[str, Any] = {
    "yaml": {
        "validate": True,
        "hover": True,
        "completion": True,
        "schemas": {},
        "schemaStore": {"enable": False},
    }
}


class LspError(RuntimeError):
    """The server answered a request with an error, or the connection broke."""


class LspTimeout(LspError):
    """An expected message did not arrive in time."""


class _Pending:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.message: dict[str, Any] | None = None


class LspClient:
    """Runs a language server as a subprocess and talks LSP to it over its stdin/stdout."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        cwd: str | Path | None = None,
        settings: dict[str, Any] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.command = list(command)
        self.settings = DEFAULT_SETTINGS if settings is None else settings
        self.timeout = timeout
        self._proc = subprocess.Popen(
            self.command,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so close() can end all of it
        )
        self._write_lock = threading.Lock()
        self._state = threading.Condition()
        self._next_id = 0
        self._pending: dict[int, _Pending] = {}
        self._closed_reason: str | None = None
        # uri -> every diagnostics list published for it, oldest first
        self.diagnostics: dict[str, list[list[dict[str, Any]]]] = {}
        self.notifications: list[dict[str, Any]] = []
        self.server_requests: list[dict[str, Any]] = []
        self._stderr: list[bytes] = []
        self._reader = threading.Thread(target=self._read_loop, name="lsp-reader", daemon=True)
        self._reader.start()
        self._stderr_reader = threading.Thread(target=self._drain_stderr, name="lsp-stderr", daemon=True)
        self._stderr_reader.start()

    # ------------------------------------------------------------------ wire format

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        header = f"Content-Length: {len(body)}\r\n\r\n".encode("ascii")
        stdin = self._proc.stdin
        assert stdin is not None
        with self._write_lock:
            try:
                stdin.write(header + body)
                stdin.flush()
            except (BrokenPipeError, OSError, ValueError) as exc:
                raise LspError(f"cannot write to the server: {exc}{self._stderr_hint()}") from exc

    def _read_message(self) -> dict[str, Any] | None:
        stdout = self._proc.stdout
        assert stdout is not None
        length: int | None = None
        while True:
            line = stdout.readline()
            if not line:
                return None  # EOF
            line = line.strip()
            if not line:
                break
            name, _, value = line.decode("ascii", "replace").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length is None:
            raise LspError("message without Content-Length header")
        body = b""
        while len(body) < length:
            chunk = stdout.read(length - len(body))
            if not chunk:
                return None
            body += chunk
        return json.loads(body.decode("utf-8"))

    def _read_loop(self) -> None:
        reason = "the server closed its stdout"
        try:
            while True:
                message = self._read_message()
                if message is None:
                    break
                self._dispatch(message)
        except Exception as exc:  # reader must never die silently
            reason = f"reader failed: {exc!r}"
        with self._state:
            self._closed_reason = reason
            for pending in self._pending.values():
                pending.event.set()
            self._state.notify_all()

    def _drain_stderr(self) -> None:
        stderr = self._proc.stderr
        assert stderr is not None
        for line in iter(stderr.readline, b""):
            self._stderr.append(line)
            if len(self._stderr) > 200:
                del self._stderr[:100]

    def _stderr_hint(self) -> str:
        tail = b"".join(self._stderr[-20:]).decode("utf-8", "replace").strip()
        return f"\nserver stderr:\n{tail}" if tail else ""

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "method" in message and "id" in message:
            self._answer_server_request(message)
        elif "method" in message:
            with self._state:
                self.notifications.append(message)
                if message["method"] == "textDocument/publishDiagnostics":
                    params = message["params"]
                    self.diagnostics.setdefault(params["uri"], []).append(params["diagnostics"])
                self._state.notify_all()
        elif "id" in message:
            with self._state:
                pending = self._pending.pop(message["id"], None)
            if pending is not None:
                pending.message = message
                pending.event.set()

    def _answer_server_request(self, message: dict[str, Any]) -> None:
        with self._state:
            self.server_requests.append(message)
        method = message["method"]
        result: Any = None
        if method == "workspace/configuration":
            items = (message.get("params") or {}).get("items", [])
            result = [self._setting_for(item.get("section")) for item in items]
        # client/registerCapability, window/workDoneProgress/create, window/showMessageRequest,
        # ...: null is an acceptable answer to all of them.
        self._send({"id": message["id"], "result": result})

    def _setting_for(self, section: str | None) -> Any:
        value: Any = self.settings
        for part in (section or "").split("."):
            if not part:
                continue
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return value

    # ------------------------------------------------------------------ JSON-RPC

    def request(self, method: str, params: Any = None, *, timeout: float | None = None) -> Any:
        """Send a request and wait for its result; raise LspError on an error response."""
        pending = _Pending()
        with self._state:
            if self._closed_reason is not None:
                raise LspError(f"{method}: connection closed ({self._closed_reason}){self._stderr_hint()}")
            self._next_id += 1
            request_id = self._next_id
            self._pending[request_id] = pending
        self._send({"id": request_id, "method": method, "params": params})
        wait = self.timeout if timeout is None else timeout
        if not pending.event.wait(wait):
            with self._state:
                self._pending.pop(request_id, None)
            raise LspTimeout(f"{method}: no response within {wait:.1f}s{self._stderr_hint()}")
        if pending.message is None:
            raise LspError(f"{method}: connection closed ({self._closed_reason}){self._stderr_hint()}")
        if "error" in pending.message:
            raise LspError(f"{method}: {pending.message['error']}")
        return pending.message.get("result")

    def notify(self, method: str, params: Any = None) -> None:
        self._send({"method": method, "params": params})

    # ------------------------------------------------------------------ LSP

    def initialize(self, root: str | Path | None = None) -> dict[str, Any]:
        root_uri = Path(root).resolve().as_uri() if root is not None else None
        result = self.request(
            "initialize",
            {
                "processId": None,
                "clientInfo": {"name": "ftconfig-tests"},
                "rootUri": root_uri,
                "workspaceFolders": [{"uri": root_uri, "name": "root"}] if root_uri else None,
                "capabilities": {
                    "workspace": {
                        "configuration": True,
                        "didChangeConfiguration": {"dynamicRegistration": False},
                    },
                    "textDocument": {
                        "synchronization": {"dynamicRegistration": False},
                        "completion": {
                            "dynamicRegistration": False,
                            "completionItem": {
                                "snippetSupport": True,
                                "documentationFormat": ["markdown", "plaintext"],
                            },
                        },
                        "hover": {"dynamicRegistration": False, "contentFormat": ["markdown", "plaintext"]},
                        "publishDiagnostics": {"relatedInformation": True},
                    },
                },
            },
        )
        self.notify("initialized", {})
        self.notify("workspace/didChangeConfiguration", {"settings": self.settings})
        return result

    def did_open(self, path: str | Path, text: str | None = None, *, language_id: str = "yaml") -> str:
        """Open a document (read from ``path`` unless ``text`` is given); return its URI."""
        path = Path(path).resolve()
        if text is None:
            text = path.read_text(encoding="utf-8")
        uri = path.as_uri()
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": language_id, "version": 1, "text": text}},
        )
        return uri

    def did_close(self, uri: str) -> None:
        self.notify("textDocument/didClose", {"textDocument": {"uri": uri}})

    def completion(self, uri: str, line: int, character: int, *, timeout: float | None = None) -> list[dict]:
        result = self.request(
            "textDocument/completion",
            {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}},
            timeout=timeout,
        )
        if result is None:
            return []
        return result["items"] if isinstance(result, dict) else result

    def hover(self, uri: str, line: int, character: int, *, timeout: float | None = None) -> str:
        """The hover text at a position, flattened to one string ('' for no hover)."""
        result = self.request(
            "textDocument/hover",
            {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}},
            timeout=timeout,
        )
        if not result:
            return ""
        return _markup_text(result.get("contents"))

    def wait_for_diagnostics(
        self,
        uri: str,
        *,
        timeout: float | None = None,
        settle: float = 0.5,
        predicate: Callable[[list[dict[str, Any]]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """Wait for the server to publish diagnostics for ``uri``; return the latest list.

        Waits until a publish arrives (one matching ``predicate`` if given), then until no new
        publish arrives for ``settle`` seconds, so a later re-validation is not missed.
        """
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        with self._state:

            def ready() -> bool:
                published = self.diagnostics.get(uri)
                if not published:
                    return False
                return predicate is None or predicate(published[-1])

            while not ready():
                left = deadline - time.monotonic()
                if left <= 0 or self._closed_reason is not None:
                    seen = self.diagnostics.get(uri)
                    raise LspTimeout(
                        f"no diagnostics published for {uri} within {wait:.1f}s"
                        f" (published so far: {seen}; closed: {self._closed_reason}){self._stderr_hint()}"
                    )
                self._state.wait(left)
            while True:
                count = len(self.diagnostics[uri])
                settle_end = min(time.monotonic() + settle, deadline)
                while len(self.diagnostics[uri]) == count:
                    left = settle_end - time.monotonic()
                    if left <= 0:
                        return self.diagnostics[uri][-1]
                    self._state.wait(left)

    # ------------------------------------------------------------------ lifecycle

    def close(self, timeout: float = 5.0) -> None:
        """shutdown + exit, then make sure the server (and anything it started) is gone."""
        try:
            if self._proc.poll() is None and self._closed_reason is None:
                self.request("shutdown", None, timeout=timeout)
                self.notify("exit", None)
        except LspError:
            pass
        finally:
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill_group()
                self._proc.wait(timeout=timeout)
            if self._proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self._proc.stdin.close()
            # The reader threads end at EOF. A child of the server may still hold the pipes:
            # then the group still exists (so its id is not reused) and is killed. Streams are
            # closed only once their reader is done (closing a pipe that another thread is
            # blocked reading blocks too).
            readers = ((self._reader, self._proc.stdout), (self._stderr_reader, self._proc.stderr))
            for thread, _ in readers:
                thread.join(timeout=timeout)
                if thread.is_alive():
                    self._kill_group()
                    thread.join(timeout=timeout)
            for thread, stream in readers:
                if stream is not None and not thread.is_alive():
                    with contextlib.suppress(OSError):
                        stream.close()

    def _kill_group(self) -> None:
        """SIGKILL the process group this client created for the server."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)

    def server_errors(self, since: int = 0) -> list[str]:
        """Errors the server reported on the side, from notification number ``since`` on.

        yaml-language-server catches exceptions inside a request handler, answers with what it
        has so far, and reports the exception only as a ``telemetry/event`` (``yaml.*.error``);
        ``window/logMessage`` / ``window/showMessage`` of type Error count too.
        """
        with self._state:
            notifications = self.notifications[since:]
        errors = []
        for message in notifications:
            params = message.get("params") or {}
            if message["method"] == "telemetry/event" and "error" in str(params.get("name", "")):
                properties = params.get("properties") or {}
                errors.append(f"{params.get('name')}: {properties.get('error', properties)}")
            elif message["method"] in ("window/logMessage", "window/showMessage") and params.get("type") == 1:
                errors.append(f"{message['method']}: {params.get('message')}")
        return errors

    @property
    def notification_count(self) -> int:
        with self._state:
            return len(self.notifications)

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    def __enter__(self) -> LspClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _markup_text(contents: Any) -> str:
    """Flatten Hover.contents (MarkupContent, MarkedString or a list of them) to text."""
    if contents is None:
        return ""
    if isinstance(contents, str):
        return contents
    if isinstance(contents, list):
        return "\n".join(_markup_text(item) for item in contents)
    if isinstance(contents, dict):
        return str(contents.get("value", ""))
    return str(contents)
