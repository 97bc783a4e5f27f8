"""Ctrl-C and SIGTERM during data preparation: a clean stop even when a library's clean-up hides them."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["interrupts_kept"]


@contextlib.contextmanager
def interrupts_kept() -> Iterator[None]:
    """Let Ctrl-C and SIGTERM out as themselves when a library's clean-up replaced them with its own error.

    datasets' worker pool, interrupted while it waits, raises a TimeoutError from its `finally` block; the
    KeyboardInterrupt (or the SIGTERM raised like it) is then only that error's context. Re-raising it gives the
    clean stop (exit 130 or 143, one line) instead of a traceback; the pool has already ended its workers.
    Ctrl-C in a terminal reaches the forked workers too: they ignore it (the handler is inherited), since the
    main process ends them, instead of each printing its own KeyboardInterrupt traceback.
    """
    owner = os.getpid()

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if os.getpid() == owner:
            raise KeyboardInterrupt

    previous = None
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    except Exception as error:
        interrupt = _interrupt_behind(error)
        if interrupt is None:
            raise
        raise interrupt from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _interrupt_behind(error: BaseException) -> KeyboardInterrupt | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, KeyboardInterrupt):
            return current
        current = current.__cause__ or current.__context__
    return None
