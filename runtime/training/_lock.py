"""One run per output_dir: an fcntl lock on `output_dir/.ftrun.lock`, held for the whole run by rank 0.

The kernel releases the lock whenever the holding process ends, SIGKILL and crashes included, so a lock file
left behind is never mistaken for a running job: the next run takes it over. The file names the holder (pid,
host, start time) so that a second run can say which one is running. A run that fails removes the lock file
and, when it created output_dir itself and left it empty, the folder too: nothing remains of a refused run.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from ftconfig.runtime.config._errors import ConfigError, ErrorItem
from ftconfig.runtime.config._files import writable_location_problem

__all__ = ["LOCK_NAME", "check_not_running", "output_dir_lock", "running_holder"]

LOCK_NAME = ".ftrun.lock"
OUTPUT_DIR = "$.training_args.output_dir"
logger = logging.getLogger(__name__)
# Lock files this process holds: asking again from the same process is not "another run".
_HELD: set[Path] = set()


def _holder_text() -> str:
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started}) + "\n"


def _describe_holder(path: Path) -> str:
    """'pid 123 on host h, started ...' from a lock file (whatever is readable of it)."""
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {holder['pid']} on host {holder['host']}, started {holder['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not yet said who it is"


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _still_linked(fd: int, path: Path) -> bool:
    """Whether `path` still names the file `fd` has open (a finishing run unlinks it after releasing)."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _in_use_error(output_dir: Path, path: Path) -> ConfigError:
    return ConfigError(
        ErrorItem(
            OUTPUT_DIR,
            f"{output_dir} is in use by another ftrun ({_describe_holder(path)})",
            "Wait for it to finish, stop it, or choose another output_dir.",
        )
    )


def running_holder(output_dir: Path) -> str | None:
    """Who else holds the lock of output_dir now, or None; writes nothing (the dry run asks this)."""
    path = output_dir / LOCK_NAME
    if path.absolute() in _HELD:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if _try_lock(fd):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        return _describe_holder(path)
    finally:
        os.close(fd)


def check_not_running(output_dir: Path) -> None:
    """ConfigError when another run holds output_dir (for the dry run, which takes no lock)."""
    if running_holder(output_dir) is not None:
        raise _in_use_error(output_dir, output_dir / LOCK_NAME)


def _create_output_dir(output_dir: Path) -> list[Path]:
    """mkdir -p output_dir; the folders it created, outermost first (removed again if the run fails)."""
    problem = writable_location_problem(output_dir)
    if problem is not None:
        raise ConfigError(ErrorItem(OUTPUT_DIR, problem))
    missing = [folder for folder in [output_dir, *output_dir.parents] if not folder.exists()]
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(ErrorItem(OUTPUT_DIR, f"cannot create {output_dir} ({exc.strerror})")) from None
    return list(reversed(missing))


@contextlib.contextmanager
def output_dir_lock(output_dir: Path) -> Iterator[None]:
    """Hold output_dir for this run; a second run exits 2 at once, naming the one that holds it."""
    created = _create_output_dir(output_dir)
    path = output_dir / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(
                ErrorItem(OUTPUT_DIR, f"cannot write in {output_dir} ({exc.strerror})")
            ) from None
        if not _try_lock(fd):
            os.close(fd)
            raise _in_use_error(output_dir, path)
        if _still_linked(fd, path):
            break
        os.close(fd)  # locked a file a finishing run had just removed; lock the new one
    try:
        stale = os.fstat(fd).st_size > 0
        if stale:
            logger.warning(
                "taking over %s: the run that wrote it (%s) has ended", path, _describe_holder(path)
            )
        os.ftruncate(fd, 0)
        os.write(fd, _holder_text().encode())
    except BaseException:
        os.close(fd)
        raise
    succeeded = False
    _HELD.add(path.absolute())
    try:
        yield
        succeeded = True
    finally:
        _HELD.discard(path.absolute())
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
        if not succeeded:
            for folder in reversed(created):  # innermost first; only if the failed run left them empty
                with contextlib.suppress(OSError):
                    folder.rmdir()
