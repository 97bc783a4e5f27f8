"""`pip install .` gives a wheel that carries the schema files, the generated code and the bundle."""

from __future__ import annotations

import importlib.metadata
import os
import re
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
        "ftconfig/runtime/config/_load.py",
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


# What `pip install ftconfig` (without [train]) installs besides ftconfig itself.
LIGHT_REQUIREMENTS = ("jsonschema", "referencing", "msgspec", "click", "ruamel.yaml")
DEVELOPER_VERBS = ("gen-code", "gen-docs", "bundle", "import-training-args", "check")


def _distribution_closure(names: tuple[str, ...]) -> list[importlib.metadata.Distribution]:
    """The installed distributions `names` need, following their unconditional requirements."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in found:
            continue
        found[key] = importlib.metadata.distribution(name)
        todo += [
            re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0]
            for requirement in found[key].requires or []
            if "extra ==" not in requirement
        ]
    return list(found.values())


@pytest.fixture(scope="module")
def light_install(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed (--no-deps) and only the light requirements.

    The light requirements are the ones already installed here, linked into a folder the environment reads
    through a .pth file: nothing is downloaded, and torch, transformers and the rest cannot be imported.
    """
    root = tmp_path_factory.mktemp("light")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    light = root / "light-site"
    light.mkdir()
    for distribution in _distribution_closure(LIGHT_REQUIREMENTS):
        top_level = {Path(str(file)).parts[0] for file in distribution.files or []}
        for name in top_level - {"..", "__pycache__"}:
            source = Path(str(distribution.locate_file(name)))
            if source.exists() and not (light / name).exists():
                (light / name).symlink_to(source)
    (site_packages,) = venv.glob("lib/python*/site-packages")
    (site_packages / "light-requirements.pth").write_text(f"{light}\n")
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return venv


def _run_light(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(
        list(args), capture_output=True, text=True, cwd=cwd, env=env, check=False, timeout=300
    )


def test_the_light_install_has_no_training_libraries(light_install: Path, tmp_path: Path) -> None:
    result = _run_light(light_install, "python", "-c", "import torch", cwd=tmp_path)
    assert result.returncode != 0 and "No module named 'torch'" in result.stderr


def test_ftrun_without_the_training_stack_says_to_install_ftconfig_train(
    light_install: Path, tmp_path: Path
) -> None:
    result = _run_light(light_install, "ftrun", str(EXAMPLES / "minimal.yaml"), "--dry-run", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "pip install 'ftconfig[train]'" in result.stderr
    assert "torch" in result.stderr
    assert _run_light(light_install, "ftrun", "--help", cwd=tmp_path).returncode == 0


def test_user_verbs_work_from_the_light_install(light_install: Path, tmp_path: Path) -> None:
    valid = _run_light(light_install, "ftschema", "validate", str(EXAMPLES / "minimal.yaml"), cwd=tmp_path)
    assert valid.returncode == 0, valid.stderr
    starter = _run_light(light_install, "ftschema", "init", "my-run.yaml", cwd=tmp_path)
    assert starter.returncode == 0, starter.stderr
    assert (tmp_path / "my-run.yaml").is_file()


def test_developer_verbs_are_hidden_and_refuse_outside_a_checkout(
    light_install: Path, tmp_path: Path
) -> None:
    (site_packages,) = light_install.glob("lib/python*/site-packages")
    package = site_packages / "ftconfig"
    before = {path: path.stat().st_mtime_ns for path in package.rglob("*") if path.is_file()}
    help_text = _run_light(light_install, "ftschema", "--help", cwd=tmp_path).stdout
    assert "validate" in help_text and "init" in help_text
    for verb in DEVELOPER_VERBS:
        assert not re.search(rf"^  {verb}\b", help_text, re.MULTILINE), help_text
        result = _run_light(light_install, "ftschema", verb, cwd=tmp_path)
        assert result.returncode == 2, (verb, result.stderr)
        assert "developer command" in result.stderr and "Traceback" not in result.stderr
    after = {path: path.stat().st_mtime_ns for path in package.rglob("*") if path.is_file()}
    written = {path for path in after if before.get(path) != after[path]}
    assert not {path for path in written if "__pycache__" not in path.parts}


def test_developer_verbs_are_listed_in_a_checkout() -> None:
    ftschema = Path(sys.executable).with_name("ftschema")
    result = subprocess.run([str(ftschema), "--help"], capture_output=True, text=True, check=True)
    assert all(verb in result.stdout for verb in DEVELOPER_VERBS)


def test_python_m_ftconfig_from_the_repository_root_works_with_a_wheel_install(light_install: Path) -> None:
    """From the repository root Python finds the checkout's `ftconfig/` before the installed package."""
    result = _run_light(light_install, "python", "-m", "ftconfig", "--help", cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


@pytest.fixture(scope="module")
def full_install(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel (non-editable) and the training stack installed here."""
    import torch

    venv = tmp_path_factory.mktemp("full") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    (site_packages,) = venv.glob("lib/python*/site-packages")
    (site_packages / "training-stack.pth").write_text(f"{Path(torch.__file__).parent.parent}\n")
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return venv


def test_the_readme_torchrun_command_works_from_the_repository_root_with_a_wheel_install(
    full_install: Path, tmp_path: Path
) -> None:
    """README: `torchrun --nproc_per_node 2 -m ftconfig my-run.yaml`; here one process and a dry run."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "torchrun --nproc_per_node 2 -m ftconfig my-run.yaml" in readme
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        "PATH": f"{full_install / 'bin'}:/usr/bin:/bin",
        "FTCONFIG_CACHE_DIR": str(tmp_path / "cache"),
    }
    command = [
        "python", "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port", "29537",
        "-m", "ftconfig", "examples/minimal.yaml", "--dry-run", "--json",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert '"world_size": 1' in result.stdout
