"""`hf_gen_params` checked against transformers' GenerationConfig before any model loads."""

from __future__ import annotations

import re
from typing import Any

from transformers import GenerationConfig

from ftconfig.runtime.config._errors import ConfigError, ErrorItem
from ftconfig.runtime.config._schema_errors import suggest

__all__ = ["DEFAULT_MAX_NEW_TOKENS", "GEN_PARAMS", "check_gen_params"]

GEN_PARAMS = "$.hf_gen_params"
DEFAULT_MAX_NEW_TOKENS = 512
# Keys that would change what generate() returns; ftmodel reads only the generated tokens.
_NOT_PARAMS = {
    "return_dict_in_generate": "ftmodel reads the generated tokens only",
    "output_scores": "ftmodel reads the generated tokens only",
    "output_logits": "ftmodel reads the generated tokens only",
    "output_attentions": "ftmodel reads the generated tokens only",
    "output_hidden_states": "ftmodel reads the generated tokens only",
    "transformers_version": "transformers sets it",
}
_FLAG = re.compile(r"^- `(?P<key>\w+)`:", re.MULTILINE)


def _known_keys() -> set[str]:
    return {key for key in GenerationConfig().to_dict() if not key.startswith("_")}  # type: ignore[no-untyped-call]  # unannotated in transformers


def check_gen_params(params: dict[str, Any]) -> dict[str, Any]:
    """The generation kwargs to use: the user's, checked, plus `max_new_tokens` when no length is given.

    Unknown keys get "Did you mean ...?"; values transformers rejects (`max_new_tokens: 0`, a temperature
    without `do_sample: true`) are named at their key. Raises one ConfigError with every problem found.
    """
    known = _known_keys()
    items = []
    for key in params:
        where = f"{GEN_PARAMS}.{key}"
        if key in _NOT_PARAMS:
            items.append(ErrorItem(where, f"'{key}' cannot be set here: {_NOT_PARAMS[key]}"))
        elif key not in known:
            hint = suggest(key, sorted(known - set(_NOT_PARAMS)))
            items.append(ErrorItem(where, f"transformers' GenerationConfig has no option '{key}'", hint))
    if items:
        raise ConfigError(items)
    result = dict(params)
    if "max_new_tokens" not in result and "max_length" not in result:
        result["max_new_tokens"] = DEFAULT_MAX_NEW_TOKENS
    try:
        GenerationConfig(**result).validate(strict=True)  # type: ignore[no-untyped-call]  # unannotated in transformers
    except (ValueError, TypeError) as exc:
        message = str(exc).strip()
        keys = [match["key"] for match in _FLAG.finditer(message)] or [
            key for key in result if f"`{key}`" in message
        ]
        first_line = message.splitlines()[0] if message else type(exc).__name__
        details = [line.lstrip("- ") for line in message.splitlines()[1:] if line.strip()]
        if keys:
            raise ConfigError(
                [
                    ErrorItem(
                        f"{GEN_PARAMS}.{key}", next((d for d in details if f"`{key}`" in d), first_line)
                    )
                    for key in dict.fromkeys(keys)
                ]
            ) from exc
        raise ConfigError(ErrorItem(GEN_PARAMS, first_line)) from exc
    return result
