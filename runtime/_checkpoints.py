"""Finding, resuming from and protecting checkpoints in output_dir."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ftconfig.runtime._errors import ConfigError, ErrorItem

CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")


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


def newest_checkpoint(output_dir: Path) -> Path | None:
    checkpoints = numbered_checkpoints(output_dir)
    return checkpoints[-1] if checkpoints else None


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
                    f"is true, but {output_dir} holds no checkpoint-<N> folder",
                    "Use 'auto' to resume only when a checkpoint exists.",
                )
            )
        return str(newest) if newest else False
    path = Path(setting)
    if not (path / "trainer_state.json").is_file():
        raise ConfigError(
            ErrorItem(
                location,
                f"{setting!r} is not a trainer checkpoint folder (no trainer_state.json)",
                "Give true, false, 'auto' or the path of a checkpoint-<N> folder.",
            )
        )
    return str(path)


def guard_output_dir(output_dir: Path, *, final_name: str, resume: str | bool, overwrite: bool) -> None:
    """Refuse to start a fresh run over an earlier one: its checkpoints would be lost or mixed with ours."""
    if resume or overwrite or not output_dir.is_dir():
        return
    earlier = [path.name for path in numbered_checkpoints(output_dir)]
    if (output_dir / final_name).exists():
        earlier.append(final_name)
    if earlier:
        raise ConfigError(
            ErrorItem(
                "$.training_args.output_dir",
                f"{output_dir} already holds a run ({', '.join(sorted(earlier))})",
                "Set run_conf.resume_from_checkpoint: auto to continue it, choose another output_dir, "
                "or pass --overwrite to replace it.",
            )
        )


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
