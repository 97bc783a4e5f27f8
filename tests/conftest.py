"""Shared fixtures: the shipped tiny model and data, a real MLflow server, the tiny tokenizer and data preparation,
offline settings for every test.

Plain helpers (paths, base documents, make_config, only_error) live in tests/helpers.py.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import DATA_DIR, REPO_ROOT, TINY_MODEL, concatenation, data_config

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
    assert (TINY_MODEL / "model.safetensors").exists(), "run: python -m ftconfig.tools.build_tiny_model"
    return TINY_MODEL


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(scope="session", autouse=True)
def _isolated_preparation_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each test session gets its own data preparation cache (never the user's ~/.cache)."""
    os.environ["FTCONFIG_CACHE_DIR"] = str(tmp_path_factory.mktemp("prepared-cache"))


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI of a real `mlflow server` (sqlite backend, proxied artifacts), shared by the session's tests."""
    from tests.mlflow_server import running_mlflow_server

    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as uri:
        yield uri


@pytest.fixture
def quiet_int8_matmul() -> Iterator[None]:
    """bitsandbytes logs 'MatMul8bitLt: inputs will be cast ... to float16' on every 8-bit matmul on CPU."""
    bnb_logger = logging.getLogger("bitsandbytes.autograd._functions")
    only_the_cast = logging.Filter()
    only_the_cast.filter = lambda record: not record.getMessage().startswith("MatMul8bitLt")  # type: ignore[method-assign]
    bnb_logger.addFilter(only_the_cast)
    yield
    bnb_logger.removeFilter(only_the_cast)


@pytest.fixture(scope="module")
def tokenizer_and_setup(tiny_model_dir: Path) -> tuple[Any, Any]:
    """The tiny model's real tokenizer and chat setup, built from the base config."""
    from ftconfig.runtime.data._tokenizer import build_tokenizer

    config = data_config(tiny_model_dir, concatenation(Path("unused.jsonl")))
    return build_tokenizer(config.run_conf, config.data_conf)


@pytest.fixture
def prepare(tokenizer_and_setup: tuple[Any, Any]) -> Callable[..., Any]:
    """prepare_data with the real tiny tokenizer; no cache unless one is given."""
    from ftconfig.runtime.data._prepare import PreparedData, prepare_data

    tokenizer, setup = tokenizer_and_setup

    def run(config: Any, *, cache_dir: Path | None = None, num_proc: int = 1) -> PreparedData:
        return prepare_data(config, tokenizer, setup, num_proc=num_proc, cache_dir=cache_dir)

    return run
