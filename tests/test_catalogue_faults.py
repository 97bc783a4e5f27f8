"""The catalogue's fault tier: real `python -m ftconfig` processes meeting concurrency, refused full runs, signals
and full disks. Each case checks the exit code, one clear line instead of a traceback, and what is left on disk.

These start processes and most train the tiny model for a few steps, so they are marked slow.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import EXAMPLES, MAX_STEPS, RUN_TIMEOUT_S, fault_document, start_ftrun, with_changes


def write_document(directory: Path, name: str, document: dict) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
    return process.returncode, stderr


@pytest.mark.slow
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


def _can_mount_a_small_disk() -> bool:
    """A user+mount namespace lets an unprivileged process mount a size-limited tmpfs (Linux)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


DISK_FULL_SCRIPT = """
set -u
mount -t tmpfs -o size=3m tmpfs "$DISK"
"$PYTHON" -m ftconfig "$CONFIG" 2> "$LOGS/full.err"
echo $? > "$LOGS/full.rc"
ls "$DISK/out" > "$LOGS/full.ls"
mount -o remount,size=32m "$DISK"
"$PYTHON" -m ftconfig "$CONFIG" 2> "$LOGS/freed.err"
echo $? > "$LOGS/freed.rc"
cp "$DISK/out/trainer_state.json" "$LOGS/trainer_state.json" 2>/dev/null || true
"""


@pytest.mark.slow
@pytest.mark.skipif(not _can_mount_a_small_disk(), reason="needs unshare -rm to mount a small tmpfs")
def test_a_disk_full_while_checkpointing_exits_1_naming_the_place_and_auto_resume_finishes_after_freeing_space(
    tmp_path: Path,
) -> None:
    """3 MB hold two checkpoints of the tiny model (1.4 MB each) but not the third: the third save fails."""
    disk, logs = tmp_path / "disk", tmp_path / "logs"
    disk.mkdir()
    logs.mkdir()
    config = write_document(tmp_path, "run", fault_document(disk / "out"))
    environment = {**os.environ, "DISK": str(disk), "LOGS": str(logs), "CONFIG": str(config)}
    environment["PYTHON"] = sys.executable
    subprocess.run(
        ["unshare", "-rm", "sh", "-c", DISK_FULL_SCRIPT],
        env=environment,
        timeout=2 * RUN_TIMEOUT_S,
        check=True,
    )
    full_stderr = (logs / "full.err").read_text()
    assert (logs / "full.rc").read_text().strip() == "1", full_stderr[-3000:]
    assert "Traceback" not in full_stderr
    assert "No space left on device" in full_stderr
    assert f"while writing under {disk / 'out'}" in full_stderr
    assert "resume_from_checkpoint: auto" in full_stderr
    assert "checkpoint-final" not in (logs / "full.ls").read_text().split()
    freed_stderr = (logs / "freed.err").read_text()
    assert (logs / "freed.rc").read_text().strip() == "0", freed_stderr[-3000:]
    assert "resuming from" in freed_stderr
    state = json.loads((logs / "trainer_state.json").read_text())
    assert state["global_step"] == MAX_STEPS


PEAK_RSS = """
import resource, subprocess, sys
result = subprocess.run([sys.executable, "-m", "ftconfig", *sys.argv[1:]], capture_output=True, text=True)
sys.stdout.write(result.stdout)
sys.stderr.write(result.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, file=sys.stderr)
sys.exit(result.returncode)
"""


def dry_run_peak_mib(config: Path) -> tuple[dict, int]:
    """The --dry-run --json plan and the peak resident memory of its process, in MiB."""
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(config), "--dry-run", "--json"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout), int(result.stderr.strip().splitlines()[-1])


@pytest.mark.slow
def test_one_huge_conversation_is_dropped_before_tokenising_so_memory_stays_flat(tmp_path: Path) -> None:
    """A 40 MB row: once tokenised it would need gigabytes; bounded by characters it costs its own bytes."""
    rows = (EXAMPLES / "data" / "train.jsonl").read_text().splitlines()[:40]
    huge = json.dumps(
        {
            "messages": [
                {"role": "user", "content": "word " * 8_000_000},
                {"role": "assistant", "content": "ok"},
            ]
        }
    )
    small = tmp_path / "small.jsonl"
    small.write_text("\n".join(rows) + "\n")
    large = tmp_path / "large.jsonl"
    large.write_text("\n".join([*rows, huge]) + "\n")

    plans = {}
    for name, data in (("small", small), ("large", large)):
        document = fault_document(tmp_path / f"out-{name}")
        document["data_conf"]["training_data"] = {"type": "CONCATENATION", "datasets": [{"path": str(data)}]}
        plans[name] = dry_run_peak_mib(write_document(tmp_path, name, document))
    (small_plan, small_mib), (large_plan, large_mib) = plans["small"], plans["large"]
    assert large_plan["dropped_examples"] == small_plan["dropped_examples"] + 1
    assert large_plan["train_examples"] == small_plan["train_examples"]
    print(f"peak RSS: {small_mib} MiB without the 40 MB row, {large_mib} MiB with it")
    # The file itself is read whole (40 MB, decoded once more as text): a few hundred MiB at most, not gigabytes.
    assert large_mib - small_mib < 400


