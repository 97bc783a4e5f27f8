"""report_to and push_to_hub are checked before any weights load: exit 2, the place named, nothing written.

The real `ftrun` runs (not a dry run), so the tests also show that nothing loads before the check fails.
tensorboard is not installed here; the Hub cannot be reached from this machine (no network).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ftconfig.runtime.config._errors import ConfigError
from ftconfig.runtime.training._integrations import check_report_to
from tests.helpers import tiny_run_document

pytestmark = pytest.mark.slow

needs_tensorboard_missing = pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is not None, reason="tensorboard is installed here"
)


def run_real(
    tmp_path: Path, env: dict[str, str] | None = None, **training_args: object
) -> subprocess.CompletedProcess[str]:
    output_dir = tmp_path / "out"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny_run_document(output_dir, training_args=training_args)))
    return subprocess.run(
        [sys.executable, "-m", "ftconfig", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=env,
    )


def assert_refused_before_weights(
    result: subprocess.CompletedProcess[str], location: str, tmp_path: Path
) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "Loading weights" not in result.stderr
    assert f"invalid config: {location}:" in result.stderr
    assert not (tmp_path / "out").exists()
    return result.stderr


@needs_tensorboard_missing
def test_report_to_an_integration_that_is_not_installed_is_refused_before_weights_load(
    tmp_path: Path,
) -> None:
    stderr = assert_refused_before_weights(
        run_real(tmp_path, report_to="tensorboard"), "$.training_args.report_to", tmp_path
    )
    assert "pip install tensorboard" in stderr


def test_push_to_hub_without_a_reachable_hub_is_refused_before_weights_load(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_TOKEN"] = "hf_not_a_real_token"
    stderr = assert_refused_before_weights(
        run_real(tmp_path, env=env, push_to_hub=True), "$.training_args.push_to_hub", tmp_path
    )
    assert "cannot be reached" in stderr
    assert "hf_not_a_real_token" not in stderr


def test_push_to_hub_without_a_token_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    env["HF_HOME"] = str(tmp_path / "hf-home")  # no stored login either
    stderr = assert_refused_before_weights(
        run_real(tmp_path, env=env, push_to_hub=True), "$.training_args.push_to_hub", tmp_path
    )
    assert "needs a Hugging Face token" in stderr


def test_a_misspelt_integration_gets_the_nearest_name() -> None:
    with pytest.raises(ConfigError) as excinfo:
        check_report_to(["tensorbord"])
    (item,) = excinfo.value.items
    assert item.location == "$.training_args.report_to"
    assert "Did you mean 'tensorboard'?" in item.render()


def test_mlflow_passes_as_ftconfig_manages_it() -> None:
    check_report_to(["mlflow"])  # installed with ftconfig[train]; DISABLE_MLFLOW_INTEGRATION is set in tests
