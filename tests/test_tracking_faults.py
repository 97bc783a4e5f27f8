"""Tracking faults: a URI that is not MLflow is refused before training naming where it came from, and a server
that dies in the middle of a run costs a warning, never the run (real `mlflow server`, killed with SIGKILL)."""

from __future__ import annotations

import http.server
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ftconfig.runtime.config._errors import ConfigError
from ftconfig.runtime.tracking._mlflow import start_tracking
from ftconfig.runtime.tracking._plan import resolve_tracking
from tests.helpers import FIRST_CHECKPOINT, RUN_TIMEOUT_S, fault_document, make_config, start_ftrun
from tests.mlflow_server import running_mlflow_server


class _NotMlflow(http.server.BaseHTTPRequestHandler):
    """Answers every request like an ordinary web server: an HTML 404 page."""

    def _answer(self) -> None:
        body = b"<html><body>Not Found</body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def not_mlflow_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotMlflow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_a_uri_that_answers_http_but_is_not_mlflow_is_a_config_error_naming_the_flag(
    not_mlflow_server: str,
) -> None:
    plan = resolve_tracking(make_config(None), {}, mlflow_server_uri=not_mlflow_server)
    assert plan is not None
    environ: dict[str, str] = {}
    started = time.monotonic()
    with pytest.raises(ConfigError) as refused:
        start_tracking(plan, {"config": {}, "resolved": {}}, is_main=True, environ=environ)
    assert time.monotonic() - started < 60
    assert refused.value.items[0].location == "--mlflow-server-uri"
    assert not_mlflow_server in str(refused.value)
    assert environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"  # bounded, since the user set nothing


@pytest.mark.slow
@pytest.mark.slow
def test_a_server_killed_mid_run_costs_a_warning_and_the_run_finishes_with_its_checkpoints(
    tmp_path: Path,
) -> None:
    output_dir = tmp_path / "out"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(fault_document(output_dir), sort_keys=False))
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    with running_mlflow_server(server_dir) as uri:
        process = start_ftrun(config, "--mlflow-server-uri", uri, "--experiment-name", "dies")
        state = output_dir / FIRST_CHECKPOINT / "trainer_state.json"
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not state.is_file():
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        server_pid = int(process.pid)
        # Kill the whole server process group (server and its uvicorn worker) at once, as a crashed host would.
        os.killpg(os.getpgid(_server_group(server_dir)[0]), signal.SIGKILL)
        killed_at = time.monotonic()
        _, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
        finished_after = time.monotonic() - killed_at
    assert process.returncode == 0, stderr[-3000:]
    assert server_pid > 0
    assert "Traceback" not in stderr
    assert "MLflow tracking failed" in stderr
    assert (output_dir / "checkpoint-final").is_dir()
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 12
    print(f"the run finished {finished_after:.1f} s after the server was killed")
    assert finished_after < 120


def _server_group(server_dir: Path) -> list[int]:
    """Pids of the `mlflow server` processes serving `server_dir` (found by their command line)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(server_dir) in command or ("mlflow" in command and str(server_dir / "mlflow.db") in command):
            pids.append(int(entry.name))
    assert pids, "no mlflow server process found"
    return pids
