"""The model card TRL writes into output_dir names the base model, also when that is a local folder."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

__all__ = ["name_base_model_in_card"]

# TRL's card template links the base model on the Hub, and has nothing but None for a model loaded from a folder.
_UNNAMED_BASE = "[None](https://huggingface.co/None)"


def _base_model_words(reference: str) -> str:
    if Path(reference).expanduser().is_dir():
        return f"the local model `{reference}`"
    return f"[{reference}](https://huggingface.co/{reference})"


def name_base_model_in_card(trainer: Any, reference: str) -> None:
    """Make every model card the trainer writes (with each checkpoint) name `reference` as its base model."""
    write_card = trainer.create_model_card

    @functools.wraps(write_card)
    def create_model_card(*args: Any, **kwargs: Any) -> None:
        write_card(*args, **kwargs)
        card = Path(trainer.args.output_dir) / "README.md"
        if card.is_file():
            text = card.read_text(encoding="utf-8")
            if _UNNAMED_BASE in text:
                card.write_text(text.replace(_UNNAMED_BASE, _base_model_words(reference)), encoding="utf-8")

    trainer.create_model_card = create_model_card
