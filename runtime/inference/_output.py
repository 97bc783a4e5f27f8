"""Writing a result folder next to the run: refuse to overwrite, never touch the run, appear complete or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from ftconfig.runtime.config._errors import ErrorItem, UserError
from ftconfig.runtime.inference._run_dir import ModelSource

__all__ = ["check_output_folder", "staged_folder"]


def check_output_folder(output: Path, source: ModelSource, *, argument: str = "OUTPUT") -> None:
    """OUTPUT must be new (or an empty folder) and outside the run directory, which is never edited."""
    target = output.expanduser().resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(ErrorItem(argument, f"{output} already exists", "Choose a new folder"))
    inside = source.run_dir or source.checkpoint
    if target == inside.resolve() or inside.resolve() in target.parents:
        raise UserError(
            ErrorItem(argument, f"{output} is inside {inside}", "Write results outside the run directory")
        )


@contextlib.contextmanager
def staged_folder(output: Path) -> Iterator[Path]:
    """A temporary sibling of `output` to write into; renamed to `output` only when everything was written."""
    target = output.expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
        yield staging
        if target.is_dir():
            target.rmdir()  # checked empty before
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
