"""A mistyped model path or an unusable Hub fails at once, with one message, and never retries the Hub.

These run the real `ftrun` with the Hub as this machine really has it (no network) or as a local socket that
accepts connections and never answers (a black-holed network), and offline mode off unless a test turns it on.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import EXAMPLES, REPO_ROOT, tiny_run_document

pytestmark = pytest.mark.slow

# Five retries with back-off took about 40 s per file; an answer in seconds shows that no retry loop ran.
# (The target is under two seconds of work; the bound leaves room for a loaded machine's Python start-up.)
FAST_S = 10.0


def online_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    return {**env, **extra}


def run_ftrun(
    config: Path, *args: str, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "ftconfig", str(config), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=REPO_ROOT,
        env=env,
    )
    return result, time.monotonic() - started


def write_config(tmp_path: Path, **run_conf: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(tiny_run_document(tmp_path / "out", run_conf=run_conf)))
    return path


@pytest.fixture
def silent_hub() -> Iterator[str]:
    """An endpoint whose connections open (the kernel accepts them) but never get an answer."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


def test_mistyped_local_path_fails_at_once_without_asking_the_hub(tmp_path: Path) -> None:
    config = write_config(tmp_path, model="examples/tiny-lama")
    result, seconds = run_ftrun(config, "--dry-run", env=online_env())
    assert result.returncode == 2, result.stderr
    assert "$.run_conf.model: no model folder at 'examples/tiny-lama'" in result.stderr
    assert "Did you mean 'tiny-llama'?" in result.stderr
    assert "huggingface.co" not in result.stderr
    assert "Retry" not in result.stderr
    assert "Traceback" not in result.stderr
    assert seconds < FAST_S


def test_hub_id_with_no_network_fails_at_once_naming_the_unreachable_hub(tmp_path: Path) -> None:
    config = write_config(tmp_path, model="example-org/not-cached-model")
    result, seconds = run_ftrun(config, "--dry-run", env=online_env(HF_HUB_CACHE=str(tmp_path / "hub")))
    assert result.returncode == 2, result.stderr
    assert "$.run_conf.model: 'example-org/not-cached-model' is not a local folder" in result.stderr
    assert "cannot be reached" in result.stderr
    assert "Retry" not in result.stderr
    assert result.stderr.count("invalid config") == 1
    assert seconds < FAST_S


def test_hub_that_never_answers_is_given_up_after_a_short_probe(tmp_path: Path, silent_hub: str) -> None:
    config = write_config(tmp_path, model="example-org/not-cached-model")
    env = online_env(HF_ENDPOINT=silent_hub, HF_HUB_CACHE=str(tmp_path / "hub"))
    result, seconds = run_ftrun(config, "--dry-run", env=env)
    assert result.returncode == 2, result.stderr
    assert f"the Hub ({silent_hub}) cannot be reached" in result.stderr
    assert "Retry" not in result.stderr
    assert seconds < FAST_S


def test_offline_mode_with_an_uncached_hub_id_says_so(tmp_path: Path) -> None:
    config = write_config(tmp_path, model="example-org/not-cached-model")
    env = online_env(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hub"))
    result, seconds = run_ftrun(config, "--dry-run", env=env)
    assert result.returncode == 2, result.stderr
    assert "offline mode is on (HF_HUB_OFFLINE)" in result.stderr
    assert seconds < FAST_S


def cache_tiny_model(hub_cache: Path, repo_id: str) -> None:
    """The shipped tiny model laid out as huggingface_hub's cache holds a downloaded repository."""
    revision = "0" * 40
    repo = hub_cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    shutil.copytree(EXAMPLES / "tiny-llama", repo / "snapshots" / revision)


def test_cached_hub_model_is_used_from_the_cache_when_the_hub_never_answers(
    tmp_path: Path, silent_hub: str
) -> None:
    cache_tiny_model(tmp_path / "hub", "example-org/tiny-llama")
    config = write_config(tmp_path, model="example-org/tiny-llama")
    env = online_env(HF_ENDPOINT=silent_hub, HF_HUB_CACHE=str(tmp_path / "hub"))
    result, seconds = run_ftrun(config, "--dry-run", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert "loading from the local cache only" in result.stderr
    assert "Retry" not in result.stderr
    assert '"train_examples"' in result.stdout
    assert seconds < 120
