"""The catalogue's fault tier: real `python -m ftconfig` processes meeting concurrency, refused full runs, signals
and full disks. Each case checks the exit code, one clear line instead of a traceback, and what is left on disk.

These start processes and most train the tiny model for a few steps, so they are marked slow.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.test_catalogue import with_changes
from tests.test_faults import RUN_TIMEOUT_S, fault_document, start_ftrun


def write_document(directory: Path, name: str, document: dict) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
    return process.returncode, stderr


@pytest.mark.slow
@pytest.mark.integration
def test_two_runs_started_at_once_into_one_output_dir_one_trains_the_other_exits_2_naming_it(
    tmp_path: Path,
) -> None:
    output_dir = tmp_path / "shared"
    config = write_document(tmp_path, "run", fault_document(output_dir))
    first, second = start_ftrun(config), start_ftrun(config)
    results = {first.pid: finish(first), second.pid: finish(second)}
    codes = sorted(code for code, _ in results.values())
    assert codes == [0, 2], {pid: stderr[-2000:] for pid, (_, stderr) in results.items()}
    winner = next(pid for pid, (code, _) in results.items() if code == 0)
    _, refused = next(result for result in results.values() if result[0] == 2)
    assert "Traceback" not in refused
    assert "$.training_args.output_dir" in refused
    assert f"in use by another ftrun (pid {winner} on host" in refused
    assert (output_dir / "checkpoint-final").is_dir()
    assert not (output_dir / ".ftrun.lock").exists()


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "changes", "where"),
    [
        ("lora-rank-zero", {"peft_conf.peft_kwargs.r": 0}, "$.peft_conf.peft_kwargs"),
        (
            "lora-target-modules-match-nothing",
            {"peft_conf.peft_kwargs.target_modules": ["no_such_proj"]},
            "$.peft_conf.peft_kwargs",
        ),
    ],
)
def test_a_full_run_refused_for_a_peft_mistake_writes_nothing_not_even_the_grown_base_model(
    tmp_path: Path, name: str, changes: dict, where: str
) -> None:
    output_dir = tmp_path / "out"
    document = with_changes(fault_document(output_dir), changes)
    document["peft_conf"] = {"peft_type": "LORA", "peft_kwargs": {"r": 8, "target_modules": "all-linear"}}
    document = with_changes(document, changes)
    document["data_conf"]["chat_template_name"] = "chat-ml"  # adds tokens: a grown base model would be saved
    started = time.monotonic()
    code, stderr = finish(start_ftrun(write_document(tmp_path, name, document)))
    assert code == 2, stderr[-3000:]
    assert "Traceback" not in stderr
    assert where in stderr
    assert not output_dir.exists(), sorted(str(path) for path in output_dir.rglob("*"))
    print(f"{name}: refused in {time.monotonic() - started:.1f} s")