def _children(pid: int) -> list[int]:
    """The direct child processes of `pid` (the preparation workers, datasets' manager)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "exit_code", "to_group"),
    [(signal.SIGINT, 130, True), (signal.SIGTERM, 143, False)],
    ids=["ctrl-c-in-a-terminal", "sigterm-to-ftrun"],
)
def test_a_signal_during_data_preparation_with_workers_stops_cleanly_and_leaves_the_cache_usable(
    tmp_path: Path, signum: int, exit_code: int, to_group: bool
) -> None:
    rows = (EXAMPLES / "data" / "train.jsonl").read_text().splitlines()
    data = tmp_path / "big.jsonl"
    data.write_text("\n".join(rows * 250) + "\n")  # 100,000 conversations: preparation takes seconds
    output_dir = tmp_path / "out"
    document = fault_document(output_dir)
    document["data_conf"]["training_data"] = {"type": "CONCATENATION", "datasets": [{"path": str(data)}]}
    config = write_document(tmp_path, "run", document)
    cache = tmp_path / "cache"
    environment = {**os.environ, "FTCONFIG_CACHE_DIR": str(cache)}
    process = subprocess.Popen(
        [sys.executable, "-m", "ftconfig", str(config), "--num-preprocess-workers", "2"],
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stderr is not None
    seen = ""
    while "tokenising" not in seen:
        char = process.stderr.read(1)
        assert char, f"ftrun ended before preparing data:\n{seen[-3000:]}"
        seen += char
    time.sleep(0.5)
    workers = _children(process.pid)
    assert len(workers) >= 2, workers
    if to_group:
        os.killpg(process.pid, signum)  # what Ctrl-C does: every process of the foreground job gets SIGINT
    else:
        process.send_signal(signum)
    stderr = seen + process.communicate(timeout=RUN_TIMEOUT_S)[1]
    assert process.returncode == exit_code, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert f"stopped by {signal.Signals(signum).name}" in stderr
    time.sleep(0.5)
    assert [pid for pid in workers if Path(f"/proc/{pid}").exists()] == [], (
        "preparation workers outlived ftrun"
    )
    assert not output_dir.exists(), "the stopped run left its output_dir (or lock) behind"
    assert not cache.exists() or [path.name for path in cache.iterdir()] == []
    # The cache is unharmed: a dry run prepares and stores the data, and a second one reads it back.
    for expected in ("tokenised and cached", "loaded from the cache"):
        dry = subprocess.run(
            [sys.executable, "-m", "ftconfig", str(config), "--dry-run", "--num-preprocess-workers", "2"],
            capture_output=True,
            text=True,
            env=environment,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
        assert dry.returncode == 0, dry.stderr[-3000:]
        assert expected in dry.stderr


@pytest.mark.slow
@pytest.mark.skipif(not _can_mount_a_small_disk(), reason="needs unshare -rm to mount a small tmpfs")
def test_a_full_disk_under_the_data_cache_exits_1_naming_the_cache_and_keeps_no_half_entry(
    tmp_path: Path,
) -> None:
    cache, logs = tmp_path / "cache", tmp_path / "logs"
    cache.mkdir()
    logs.mkdir()
    config = write_document(tmp_path, "run", fault_document(tmp_path / "out"))
    script = (
        'mount -t tmpfs -o size=16k tmpfs "$CACHE" && '
        '"$PYTHON" -m ftconfig "$CONFIG" --dry-run 2> "$LOGS/err"; echo $? > "$LOGS/rc"; '
        'ls -A "$CACHE" > "$LOGS/ls"'
    )
    environment = {
        **os.environ,
        "CACHE": str(cache),
        "LOGS": str(logs),
        "CONFIG": str(config),
        "PYTHON": sys.executable,
        "FTCONFIG_CACHE_DIR": str(cache),
    }
    subprocess.run(["unshare", "-rm", "sh", "-c", script], env=environment, timeout=RUN_TIMEOUT_S, check=True)
    stderr = (logs / "err").read_text()
    assert (logs / "rc").read_text().strip() == "1", stderr[-3000:]
    assert "Traceback" not in stderr
    assert "No space left on device" in stderr and f"while writing under {cache}" in stderr
    assert (logs / "ls").read_text().split() == [], "a half-written cache entry was left behind"
