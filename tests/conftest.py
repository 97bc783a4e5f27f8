"""Shared fixtures: the shipped tiny model and data, offline settings for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples"

# Nothing may be downloaded: every test runs against files the project ships or builds.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DISABLE_MLFLOW_INTEGRATION", "TRUE")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The tiny Llama + tokenizer built by `python -m ftconfig.tools.build_tiny_model` (committed)."""
    path = EXAMPLES / "tiny-llama"
    assert (path / "model.safetensors").exists(), "run: python -m ftconfig.tools.build_tiny_model"
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return EXAMPLES / "data"


@pytest.fixture(scope="session", autouse=True)
def _isolated_preparation_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each test session gets its own data preparation cache (never the user's ~/.cache)."""
    os.environ["FTCONFIG_CACHE_DIR"] = str(tmp_path_factory.mktemp("prepared-cache"))


def tiny_run_document(output_dir: Path, **sections: dict) -> dict:
    """A small, fast config for the shipped tiny model (see tools/build_tiny_model.tiny_run_document)."""
    from ftconfig.tools.build_tiny_model import tiny_run_document as build

    return build(output_dir, EXAMPLES, **sections)
