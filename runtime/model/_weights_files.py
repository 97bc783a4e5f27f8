"""Cheap integrity checks of weight and state files, reading headers and directories only (never the tensors).

A save cut short (a kill, a full disk) or a damaged copy leaves files that the libraries only reject while
loading them, deep inside training set-up and with a traceback. A safetensors file states its own length in
its header; a torch.save file is a zip archive whose central directory sits at its end. Either check catches a
truncated file in microseconds, so a run can skip a damaged checkpoint or name the damaged file up front.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

__all__ = ["damaged_file", "first_damaged_file"]

_TORCH_SUFFIXES = {".pt", ".pth", ".bin"}
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header


def damaged_file(path: Path) -> str | None:
    """Why a .safetensors or torch.save file is damaged (truncated, not that format), or None when it looks whole."""
    if path.suffix == ".safetensors":
        return _safetensors_problem(path)
    if path.suffix in _TORCH_SUFFIXES:
        return _torch_zip_problem(path)
    return None


def first_damaged_file(folder: Path) -> tuple[Path, str] | None:
    """The first damaged weights/state file directly in `folder` (sorted by name), with the reason."""
    for path in sorted(folder.iterdir()):
        if path.is_file() and (problem := damaged_file(path)) is not None:
            return path, problem
    return None


def _safetensors_problem(path: Path) -> str | None:
    try:
        size = path.stat().st_size
        with path.open("rb") as stream:
            prefix = stream.read(8)
            if len(prefix) < 8:
                return f"truncated ({size} bytes, not even a safetensors header)"
            (header_size,) = struct.unpack("<Q", prefix)
            if header_size > min(_MAX_HEADER, size - 8):
                return f"truncated or not safetensors (header of {header_size} bytes in a {size}-byte file)"
            header = json.loads(stream.read(header_size))
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    except (ValueError, UnicodeDecodeError):
        return "damaged safetensors header (not JSON)"
    if not isinstance(header, dict):
        return "damaged safetensors header"
    ends = [
        entry["data_offsets"][1]
        for name, entry in header.items()
        if name != "__metadata__" and isinstance(entry, dict) and isinstance(entry.get("data_offsets"), list)
    ]
    expected = 8 + header_size + max(ends, default=0)
    if size < expected:
        return f"truncated ({size} of {expected} bytes)"
    return None


def _torch_zip_problem(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            archive.infolist()
    except zipfile.BadZipFile:
        if _is_legacy_pickle(path):
            return None  # torch.save(_use_new_zipfile_serialization=False): no cheap check possible
        return "truncated or damaged (its zip directory is unreadable)"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    return None


def _is_legacy_pickle(path: Path) -> bool:
    try:
        with path.open("rb") as stream:
            return stream.read(2) == b"\x80\x02"  # pickle protocol 2, the old torch.save format
    except OSError:
        return False
