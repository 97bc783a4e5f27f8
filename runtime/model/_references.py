"""Is a model, tokenizer or adapter reference a local folder, a Hub id, or a typo? Light: no torch import.

Shared by the model, tokenizer and adapter checks so that each names the same problems the same way.
"""

from __future__ import annotations

import re
from pathlib import Path

from ftconfig.generated.config import ModelArguments
from ftconfig.runtime.config._errors import ConfigError, ErrorItem
from ftconfig.runtime.config._schema_errors import suggest

__all__ = ["MODEL", "local_problem", "looks_like_hub_id", "nearby_hint", "unavailable_hub_id"]

MODEL = "$.run_conf.model"
# A Hub repository id: `name` or `namespace/name` (huggingface_hub's rule, without its length limit).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def local_problem(reference: str, subfolder: str | None) -> ErrorItem | None:
    """What is wrong with a model reference that names a local path; None when it is fine or a hub id."""
    path = Path(reference).expanduser()
    if path.is_dir():
        folder = path / subfolder if subfolder else path
        if (folder / "config.json").is_file():
            return None
        return ErrorItem(
            MODEL,
            f"{str(folder)!r} is a folder but not a model folder (it has no config.json)",
            "Point run_conf.model at the folder that save_pretrained wrote.",
        )
    if path.exists():
        return ErrorItem(
            MODEL, f"{reference!r} is a file, not a model folder", "Point it at the folder that holds it."
        )
    if looks_like_hub_id(reference):
        return None  # may be a Hub id; only the Hub (or its cache) can tell
    return ErrorItem(MODEL, f"no model folder at {reference!r}", nearby_hint(path))


def looks_like_hub_id(reference: str) -> bool:
    """Whether a reference that is no local path could still name a Hub repository (`name`, `org/name`).

    `examples/tiny-lama` has the shape of a Hub id, but its first part is a local folder: it is a mistyped
    path, and asking the Hub about it only costs time.
    """
    if not _HUB_ID.match(reference) or reference.startswith((".", "~")):
        return False
    namespace, slash, _ = reference.partition("/")
    return not (slash and Path(namespace).is_dir())


def nearby_hint(path: Path) -> str:
    """A hint naming similar entries of the parent folder, which catches typos in paths."""
    parent = path.parent
    if parent.is_dir():
        hint = suggest(path.name, (child.name for child in parent.iterdir() if child.is_dir()))
        if hint:
            return str(hint)
    return "Check the path (relative paths start from the directory ftrun runs in)."


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def unavailable_hub_id(reference: str, args: ModelArguments, exc: BaseException) -> ConfigError:
    where = "in the local Hugging Face cache"
    if args.local_files_only or _offline():
        hint = "Offline mode is on (HF_HUB_OFFLINE or local_files_only): only folders and cached models load."
    else:
        hint = f"Check the id, the revision and your access token ({exc})."
    if "/" in reference and Path(reference).parent.is_dir():
        hint = f"{hint} {nearby_hint(Path(reference))}"
    return ConfigError(
        ErrorItem(
            MODEL,
            f"{reference!r} is neither a local model folder nor a model found {where} or on the Hub",
            hint,
        )
    )
