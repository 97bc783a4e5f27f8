"""What kind of file a path is, checked before opening it: a FIFO or device would block a read forever."""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["COMPRESSED_MAGIC", "compression_of", "special_file_problem", "writable_location_problem"]

# Leading bytes of the compressed formats a data file is most often mistaken for.
COMPRESSED_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"PK\x03\x04": "zip",
}


def special_file_problem(path: Path) -> str | None:
    """Why `path` cannot be read as a plain file without blocking (FIFO, socket, device); None otherwise.

    A missing path or a folder is left to the reader, which reports those in its own words.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kind = (
        "a named pipe (FIFO)"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "not a regular file"
    )
    return f"{path} is {kind}, not a regular file; reading it could wait forever"


def compression_of(raw: bytes) -> str | None:
    """The compression format whose magic bytes start `raw`, or None."""
    return next((name for magic, name in COMPRESSED_MAGIC.items() if raw.startswith(magic)), None)


def writable_location_problem(folder: Path) -> str | None:
    """Why a folder cannot be created or written at `folder`, found without writing anything; None if it can.

    It is a file; a folder above it is a file; or the nearest existing folder above it is read-only.
    """
    for place in [folder, *folder.parents]:
        if not place.exists():
            continue
        if not place.is_dir():
            if place == folder:
                return f"{folder} is a file, not a folder"
            return f"{place} is a file, so {folder} cannot be a folder"
        if not os.access(place, os.W_OK | os.X_OK):
            return f"{place} is not writable"
        return None
    return None
