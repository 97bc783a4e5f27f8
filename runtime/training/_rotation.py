"""Checkpoint rotation that only ever deletes numbered checkpoints.

transformers 5 rotates `save_total_limit` by modification time over every `checkpoint-*` folder, so it deletes
`checkpoint-new-basemodel` (the grown base copy `sft_args.save_new_basemodel` asks for) and an earlier
`checkpoint-final`. ftconfig therefore hands transformers no limit and rotates `checkpoint-<N>` folders itself, by
step number.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ftconfig.runtime.training._checkpoints import numbered_checkpoints

__all__ = ["NumberedCheckpointRotation", "rotate_numbered_checkpoints"]

logger = logging.getLogger(__name__)


def rotate_numbered_checkpoints(output_dir: Path, *, keep: int, protect: str | None = None) -> list[Path]:
    """Delete the oldest checkpoint-<N> folders beyond `keep` (never the newest or `protect`); return them."""
    checkpoints = numbered_checkpoints(output_dir)
    protected = {checkpoints[-1].resolve()} if checkpoints else set()
    if protect:
        protected.add(Path(protect).resolve())
    deletable = [path for path in checkpoints if path.resolve() not in protected]
    excess = len(checkpoints) - max(keep, len(protected))
    doomed = deletable[: max(excess, 0)]
    for path in doomed:
        logger.info("deleting older checkpoint %s (save_total_limit=%d)", path, keep)
        shutil.rmtree(path, ignore_errors=True)
    return doomed


class NumberedCheckpointRotation(TrainerCallback):
    """Applies save_total_limit after each save, on the process that saves."""

    def __init__(self, keep: int) -> None:
        self.keep = keep

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if args.should_save:
            rotate_numbered_checkpoints(
                Path(args.output_dir), keep=self.keep, protect=state.best_model_checkpoint
            )
