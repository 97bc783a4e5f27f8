"""One run per output_dir: the lock refuses a second holder at once, survives nothing of a killed one, and a
refused run leaves no trace. The holder is a real second process (the lock is per process)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ftconfig.runtime.config._errors import ConfigError
from ftconfig.runtime.training._lock import LOCK_NAME, output_dir_lock, running_holder

HOLDER = """
import sys, time
from pathlib import Path
from ftconfig.runtime.training._lock import output_dir_lock
with output_dir_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""


def start_holder(output_dir: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(output_dir)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_holder_is_refused_at_once_naming_the_running_one_and_a_killed_holder_is_taken_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    output_dir = tmp_path / "out"
    holder = start_holder(output_dir)
    try:
        assert running_holder(output_dir) is not None
        started = time.monotonic()
        with pytest.raises(ConfigError) as refused, output_dir_lock(output_dir):
            pytest.fail("two holders of one output_dir")
        assert time.monotonic() - started < 1.0
        message = str(refused.value)
        assert "$.training_args.output_dir" in message
        assert f"in use by another ftrun (pid {holder.pid} on host" in message
        assert (output_dir / LOCK_NAME).exists(), "the refused run removed the holder's lock file"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # SIGKILL leaves the file behind, but the kernel released the lock: it is stale, and taken over.
    assert (output_dir / LOCK_NAME).exists()
    assert running_holder(output_dir) is None
    with caplog.at_level(logging.WARNING, logger="ftconfig"), output_dir_lock(output_dir):
        assert f'"pid": {os.getpid()}' in (output_dir / LOCK_NAME).read_text()
    assert f"(pid {holder.pid} on host" in caplog.text
    assert "has ended" in caplog.text
    assert not (output_dir / LOCK_NAME).exists()
    assert output_dir.is_dir(), "a successful run keeps its output_dir"


def test_a_run_that_fails_inside_the_lock_leaves_neither_lock_file_nor_the_folders_it_created(
    tmp_path: Path,
) -> None:
    output_dir = tmp_path / "new" / "out"
    with pytest.raises(ConfigError), output_dir_lock(output_dir):
        raise ConfigError("a user mistake found after the lock was taken")
    assert list(tmp_path.iterdir()) == []


def test_a_run_that_fails_inside_an_existing_output_dir_keeps_the_folder_and_removes_only_the_lock(
    tmp_path: Path,
) -> None:
    (tmp_path / "checkpoint-4").mkdir()
    with pytest.raises(KeyboardInterrupt), output_dir_lock(tmp_path):
        raise KeyboardInterrupt
    assert [path.name for path in tmp_path.iterdir()] == ["checkpoint-4"]


@pytest.mark.parametrize("blocker", ["output_dir", "parent"])
def test_an_output_dir_that_is_a_file_or_under_a_file_is_a_config_error_naming_the_path(
    tmp_path: Path, blocker: str
) -> None:
    (tmp_path / "file").write_text("not a folder\n")
    output_dir = tmp_path / "file" if blocker == "output_dir" else tmp_path / "file" / "out"
    with pytest.raises(ConfigError) as refused, output_dir_lock(output_dir):
        pytest.fail("locked a folder that cannot exist")
    assert "$.training_args.output_dir" in str(refused.value)
    assert f"{tmp_path / 'file'} is a file" in str(refused.value)


def test_the_dry_run_reports_a_running_job_in_its_output_dir_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ftconfig._ftrun_cli import main
    from tests.helpers import run_entry_point, tiny_run_document, tree_snapshot, write_yaml_12

    output_dir = tmp_path / "out"
    config = tmp_path / "config.yaml"
    write_yaml_12(config, tiny_run_document(output_dir))
    holder = start_holder(output_dir)
    try:
        before = tree_snapshot(tmp_path)
        code, output = run_entry_point(main, ["ftrun", str(config), "--dry-run"], monkeypatch, capsys)
        assert code == 2, output
        assert f"in use by another ftrun (pid {holder.pid}" in output
        assert "Traceback" not in output
        assert tree_snapshot(tmp_path) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
