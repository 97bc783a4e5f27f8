"""Damaged state never crashes a run: truncated checkpoint files make `auto` fall back to the newest intact
checkpoint (with a warning naming the file) or exit 2 naming the file; a damaged prepared-data cache entry is
detected by its checksums and rebuilt. The files are real: torch.save and safetensors outputs, truncated."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from ftconfig.runtime.config._errors import ConfigError
from ftconfig.runtime.model._weights_files import damaged_file
from ftconfig.runtime.training._checkpoints import resolve_resume
from tests.helpers import concatenation, data_config, write_source


def make_real_checkpoint(output_dir: Path, step: int, *, adapter: bool = False) -> Path:
    """A checkpoint folder laid out as transformers writes it, with real tensors in each file."""
    folder = output_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    weights = {"layer.weight": torch.randn(64, 64), "layer.bias": torch.randn(64)}
    save_file(weights, folder / ("adapter_model.safetensors" if adapter else "model.safetensors"))
    torch.save({"state": {0: {"exp_avg": torch.randn(64, 64)}}}, folder / "optimizer.pt")
    torch.save({"last_epoch": step}, folder / "scheduler.pt")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": []}))
    return folder


def truncate(path: Path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize(
    "damaged",
    ["model.safetensors", "adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json"],
)
def test_auto_falls_back_to_the_newest_intact_checkpoint_and_says_which_file_is_damaged(
    tmp_path: Path, damaged: str, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = damaged.startswith("adapter")
    make_real_checkpoint(tmp_path, 4, adapter=adapter)
    intact = make_real_checkpoint(tmp_path, 8, adapter=adapter)
    newest = make_real_checkpoint(tmp_path, 12, adapter=adapter)
    truncate(newest / damaged)
    with caplog.at_level(logging.WARNING, logger="ftconfig"):
        assert resolve_resume("auto", tmp_path) == str(intact)
        assert resolve_resume(True, tmp_path) == str(intact)
    assert f"skipping {newest}" in caplog.text
    if damaged != "trainer_state.json":  # a torn trainer_state.json is reported as an incomplete checkpoint
        assert damaged in caplog.text and "falling back" in caplog.text


def test_resuming_from_the_path_of_a_damaged_checkpoint_is_a_config_error_naming_the_file(
    tmp_path: Path,
) -> None:
    folder = make_real_checkpoint(tmp_path, 4)
    truncate(folder / "optimizer.pt")
    with pytest.raises(ConfigError) as refused:
        resolve_resume(str(folder), tmp_path)
    message = str(refused.value)
    assert "$.run_conf.resume_from_checkpoint" in message
    assert str(folder / "optimizer.pt") in message and "truncated" in message


def test_whole_files_pass_and_every_truncation_of_a_safetensors_file_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.randn(32, 32)}, path)
    whole = path.read_bytes()
    assert damaged_file(path) is None
    for length in (0, 5, 8, 40, len(whole) // 2, len(whole) - 1):
        path.write_bytes(whole[:length])
        assert damaged_file(path) is not None, length
    torch_file = tmp_path / "optimizer.pt"
    torch.save({"x": torch.randn(32, 32)}, torch_file)
    assert damaged_file(torch_file) is None
    truncate(torch_file, keep=0.99)
    assert damaged_file(torch_file) is not None


@pytest.mark.parametrize("damage", ["bit-flip", "truncation"])
def test_a_damaged_cache_entry_is_detected_by_its_checksums_and_rebuilt_never_read_as_wrong_examples(
    tmp_path: Path,
    tiny_model_dir: Path,
    prepare: Any,
    damage: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path, _ = write_source(tmp_path, "a", 6)
    config = data_config(tiny_model_dir, concatenation(path))
    cache = tmp_path / "cache"
    expected = prepare(config, cache_dir=cache).train.to_dict()
    [entry] = cache.iterdir()
    [arrow] = list(entry.rglob("*.arrow"))
    data = bytearray(arrow.read_bytes())
    if damage == "bit-flip":
        # A byte inside the token ids: the file still parses as Arrow, only the numbers change.
        position = len(data) // 2
        data[position] ^= 0x01
        arrow.write_bytes(bytes(data))
    else:
        arrow.write_bytes(bytes(data[: len(data) // 2]))
    with caplog.at_level(logging.WARNING):
        rebuilt = prepare(config, cache_dir=cache)
    assert not rebuilt.cache_hit
    assert "checksum" in caplog.text
    assert rebuilt.train.to_dict() == expected
    assert prepare(config, cache_dir=cache).cache_hit
