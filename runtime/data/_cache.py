"""Cache of prepared data: the key, and an atomic store/load of `cache_dir/<key>/`."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import msgspec

__all__ = [
    "PREPARE_VERSION",
    "cache_key",
    "default_cache_dir",
    "load_prepared",
    "store_prepared",
    "tokenizer_fingerprint",
]

logger = logging.getLogger(__name__)

# Bump when the preparation's output changes for the same inputs (the sources of the modules below count too).
PREPARE_VERSION = 1
_CODE_MODULES = (
    "ftconfig.runtime.data._records",
    "ftconfig.runtime.data._prepare",
    "ftconfig.runtime.data._encode",
    "ftconfig.runtime.data._cache",
    "ftconfig.runtime.data._preference",
)
_META = "meta.json"
_COLUMNS = {"input_ids", "labels", "length"}


def default_cache_dir() -> Path:
    """Where prepared data is cached unless the caller says otherwise: $FTCONFIG_CACHE_DIR or ~/.cache."""
    configured = os.environ.get("FTCONFIG_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "ftconfig" / "prepared"


def tokenizer_fingerprint(tokenizer: Any, setup: Any) -> str:
    """A digest of everything in the tokenizer that changes token ids or labels.

    The fast backend's JSON holds the vocabulary, merges, added tokens and the BOS/EOS post-processor; the
    rest (chat template, special tokens, padding, add_bos/add_eos, our TokenizerSetup) is added explicitly.
    """
    digest = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        digest.update(backend.to_str().encode())
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    settings = {
        "class": type(tokenizer).__name__,
        "added_tokens": sorted(
            (index, str(token)) for index, token in tokenizer.added_tokens_decoder.items()
        ),
        "chat_template": tokenizer.chat_template,
        "special_tokens": {
            name: str(getattr(tokenizer, name, None))
            for name in ("bos_token", "eos_token", "unk_token", "pad_token")
        },
        "pad_token_id": tokenizer.pad_token_id,
        "padding_side": tokenizer.padding_side,
        "add_bos_token": getattr(tokenizer, "add_bos_token", None),
        "add_eos_token": getattr(tokenizer, "add_eos_token", None),
        "setup": _plain(setup),
    }
    digest.update(json.dumps(settings, sort_keys=True, default=repr).encode())
    return digest.hexdigest()


def cache_key(
    *,
    files: Sequence[tuple[str, str]],
    data_conf: msgspec.Struct,
    sft_args: msgspec.Struct,
    tokenizer_digest: str,
) -> str:
    """The cache entry name: a digest of the data (path and sha256 of each file), settings and code."""
    parts = {
        "version": PREPARE_VERSION,
        "code": _code_digest(),
        "libraries": {name: _version(name) for name in ("datasets", "tokenizers", "transformers")},
        "files": [list(item) for item in files],
        "data_conf": msgspec.to_builtins(data_conf),
        "sft_args": msgspec.to_builtins(sft_args),
        "tokenizer": tokenizer_digest,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def store_prepared(
    cache_dir: Path, key: str, splits: Mapping[str, datasets.Dataset], meta: Mapping[str, Any]
) -> None:
    """Write an entry into a temporary folder, then rename it into place: readers never see half an entry."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cache_dir))
    try:
        for name, split in splits.items():
            split.save_to_disk(str(staging / name))
        record = {
            "version": PREPARE_VERSION,
            "splits": sorted(splits),
            "meta": dict(meta),
            "checksums": entry_checksums(staging),
        }
        (staging / _META).write_text(json.dumps(record))
        try:
            staging.rename(cache_dir / key)
        except OSError:  # another process stored the same entry first; theirs is as good as ours
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_prepared(
    cache_dir: Path, key: str, columns: Collection[str] = _COLUMNS
) -> tuple[dict[str, datasets.Dataset], dict[str, Any]] | None:
    """The stored splits and metadata, or None on a miss; a corrupt entry is removed so it gets rebuilt."""
    entry = cache_dir / key
    if not entry.is_dir():
        return None
    try:
        record = json.loads((entry / _META).read_text())
        if record["version"] != PREPARE_VERSION:
            raise ValueError(f"version {record['version']}")
        if damaged := _damaged_files(entry, record.get("checksums")):
            raise ValueError(f"{', '.join(damaged)} changed or truncated since it was stored (checksum)")
        splits = {name: datasets.load_from_disk(str(entry / name)) for name in record["splits"]}
        for name, split in splits.items():
            if not isinstance(split, datasets.Dataset) or not set(split.column_names) >= set(columns):
                raise ValueError(f"split {name} lacks the prepared columns")
        return splits, record["meta"]
    except Exception as exc:  # any damage (missing, truncated, foreign files) means: rebuild
        logger.warning("ignoring a damaged data cache entry %s (%s); preparing the data again", entry, exc)
        _discard(entry)
        return None


def entry_checksums(entry: Path) -> dict[str, str]:
    """sha256 of every file of an entry except its record: a bit flip or a truncation changes one of them.

    Arrow files are memory-mapped when loaded, so damage inside them would otherwise surface as a wrong example
    or a crash in the middle of training instead of a rebuild.
    """
    return {
        str(path.relative_to(entry)): _file_sha256(path)
        for path in sorted(entry.rglob("*"))
        if path.is_file() and path.name != _META
    }


def _damaged_files(entry: Path, checksums: Any) -> list[str]:
    """Names of the stored files that are missing or changed (files added later, e.g. by datasets, are fine)."""
    if not isinstance(checksums, dict) or not checksums:
        return ["(no checksums recorded)"]
    return [
        name
        for name, expected in checksums.items()
        if not (entry / name).is_file() or _file_sha256(entry / name) != expected
    ]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _discard(entry: Path) -> None:
    """Move the entry aside first so that a concurrent writer can rename a fresh one into its place."""
    trash = entry.with_name(f".trash-{entry.name}-{os.getpid()}")
    try:
        entry.rename(trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def _code_digest() -> str:
    digest = hashlib.sha256()
    for module in _CODE_MODULES:
        origin = getattr(importlib.import_module(module), "__file__", None)
        if origin and Path(origin).is_file():
            digest.update(Path(origin).read_bytes())
        else:
            digest.update(module.encode())
    return digest.hexdigest()


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "none"


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, msgspec.Struct):
        return msgspec.to_builtins(value)
    return repr(value)
