"""Faults lose nothing: killed, interrupted and refused runs keep what they had; resuming gives the uninterrupted run.

The integration tests start `python -m ftconfig CONFIG` as real processes on the tiny model (NO_PEFT, 12 steps, a
checkpoint every 4), send real signals as soon as the first checkpoint is complete, and compare the outcome with one
uninterrupted run of the same config (a module fixture).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from ftconfig.runtime.config._errors import ConfigError
from ftconfig.runtime.training._checkpoints import resolve_resume
from ftconfig.runtime.training._output import replace_directory, write_json_atomic
from tests.helpers import (
    FIRST_CHECKPOINT,
    MAX_STEPS,
    SAVE_STEPS,
    fault_document,
    run_ftrun,
    signal_after_first_checkpoint,
    start_ftrun,
)


def write_config(directory: Path, output_dir: Path) -> Path:
    path = directory / f"{output_dir.name}.yaml"
    path.write_text(yaml.safe_dump(fault_document(output_dir), sort_keys=False))
    return path


def final_weights(output_dir: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(output_dir / "checkpoint-final" / "model.safetensors")


def max_abs_difference(first: dict[str, Any], second: dict[str, Any]) -> float:
    assert first.keys() == second.keys()
    return max(float((first[name].double() - second[name].double()).abs().max()) for name in first)


def trainer_state(output_dir: Path) -> dict[str, Any]:
    return dict(json.loads((output_dir / "trainer_state.json").read_text(encoding="utf-8")))


def logged_losses(state: dict[str, Any]) -> dict[int, float]:
    steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert len(steps) == len(set(steps)), f"a step was logged twice: {steps}"
    return {entry["step"]: entry["loss"] for entry in state["log_history"] if "loss" in entry}


def snapshot(directory: Path) -> dict[str, tuple[str, int]]:
    """Every file under a folder: content hash and modification time."""
    return {
        str(path.relative_to(directory)): (
            hashlib.sha256(path.read_bytes()).hexdigest(),
            path.stat().st_mtime_ns,
        )
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def assert_same_as_uninterrupted(output_dir: Path, uninterrupted: Path) -> float:
    """Same optimizer steps, same logged losses, same final weights; returns the largest weight difference."""
    import torch

    state, reference = trainer_state(output_dir), trainer_state(uninterrupted)
    assert state["global_step"] == reference["global_step"] == MAX_STEPS
    losses, reference_losses = logged_losses(state), logged_losses(reference)
    assert sorted(losses) == list(range(1, MAX_STEPS + 1))
    torch.testing.assert_close(
        torch.tensor([losses[step] for step in sorted(losses)]),
        torch.tensor([reference_losses[step] for step in sorted(losses)]),
    )
    difference = max_abs_difference(final_weights(output_dir), final_weights(uninterrupted))
    assert difference <= 1e-6, difference
    return difference


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output_dir of the same run, never interrupted."""
    directory = tmp_path_factory.mktemp("uninterrupted")
    output_dir = directory / "run"
    result = run_ftrun(write_config(directory, output_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    return output_dir


# --------------------------------------------------------------------------------------------------------------
# Killed, interrupted, resumed


@pytest.mark.slow
def test_a_run_killed_after_its_first_checkpoint_resumes_to_the_uninterrupted_steps_and_weights(
    uninterrupted: Path, tmp_path: Path
) -> None:
    output_dir = tmp_path / "killed"
    config = write_config(tmp_path, output_dir)
    returncode, _, _ = signal_after_first_checkpoint(start_ftrun(config), output_dir, signal.SIGKILL)
    assert returncode == -signal.SIGKILL
    assert not (output_dir / "checkpoint-final").exists()
    newest = max(int(path.name.split("-")[1]) for path in output_dir.glob("checkpoint-[0-9]*"))
    # A kill in the middle of the next save leaves a checkpoint without trainer_state.json (written last).
    half_saved = output_dir / f"checkpoint-{newest + SAVE_STEPS}"
    half_saved.mkdir()
    shutil.copy(output_dir / f"checkpoint-{newest}" / "model.safetensors", half_saved)

    resumed = run_ftrun(config)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"skipping {half_saved}: it is incomplete" in resumed.stderr
    assert f"resuming from {output_dir / f'checkpoint-{newest}'}" in resumed.stderr
    difference = assert_same_as_uninterrupted(output_dir, uninterrupted)
    print(f"resumed after SIGKILL at step {newest}: max |weight difference| = {difference:.3g}")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_sigint_and_sigterm_stop_with_one_line_no_final_checkpoint_and_auto_resume_finishes(
    signum: int, exit_code: int, uninterrupted: Path, tmp_path: Path
) -> None:
    output_dir = tmp_path / "interrupted"
    config = write_config(tmp_path, output_dir)
    returncode, stdout, stderr = signal_after_first_checkpoint(start_ftrun(config), output_dir, signum)
    assert returncode == exit_code, stderr[-3000:]
    assert "Traceback" not in stderr
    name = signal.Signals(signum).name
    assert stderr.strip().splitlines()[-1] == (
        f"ftrun: stopped by {name} before the run finished; "
        "continue it with run_conf.resume_from_checkpoint: auto"
    )
    assert "ftrun: done in" not in stdout
    names = {path.name for path in output_dir.iterdir()}
    assert not {name for name in names if "checkpoint-final" in name}, names  # neither final nor partial
    assert (output_dir / FIRST_CHECKPOINT / "trainer_state.json").is_file()

    resumed = run_ftrun(config)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr
    assert_same_as_uninterrupted(output_dir, uninterrupted)


# --------------------------------------------------------------------------------------------------------------
# A finished run: refused, overwritten, or resumed


def copy_of(uninterrupted: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the finished run and a config that points at it."""
    output_dir = tmp_path / "finished"
    shutil.copytree(uninterrupted, output_dir)
    return output_dir, write_config(tmp_path, output_dir)


@pytest.mark.slow
def test_a_fresh_run_over_a_finished_one_is_refused_with_exit_2_and_changes_nothing(
    uninterrupted: Path, tmp_path: Path
) -> None:
    output_dir, config = copy_of(uninterrupted, tmp_path)
    before = snapshot(output_dir)
    result = run_ftrun(config, "--set", "run_conf.resume_from_checkpoint=false")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert (
        f"$.training_args.output_dir: {output_dir} already holds a run "
        "(checkpoint-12, checkpoint-4, checkpoint-8, checkpoint-final)" in result.stderr
    )
    assert "resume_from_checkpoint: auto" in result.stderr and "--overwrite" in result.stderr
    assert snapshot(output_dir) == before


@pytest.mark.slow
def test_overwrite_replaces_the_finished_run_its_final_checkpoint_and_its_numbered_checkpoints(
    uninterrupted: Path, tmp_path: Path
) -> None:
    output_dir, config = copy_of(uninterrupted, tmp_path)
    old_weights = final_weights(output_dir)
    result = run_ftrun(
        config,
        "--overwrite",
        "--set",
        "run_conf.resume_from_checkpoint=false",
        "--set",
        f"training_args.max_steps={SAVE_STEPS}",
        "--set",
        "training_args.learning_rate=0.01",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming" not in result.stderr
    # The old run's checkpoint-8 and -12 are gone: left behind, 'auto' would later resume the old run from them.
    assert sorted(path.name for path in output_dir.glob("checkpoint-*")) == [
        FIRST_CHECKPOINT,
        "checkpoint-final",
    ]
    assert trainer_state(output_dir)["global_step"] == SAVE_STEPS
    assert max_abs_difference(final_weights(output_dir), old_weights) > 1e-3


@pytest.mark.slow
def test_resuming_a_finished_run_trains_no_extra_step_and_rewrites_its_final_checkpoint(
    uninterrupted: Path, tmp_path: Path
) -> None:
    output_dir, config = copy_of(uninterrupted, tmp_path)
    final = output_dir / "checkpoint-final"
    old_inode = (final / "model.safetensors").stat().st_ino
    # What a run killed during its final save leaves beside the checkpoint: a half-written copy.
    partial = output_dir / ".checkpoint-final.partial"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"half")
    result = run_ftrun(config)
    assert result.returncode == 0, result.stderr[-3000:]
    # transformers on its own would take one more optimizer step (to 13) from a checkpoint at max_steps.
    assert f"checkpoint-{MAX_STEPS} already reached max_steps ({MAX_STEPS})" in result.stderr
    assert not partial.exists()
    assert (final / "model.safetensors").stat().st_ino != old_inode
    assert_same_as_uninterrupted(output_dir, uninterrupted)


# --------------------------------------------------------------------------------------------------------------
# The pieces: which checkpoint to resume from, atomic writes


def make_checkpoint(output_dir: Path, step: int, state: str | None) -> Path:
    path = output_dir / f"checkpoint-{step}"
    path.mkdir(parents=True)
    import torch
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(4)}, path / "model.safetensors")  # whole: only the state file varies
    if state is not None:
        (path / "trainer_state.json").write_text(state)
    return path


def test_resume_auto_skips_newer_checkpoints_that_a_kill_left_incomplete(tmp_path: Path) -> None:
    complete = make_checkpoint(tmp_path, 4, json.dumps({"global_step": 4}))
    make_checkpoint(tmp_path, 8, None)  # killed before trainer_state.json
    make_checkpoint(tmp_path, 12, '{"global_step": 1')  # killed while writing it
    assert resolve_resume("auto", tmp_path) == str(complete)
    assert resolve_resume(True, tmp_path) == str(complete)


def test_resume_true_or_a_path_to_an_incomplete_checkpoint_is_a_config_error(tmp_path: Path) -> None:
    incomplete = make_checkpoint(tmp_path, 8, None)
    assert resolve_resume("auto", tmp_path) is False
    with pytest.raises(
        ConfigError, match=r"holds no checkpoint-<N> folder with a readable trainer_state\.json"
    ):
        resolve_resume(True, tmp_path)
    with pytest.raises(ConfigError, match="not a trainer checkpoint folder"):
        resolve_resume(str(incomplete), tmp_path)


def test_write_json_atomic_leaves_the_previous_file_and_no_temporary_when_writing_fails(
    tmp_path: Path,
) -> None:
    path = tmp_path / "resolved_config.json"
    write_json_atomic(path, {"version": 1})
    previous = path.read_bytes()
    # json.dump has already written part of the document when it meets the value it cannot encode.
    with pytest.raises(TypeError):
        write_json_atomic(path, {"version": 2, "padding": "x" * 100_000, "bad": object()})
    assert path.read_bytes() == previous
    assert [child.name for child in tmp_path.iterdir()] == [path.name]


def test_write_json_atomic_survives_an_interrupt_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "resolved_config.json"
    write_json_atomic(path, {"version": 1})

    def interrupted_fsync(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic(path, {"version": 2})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"version": 1}
    assert [child.name for child in tmp_path.iterdir()] == [path.name]
    write_json_atomic(path, {"version": 3})
    assert json.loads(path.read_text()) == {"version": 3}


def make_folder(path: Path, files: dict[str, str]) -> Path:
    path.mkdir()
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def folder_contents(path: Path) -> dict[str, str]:
    return {child.name: child.read_text() for child in path.iterdir()}


def test_replace_directory_swaps_in_the_complete_new_folder_and_keeps_nothing_of_the_old(
    tmp_path: Path,
) -> None:
    target = make_folder(tmp_path / "checkpoint-final", {"model.safetensors": "old", "stale.txt": "old"})
    source = make_folder(tmp_path / ".checkpoint-final.partial", {"model.safetensors": "new"})
    replace_directory(source, target)
    assert folder_contents(target) == {"model.safetensors": "new"}
    assert sorted(child.name for child in tmp_path.iterdir()) == ["checkpoint-final"]
    # And into an empty place.
    fresh = make_folder(tmp_path / ".other.partial", {"a": "1"})
    replace_directory(fresh, tmp_path / "other")
    assert folder_contents(tmp_path / "other") == {"a": "1"}


def test_replace_directory_keeps_the_old_folder_when_the_new_one_cannot_move_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = make_folder(tmp_path / "checkpoint-final", {"model.safetensors": "old"})
    with pytest.raises(FileNotFoundError):
        replace_directory(tmp_path / ".checkpoint-final.partial", target)  # never written
    assert folder_contents(target) == {"model.safetensors": "old"}

    source = make_folder(tmp_path / ".checkpoint-final.partial", {"model.safetensors": "new"})
    real_replace = os.replace
    calls: list[tuple[Any, Any]] = []

    def failing_second_rename(src: Any, dst: Any) -> None:
        calls.append((src, dst))
        if len(calls) == 2:
            raise OSError("disk gone")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_second_rename)
    with pytest.raises(OSError, match="disk gone"):
        replace_directory(source, target)
    monkeypatch.undo()
    assert folder_contents(target) == {"model.safetensors": "old"}
    assert folder_contents(source) == {"model.safetensors": "new"}
