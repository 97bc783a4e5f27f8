"""Finding, resuming from and protecting checkpoints in output_dir."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from ftconfig.runtime.config._errors import ConfigError, ErrorItem
from ftconfig.runtime.model._weights_files import first_damaged_file

__all__ = [
    "CHECKPOINT_NAME",
    "TRAINER_STATE_NAME",
    "checkpoint_step",
    "config_changes",
    "guard_output_dir",
    "newest_checkpoint",
    "numbered_checkpoints",
    "remove_numbered_checkpoints",
    "resolve_resume",
]

CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE_NAME = "trainer_state.json"
logger = logging.getLogger(__name__)


def numbered_checkpoints(output_dir: Path) -> list[Path]:
    """checkpoint-<N> folders, oldest first (checkpoint-final and checkpoint-new-basemodel do not count)."""
    if not output_dir.is_dir():
        return []
    found = [
        (int(match[1]), path)
        for path in output_dir.iterdir()
        if path.is_dir() and (match := CHECKPOINT_NAME.match(path.name))
    ]
    return [path for _, path in sorted(found)]


def checkpoint_step(path: Path) -> int | None:
    """The global step a checkpoint folder finished at; None when it is incomplete.

    transformers writes trainer_state.json last, after weights, optimizer, scheduler and RNG states, so a
    folder without a readable one is what a process killed while saving leaves behind.
    """
    try:
        state = json.loads((path / TRAINER_STATE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    step = state.get("global_step") if isinstance(state, dict) else None
    return step if isinstance(step, int) else None


def newest_checkpoint(output_dir: Path) -> Path | None:
    """The newest intact checkpoint-<N>; newer incomplete or damaged ones (a save cut short, a truncated file)
    are skipped with a warning that names them."""
    for path in reversed(numbered_checkpoints(output_dir)):
        if checkpoint_step(path) is None:
            logger.warning("skipping %s: it is incomplete (no readable %s)", path, TRAINER_STATE_NAME)
            continue
        damage = first_damaged_file(path)
        if damage is not None:
            logger.warning(
                "skipping %s: %s is %s; falling back to an older checkpoint", path, damage[0].name, damage[1]
            )
            continue
        return path
    return None


def resolve_resume(setting: bool | str, output_dir: Path) -> str | bool:
    """What to hand to Trainer.train(resume_from_checkpoint=...), checked before any weights load.

    "auto": the newest checkpoint-<N>, or False to start fresh. true: the newest one, which must exist.
    false: start fresh. Any other string: that checkpoint folder, which must exist.
    """
    location = "$.run_conf.resume_from_checkpoint"
    if setting is False:
        return False
    if setting is True or setting == "auto":
        newest = newest_checkpoint(output_dir)
        if newest is None and setting is True:
            raise ConfigError(
                ErrorItem(
                    location,
                    f"is true, but {output_dir} holds no checkpoint-<N> folder with a readable {TRAINER_STATE_NAME}",
                    "Use 'auto' to resume only when a checkpoint exists.",
                )
            )
        return str(newest) if newest else False
    path = Path(setting)
    if checkpoint_step(path) is None:
        raise ConfigError(
            ErrorItem(
                location,
                f"{setting!r} is not a trainer checkpoint folder (no readable {TRAINER_STATE_NAME})",
                "Give true, false, 'auto' or the path of a checkpoint-<N> folder.",
            )
        )
    damage = first_damaged_file(path)
    if damage is not None:
        raise ConfigError(
            ErrorItem(
                location,
                f"{damage[0]} is {damage[1]}",
                "Resume from an older checkpoint-<N>, or use 'auto', which skips damaged checkpoints.",
            )
        )
    return str(path)


def guard_output_dir(
    output_dir: Path, *, final_name: str, resume: str | bool, overwrite: bool, setting: bool | str = False
) -> None:
    """Refuse to start a fresh run over an earlier one: its checkpoints would be lost or mixed with ours.

    `setting` is run_conf.resume_from_checkpoint as configured: when it already is 'auto' and nothing could be
    resumed, the message says why (only incomplete checkpoints) instead of suggesting 'auto'.
    """
    if resume or overwrite or not output_dir.is_dir():
        return
    numbered = numbered_checkpoints(output_dir)
    earlier = [path.name for path in numbered]
    if (output_dir / final_name).exists():
        earlier.append(final_name)
    if not earlier:
        return
    location = "$.training_args.output_dir"
    if setting == "auto" and numbered and not (output_dir / final_name).exists():
        raise ConfigError(
            ErrorItem(
                location,
                f"{output_dir} holds only incomplete or damaged checkpoints ({', '.join(earlier)}: a save "
                "that was cut short, e.g. by a full disk or a kill; the warnings above name what is wrong), so "
                "resume_from_checkpoint: auto has nothing to continue from",
                "Delete those folders (or pass --overwrite, which deletes them) to start afresh, "
                "or choose another output_dir.",
            )
        )
    hint = (
        "Pass --overwrite to replace it, or choose another output_dir."
        if setting == "auto"
        else "Set run_conf.resume_from_checkpoint: auto to continue it, choose another output_dir, "
        "or pass --overwrite to replace it."
    )
    raise ConfigError(
        ErrorItem(location, f"{output_dir} already holds a run ({', '.join(sorted(earlier))})", hint)
    )


def remove_numbered_checkpoints(output_dir: Path) -> list[Path]:
    """Delete an earlier run's checkpoint-<N> folders before a fresh run (--overwrite) writes its own.

    Left in place they would be taken for the new run's: resume "auto" would continue the old run from a higher
    step, and save_total_limit would keep them as the newest and delete the new run's checkpoints instead.
    """
    doomed = numbered_checkpoints(output_dir)
    for path in doomed:
        logger.info("--overwrite: deleting %s of the earlier run", path)
        shutil.rmtree(path)
    return doomed


def config_changes(previous: dict[str, Any], current: dict[str, Any], prefix: str = "$") -> list[str]:
    """Lines 'path: old -> new' for values that differ between two resolved configs (for resume reports)."""
    changes = []
    for key in sorted(set(previous) | set(current)):
        old, new = previous.get(key), current.get(key)
        path = f"{prefix}.{key}"
        if isinstance(old, dict) and isinstance(new, dict):
            changes += config_changes(old, new, path)
        elif old != new:
            changes.append(f"{path}: {json.dumps(old)} -> {json.dumps(new)}")
    return changes
