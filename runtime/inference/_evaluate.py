"""Loss, perplexity and token accuracy of a trained model on held-out chat data, framed as the run trained."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ftconfig.runtime.config._errors import ErrorItem, UserError
from ftconfig.runtime.config._structs import is_dpo
from ftconfig.runtime.data._collator import build_data_collator
from ftconfig.runtime.data._encode import IGNORE_INDEX, encode_conversations
from ftconfig.runtime.data._records import read_conversations, read_file_bytes
from ftconfig.runtime.data._tokenizer import build_tokenizer
from ftconfig.runtime.inference._load import load_inference_model
from ftconfig.runtime.inference._run_dir import ModelSource
from ftconfig.runtime.training._output import RESOLVED_CONFIG_NAME

__all__ = ["Evaluation", "evaluate_model", "render_evaluation"]


@dataclass(frozen=True)
class Evaluation:
    """Token-level metrics over every trained (label != -100) token of the data."""

    data: str
    examples: int
    dropped_examples: int
    tokens: int
    loss: float
    perplexity: float
    token_accuracy: float
    completions_only: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_model(source: ModelSource, data_path: Path, *, batch_size: int = 8) -> Evaluation:
    """Evaluate the run's model on `data_path` (chat JSONL) with the run's own template, special tokens,
    length limit and completions-only mask: the numbers are comparable with the run's eval_loss.

    The tokenizer is set up from the run's config exactly as training set it up (BOS and EOS added), not from
    the inference tokenizer, which no longer appends EOS.
    """
    config = source.config
    if config is None:
        raise UserError(
            ErrorItem(
                str(source.checkpoint),
                f"evaluate needs a run directory (its {RESOLVED_CONFIG_NAME} says how the data was framed)",
                "Pass the output_dir of an ftrun run, or one of its checkpoints",
            )
        )
    if is_dpo(config):  # no sft_args: no completions-only mask or length limit to frame chat data with
        raise UserError(
            ErrorItem(
                str(source.run_dir),
                "evaluate measures chat data the way an SFT run trained on it; this is a DPO run (method: dpo)",
                "Pass the output_dir of an SFT run",
            )
        )
    shown = str(data_path)
    conversations = read_conversations(read_file_bytes(data_path, location=shown, shown=shown), name=shown)
    try:
        tokenizer, setup = build_tokenizer(config.run_conf, config.data_conf)
    except UserError as exc:
        raise exc.with_source(f"{source.run_dir} ({RESOLVED_CONFIG_NAME})") from None
    completions_only = bool(config.sft_args.train_on_completions_only)
    encoded = encode_conversations(
        tokenizer,
        setup,
        conversations,  # type: ignore[arg-type]  # a ChatMessage TypedDict is the plain dict the encoder takes
        completions_only=completions_only,
    )
    limit = int(config.sft_args.max_seq_length)
    features = [
        {"input_ids": ids, "labels": labels}
        for ids, labels in zip(encoded["input_ids"], encoded["labels"], strict=True)
        if len(ids) <= limit
    ]
    dropped = len(conversations) - len(features)
    if not features:
        raise UserError(
            ErrorItem(shown, f"every conversation is longer than the run's max_seq_length ({limit} tokens)")
        )
    collate = build_data_collator(tokenizer, setup)
    loaded = load_inference_model(source)
    total_loss, correct, counted = 0.0, 0, 0
    with torch.no_grad():
        for start in range(0, len(features), batch_size):
            batch = {
                key: value.to(loaded.device)
                for key, value in collate(features[start : start + batch_size]).items()
            }
            labels = batch.pop("labels")
            logits = loaded.model(**batch).logits[:, :-1].float()
            targets = labels[:, 1:]
            mask = targets != IGNORE_INDEX
            losses = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                targets.reshape(-1),
                ignore_index=IGNORE_INDEX,
                reduction="none",
            )
            total_loss += float(losses.sum())
            correct += int(((logits.argmax(-1) == targets) & mask).sum())
            counted += int(mask.sum())
    if counted == 0:
        raise UserError(
            ErrorItem(shown, "no token is trained on (no assistant turns?), so there is nothing to score")
        )
    loss = total_loss / counted
    return Evaluation(
        data=shown,
        examples=len(features),
        dropped_examples=dropped,
        tokens=counted,
        loss=loss,
        perplexity=math.exp(min(loss, 700.0)),
        token_accuracy=correct / counted,
        completions_only=completions_only,
    )


def render_evaluation(result: Evaluation) -> str:
    """A small table for the terminal."""
    scored = "assistant tokens" if result.completions_only else "all tokens"
    rows = [
        ("data", result.data),
        ("examples", f"{result.examples} ({result.dropped_examples} longer than max_seq_length dropped)"),
        ("scored tokens", f"{result.tokens} ({scored})"),
        ("loss", f"{result.loss:.4f}"),
        ("perplexity", f"{result.perplexity:.3f}"),
        ("token accuracy", f"{result.token_accuracy:.4f}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
