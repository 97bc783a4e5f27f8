"""`pip install .` gives a wheel that carries the schema files, the generated code and the bundle."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import EXAMPLES, REPO_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("wheel")
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(target),
        str(REPO_ROOT),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    (found,) = target.glob("ftconfig-*.whl")
    return found


def test_wheel_contains_schema_files_generated_code_and_bundle(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    schema_files = {path.name for path in (REPO_ROOT / "schema").glob("*.schema.json")}
    assert {f"ftconfig/schema/{name}" for name in schema_files} <= names
    assert {
        "ftconfig/generated/config.py",
        "ftconfig/generated/ftconfig.schema.json",
        "ftconfig/runtime/_load.py",
        "ftconfig/tools/_gen_docs.py",
    } <= names
    assert not any(name.startswith(("runtime/", "tools/", "schema/", "generated/")) for name in names)


def test_installed_wheel_validates_a_config_from_its_own_files(wheel: Path, tmp_path: Path) -> None:
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    script = (
        "import ftconfig, sys\n"
        f"assert ftconfig.__file__.startswith({str(unpacked)!r}), ftconfig.__file__\n"
        "from ftconfig._ftschema_cli import cli\n"
        "from click.testing import CliRunner\n"
        f"result = CliRunner().invoke(cli, ['validate', {str(EXAMPLES / 'minimal.yaml')!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(unpacked), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr
