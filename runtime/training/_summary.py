"""The lines a finished run ends with: losses, time, where the result is, and what to do with it next."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftconfig.runtime.training._run import RunResult

__all__ = ["last_logged", "run_summary"]


def last_logged(log_history: list[dict[str, Any]], key: str) -> tuple[float, int] | None:
    """The last value logged under `key` and the step it was logged at; None when it was never logged."""
    for entry in reversed(log_history):
        if key in entry:
            return float(entry[key]), int(entry.get("step", 0))
    return None


def _loss_line(result: RunResult) -> str:
    parts = []
    train_loss = last_logged(result.log_history, "loss")
    if train_loss is not None:
        parts.append(f"train loss {train_loss[0]:.4f} (step {train_loss[1]})")
    elif "train_loss" in result.metrics:
        parts.append(f"average train loss {result.metrics['train_loss']:.4f} (no loss logged during the run)")
    eval_loss = last_logged(result.log_history, "eval_loss")
    if eval_loss is not None:
        parts.append(f"eval loss {eval_loss[0]:.4f} (step {eval_loss[1]})")
    return "final " + ", ".join(parts) if parts else "no loss was logged (nothing was left to train)"


def run_summary(result: RunResult, seconds: float) -> list[str]:
    """What `ftrun` prints last: the outcome, where it went and the follow-up commands (`ftmodel`)."""
    run_dir = result.output_dir
    final = result.final_checkpoint
    is_adapter = (final / "adapter_config.json").is_file()
    lines = [
        f"done in {seconds:.1f} s: {_loss_line(result)}",
        f"{'adapter' if is_adapter else 'model'} and tokenizer saved in {final}",
        "next:",
        f"  ftmodel chat {final}",
    ]
    if is_adapter:
        lines.append(f"  ftmodel merge {run_dir} {run_dir}-merged")
    lines.append(f"  ftmodel export-vllm {run_dir} {run_dir}-vllm")
    return lines
