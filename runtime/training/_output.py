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

from ftconfig.runtime.config._secrets import redact_config

if TYPE_CHECKING:
    from ftconfig.generated.config import FinetuningConfig
    from ftconfig.runtime.config._resolve import ResolvedRun

__all__ = [
    "LIBRARIES",
    "RESOLVED_CONFIG_NAME",
    "config_document",
    "library_versions",
    "replace_directory",
    "resolved_config_document",
    "write_json_atomic",
]

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
    """The config as validated, defaults filled in, secrets redacted: itself a valid config.

    A config that names its dtype with the newer `dtype` key keeps only that key: the filled-in default of
    `torch_dtype` next to it would be the "both set" mistake.
    """
    document: dict[str, Any] = msgspec.to_builtins(config)
    model_args = document["run_conf"]["model_args"]
    if model_args.get("dtype") is not None:
        model_args.pop("torch_dtype", None)
    return redact_config(document)


def resolved_config_document(config: FinetuningConfig, resolved: ResolvedRun) -> dict[str, Any]:
    return {
        "config": config_document(config),
        "resolved": {**msgspec.to_builtins(resolved), "versions": library_versions()},
    }


def write_json_atomic(path: Path, document: Any) -> None:
    """Write JSON next to its destination and rename it into place: readers never see half a file.

    The data reaches the disk (fsync) before the rename, so a crash leaves the old file or the new one; a failure
    while writing (an unserialisable value, a full disk, Ctrl-C) leaves the old file and no temporary file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False, encoding="utf-8"
    ) as handle:
        temporary = Path(handle.name)
        try:
            json.dump(document, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        except BaseException:
            handle.close()
            temporary.unlink(missing_ok=True)
            raise
    os.replace(temporary, path)


def replace_directory(source: Path, target: Path) -> None:
    """Move a fully written directory into place, replacing an older one.

    Two renames: the old target moves aside to `.<name>.old`, the new one moves in, then the old one is deleted.
    If the second rename fails the old target is moved back, so `target` is always a complete directory, the
    old one or the new one (a kill between the two renames leaves the old one at `.<name>.old`).
    """
    if not source.is_dir():
        raise FileNotFoundError(f"{source} is not a directory; {target} was left as it is")
    if not target.exists():
        os.replace(source, target)
        return
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(target, old)
    try:
        os.replace(source, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
