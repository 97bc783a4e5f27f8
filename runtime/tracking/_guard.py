"""Tracking never stops training: the MLflow callback is wrapped so that a failure is a warning, not a crash.

A tracking server that dies mid-run makes every logging call fail after its (bounded) retries, and transformers
logs metrics asynchronously, so those failures would pile up unseen in a queue that the end of the run then
waits for. Before each logging event the server gets a one-second TCP probe; the first failure (of the probe or
of the callback itself) is reported once and tracking is switched off for the rest of the run: training,
checkpoints and the final save go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback
from transformers.integrations.integration_utils import MLflowCallback

from ftconfig.runtime.config._secrets import redact_text
from ftconfig.runtime.tracking._plan import TrackingPlan

__all__ = ["GuardedCallback", "guard_tracking_callbacks"]

logger = logging.getLogger(__name__)


_PROBED_EVENTS = {"on_log", "on_save", "on_evaluate", "on_train_end"}


class GuardedCallback(TrainerCallback):
    """Forwards every Trainer event to `inner`; the first failure turns the inner callback off.

    `probe` says why the tracking backend cannot be reached (None when it can); it runs before logging events.
    """

    def __init__(self, inner: Any, name: str, probe: Callable[[], str | None] | None = None) -> None:
        self.inner = inner
        self.name = name
        self.probe = probe
        self.failed = False

    def __getattribute__(self, attribute: str) -> Any:
        if attribute.startswith("on_"):
            return self._forward(attribute)
        return super().__getattribute__(attribute)

    def _give_up(self, event: str, reason: str) -> None:
        self.failed = True
        # transformers' MLflowCallback ends the run again when it is garbage-collected; against a dead server
        # that prints a traceback at exit. finish_tracking ends the run instead (bounded, with a warning).
        if hasattr(self.inner, "_auto_end_run"):
            self.inner._auto_end_run = False
        logger.warning(
            "%s failed during %s (%s); training continues without it, checkpoints are saved as usual",
            self.name,
            event,
            redact_text(reason),
        )

    def _forward(self, event: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            if self.failed:
                return None
            if self.probe is not None and event in _PROBED_EVENTS and (problem := self.probe()) is not None:
                self._give_up(event, f"the server stopped answering: {problem}")
                return None
            try:
                return getattr(self.inner, event)(*args, **kwargs)
            except Exception as exc:
                self._give_up(
                    event, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                )
                return None

        return call


def guard_tracking_callbacks(trainer: Any, plan: TrackingPlan | None) -> int:
    """Replace the trainer's MLflow callback by a guarded one; returns how many were wrapped."""
    from ftconfig.runtime.tracking._mlflow import server_unreachable

    probe = None if plan is None else (lambda: server_unreachable(plan, timeout_s=1.0))
    handler = trainer.callback_handler
    wrapped = 0
    for index, callback in enumerate(handler.callbacks):
        if isinstance(callback, MLflowCallback):
            handler.callbacks[index] = GuardedCallback(callback, "MLflow tracking", probe)
            wrapped += 1
    return wrapped
