"""Merge a run's adapter into the base it was trained on and save a model that needs nothing else."""

from __future__ import annotations

import logging
from pathlib import Path

from ftconfig.runtime.inference._load import load_inference_model
from ftconfig.runtime.inference._output import check_output_folder, staged_folder
from ftconfig.runtime.inference._run_dir import ModelSource

__all__ = ["merge_model"]

logger = logging.getLogger(__name__)


def merge_model(source: ModelSource, output: Path) -> Path:
    """Write the merged model, the tokenizer saved for inference and the generation config to `output`.

    The base is the one the adapter was trained on: the run's grown base model when it saved one, else the
    original model with its embeddings resized to the tokenizer (the adapter then fills in the new rows,
    whether it carries whole embedding matrices or only the new tokens' rows). The base loads unquantized in
    the run's dtype, so the merged weights are plain weights. A full-model run is copied as it is, with the
    generation config that stops at the end of a turn.
    """
    check_output_folder(output, source)
    loaded = load_inference_model(source, padding_side=None)
    model = loaded.model
    if source.adapter is not None:
        model = model.merge_and_unload(safe_merge=True)
    with staged_folder(output) as staging:
        model.save_pretrained(staging)
        loaded.tokenizer.save_pretrained(staging)
    logger.info("merged %s into %s", source.describe, output)
    return output
