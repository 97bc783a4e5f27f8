"""The DPO trainer: TRL's DPOTrainer on data ftconfig prepared, with the reference model the run calls for.

Reference model: with an adapter (LoRA, QLoRA, a pretrained adapter) none is built; TRL computes the reference
log-probabilities from the same weights with the trained adapter switched out (TRL freezes a copy of the starting
adapter as "ref": for a new adapter that is exactly the base model, for an SFT adapter it is the SFT policy), so no
second model is held in memory. Full-parameter training gets a frozen copy of the starting model, built here from
the loaded model (grown embeddings and all) rather than reloaded from its path as TRL would.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

__all__ = ["REFERENCE_ADAPTER", "build_dpo_trainer", "drop_reference_adapter", "frozen_reference"]

# The adapter name TRL gives its frozen copy of the starting adapter (saved as a sub-folder of each checkpoint).
REFERENCE_ADAPTER = "ref"


def frozen_reference(model: Any) -> Any:
    """A copy of the starting model that never trains (eval mode, no gradients)."""
    reference = copy.deepcopy(model)
    reference.requires_grad_(False)
    return reference.eval()


def _prepared_trainer_class() -> type:
    """DPOTrainer that takes the datasets as prepared: TRL 1.16 always runs its own preparation otherwise."""
    from trl import DPOTrainer  # type: ignore[attr-defined]  # trl's __init__ exports lazily

    class PreparedDPOTrainer(DPOTrainer):
        """The `prompt_ids`/`chosen_ids`/`rejected_ids` columns are already what TRL's preparation makes."""

        def _prepare_dataset(self, dataset: Any, *args: Any, **kwargs: Any) -> Any:
            return dataset

    return PreparedDPOTrainer


def build_dpo_trainer(
    model: Any,
    *,
    args: Any,
    train_dataset: Any,
    eval_dataset: Any,
    tokenizer: Any,
    callbacks: list[Any],
    uses_adapter: bool,
) -> Any:
    """TRL DPOTrainer for a loaded (and, with an adapter, already wrapped) model."""
    trainer_class = _prepared_trainer_class()
    # Precomputed reference log-probs come from the model before its first step: no copy needed then either.
    needs_copy = not uses_adapter and not args.precompute_ref_log_probs
    return trainer_class(
        model=model,
        ref_model=frozen_reference(model) if needs_copy else None,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        callbacks=callbacks,
    )


def drop_reference_adapter(checkpoint: Path) -> None:
    """Leave only the trained adapter in a final checkpoint: the frozen reference copy is for training only
    (numbered checkpoints keep it; a resumed run rebuilds it from the starting adapter anyway)."""
    shutil.rmtree(checkpoint / REFERENCE_ADAPTER, ignore_errors=True)
