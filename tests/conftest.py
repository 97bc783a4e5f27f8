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
