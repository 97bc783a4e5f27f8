"""What a run writes next to its checkpoints: resolved_config.json, atomically, without secrets."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ftconfig.runtime._secrets import redact_config

if TYPE_CHECKING:
    from ftconfig.generated.config import FinetuningConfig
    from ftconfig.runtime._resolve import ResolvedRun

RESOLVED_CONFIG_NAME = "resolved_config.json"
LIBRARIES = (
    "ftconfig",
    "torch",
    "transformers",
    "trl",
    "peft",
    "bitsandbytes",
    "accelerate",
    "datasets",
    "tokenizers",
    "mlflow",
)


def library_versions() -> dict[str, str]:
    """Installed versions of the main libraries (from metadata: importing bitsandbytes alone costs 2.5 s)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def config_document(config: FinetuningConfig) -> dict[str, Any]:
    """The config as validated, defaults filled in, secrets redacted: itself a valid config."""
    return redact_config(msgspec.to_builtins(config))


def resolved_config_document(config: FinetuningConfig, resolved: ResolvedRun) -> dict[str, Any]:
    return {
        "config": config_document(config),
        "resolved": {**msgspec.to_builtins(resolved), "versions": library_versions()},
    }


def write_json_atomic(path: Path, document: Any) -> None:
    """Write JSON next to its destination and rename it into place: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False, encoding="utf-8"
    ) as handle:
        json.dump(document, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
        temporary = Path(handle.name)
    os.replace(temporary, path)


def replace_directory(source: Path, target: Path) -> None:
    """Move a fully written directory into place, replacing an older one (best-effort atomic swap)."""
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(source, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(source, target)
