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
    "redact_uri",
    "secret_paths",
    "secret_values",
]

REDACTED = "<redacted>"
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")
_QUERY_SECRET = re.compile(
    r"(?i)(?P<key>[?&](?:token|access_token|password|passwd|secret|api_key|key)=)[^&#\s]+"
)
_SECRET_ENV = re.compile(r"(?i)(TOKEN|PASSWORD|PASSWD|SECRET|API_KEY|ACCESS_KEY|CREDENTIAL)")


def secret_paths(kind: str) -> list[tuple[str, ...]]:
    """Config paths the schema marks as secret: kind "value" (secret outright) or "uri" (a URI that may carry
    user:password@ or ?token= credentials)."""
    return [path for path, mark in secret_properties().items() if mark == kind]


def redact_uri(uri: str) -> str:
    """'https://user:pw@host/x?token=abc' -> 'https://<redacted>@host/x?token=<redacted>'."""
    uri = _USERINFO.sub(lambda match: f"{match['scheme']}{REDACTED}@", uri)
    return _QUERY_SECRET.sub(lambda match: f"{match['key']}{REDACTED}", uri)


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
        if isinstance(uri, str) and (match := _USERINFO.search(uri)):
            values += [part for part in match["userinfo"].split(":") if part]
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
