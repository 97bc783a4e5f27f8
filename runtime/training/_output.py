"""What a run writes next to its checkpoints: resolved_config.json, atomically, without secrets."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ftconfig.runtime.config._secrets import redact_config

if TYPE_CHECKING:
    from ftconfig.generated.config import DPOFinetuningConfig, FinetuningConfig
    from ftconfig.runtime.config._resolve import ResolvedRun

__all__ = [
    "LIBRARIES",
    "RESOLVED_CONFIG_NAME",
    "StorageFailure",
    "config_document",
    "library_versions",
    "naming_storage_failures",
    "replace_directory",
    "resolved_config_document",
    "storage_failure",
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


def config_document(config: FinetuningConfig | DPOFinetuningConfig) -> dict[str, Any]:
    """The config as validated, defaults filled in, secrets redacted: itself a valid config.

    A config that names its dtype with the newer `dtype` key keeps only that key: the filled-in default of
    `torch_dtype` next to it would be the "both set" mistake.
    """
    document: dict[str, Any] = msgspec.to_builtins(config)
    model_args = document["run_conf"]["model_args"]
    if model_args.get("dtype") is not None:
        model_args.pop("torch_dtype", None)
    return redact_config(document)


def resolved_config_document(
    config: FinetuningConfig | DPOFinetuningConfig, resolved: ResolvedRun
) -> dict[str, Any]:
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


# Write failures a user can fix (space, quota, permissions, a read-only or failing disk), not ftconfig bugs.
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG, errno.EACCES, errno.EPERM}
# torch.save reports a failed write as a RuntimeError from its C++ stream writer, without the errno.
_STORAGE_MESSAGES = ("file write failed", "No space left on device", "Disk quota exceeded")


class StorageFailure(Exception):
    """A write that the disk refused (full, quota, read-only, failing): exit 1 with one line, no traceback."""


@contextlib.contextmanager
def naming_storage_failures(place: Path) -> Iterator[None]:
    """Turn a disk failure inside into a StorageFailure that names `place` (where the run was writing)."""
    try:
        yield
    except StorageFailure:
        raise
    except Exception as error:
        problem = storage_failure(error)
        if problem is None:
            raise
        raise StorageFailure(f"{problem} (while writing under {place})") from error


def storage_failure(error: BaseException) -> str | None:
    """One line for an exception caused by the disk (e.g. full while saving a checkpoint), else None.

    The whole chain of causes is searched: libraries wrap the OSError in their own exceptions.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _STORAGE_ERRNOS:
            where = f" {current.filename}" if current.filename else ""
            return f"cannot write{where}: {current.strerror or os.strerror(current.errno or 0)}"
        text = str(current)
        if any(marker in text for marker in _STORAGE_MESSAGES):
            return f"cannot write: {text.strip().splitlines()[0]}"
        current = current.__cause__ or current.__context__
    return None
