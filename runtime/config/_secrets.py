"""Keep secrets out of everything ftconfig writes or logs: tokens and credentials in URIs become '<redacted>'."""

from __future__ import annotations

import copy
import re
from collections.abc import MutableMapping
from typing import Any

from ftconfig.runtime.config._schema import secret_properties

__all__ = [
    "REDACTED",
    "detach_hub_token",
    "redact_config",
    "redact_text",
    "redact_uri",
    "secret_paths",
    "secret_values",
]


REDACTED = "<redacted>"
_SECRET_ENV = re.compile(r"(?i)(TOKEN|PASSWORD|PASSWD|SECRET|API_KEY|ACCESS_KEY|CREDENTIAL)")
# Query parameter names that carry credentials (auth_token, access_token, api_key, X-Amz-Signature, sig, ...).
_SECRET_PARAMETER = re.compile(r"(?i)token|passw|pwd|secret|key|sig|credential|auth|session")
# A URI inside free text (a log line, an error message): up to whitespace or a quote.
_URI_IN_TEXT = re.compile(r"""[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'"<>`]+""")


def _uri_secrets(uri: str) -> tuple[str, list[str], list[str]]:
    """(netloc without credentials, the credential strings, the secret query values), parsed as HTTP clients do:
    the userinfo runs up to the LAST '@' of the authority, so a password may itself contain '@'."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(uri)
    except ValueError:
        return "", [], []
    userinfo, at, host = parts.netloc.rpartition("@")
    credentials = [userinfo, *userinfo.split(":", 1)] if at else []
    values = []
    for pair in parts.query.split("&"):
        name, equals, value = pair.partition("=")
        if equals and value and _SECRET_PARAMETER.search(name):
            values.append(value)
    return host if at else parts.netloc, [item for item in credentials if item], values


def secret_paths(kind: str) -> list[tuple[str, ...]]:
    """Config paths the schema marks as secret: kind "value" (secret outright) or "uri" (a URI that may carry
    user:password@ or ?token= credentials)."""
    return [path for path, mark in secret_properties().items() if mark == kind]


def redact_uri(uri: str) -> str:
    """'https://user:p@ss@host/x?auth_token=abc' -> 'https://<redacted>@host/x?auth_token=<redacted>'.

    Only the secret parts change; everything else stays byte for byte (`sqlite:///m.db` keeps its slashes).
    """
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(uri)
    except ValueError:
        return REDACTED
    host, credentials, _ = _uri_secrets(uri)
    result = uri.replace(parts.netloc, f"{REDACTED}@{host}", 1) if credentials else uri
    if parts.query:
        query = "&".join(_redact_parameter(pair) for pair in parts.query.split("&"))
        result = result.replace(f"?{parts.query}", f"?{query}", 1)
    return result


def _redact_parameter(pair: str) -> str:
    name, equals, value = pair.partition("=")
    return f"{name}={REDACTED}" if equals and value and _SECRET_PARAMETER.search(name) else pair


def redact_text(text: str) -> str:
    """Free text with every URI in it redacted (credentials and secret query values)."""
    return _URI_IN_TEXT.sub(lambda match: redact_uri(match[0]), text)


def redact_config(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of a config document (builtins) with every secret replaced; the result still validates."""
    result = copy.deepcopy(document)
    for path in secret_paths("value"):
        parent = _parent(result, path)
        if parent is not None and parent.get(path[-1]):
            parent[path[-1]] = REDACTED
    for path in secret_paths("uri"):
        parent = _parent(result, path)
        if parent is not None and isinstance(parent.get(path[-1]), str):
            parent[path[-1]] = redact_uri(parent[path[-1]])
    return result


def _parent(document: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    node: Any = document
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def secret_values(document: dict[str, Any], environ: dict[str, str]) -> list[str]:
    """Every secret string in a config and the environment, for scrubbing free text such as log lines."""
    values = []
    for path in secret_paths("value"):
        parent = _parent(document, path)
        if parent is not None and isinstance(parent.get(path[-1]), str):
            values.append(parent[path[-1]])
    for path in secret_paths("uri"):
        parent = _parent(document, path)
        uri = parent.get(path[-1]) if parent is not None else None
        if isinstance(uri, str):
            _, credentials, query_values = _uri_secrets(uri)
            values += credentials + query_values
    values += [value for key, value in environ.items() if _SECRET_ENV.search(key) and len(value) >= 6]
    return sorted({value for value in values if value}, key=len, reverse=True)


def detach_hub_token(training_args: Any, environ: MutableMapping[str, str]) -> bool:
    """Take `hub_token` out of the TrainingArguments the Trainer keeps; returns whether there was one.

    The Trainer pickles its arguments, token included, into training_args.bin in every checkpoint and in the
    final save (to_dict masks `*_token` fields, pickling does not), and from there they reach MLflow artifacts
    and Hub uploads. The token only serves Hub pushes, which read HF_TOKEN when `hub_token` is None, so with
    push_to_hub on it moves there (process-local; the weights and tokenizer were loaded before).
    """
    token = getattr(training_args, "hub_token", None)
    if not token:
        return False
    training_args.hub_token = None
    if getattr(training_args, "push_to_hub", False):
        environ["HF_TOKEN"] = token
    return True
