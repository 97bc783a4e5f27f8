"""What `ftrun` prints on stderr: ftconfig's own messages under its prefix, library noise filtered out.

Only records of the `ftconfig` logger carry the `ftrun:` prefix; a library's message keeps its own form (or none),
so that nobody takes it for ours. Messages that only say what ftconfig chose on purpose, or that a user of
ftconfig cannot act on, are dropped by exact origin; everything else from the libraries still shows.
"""

from __future__ import annotations

import logging
import warnings

__all__ = ["LIBRARY_NOISE", "configure_output"]

# (logger name, start of the message): records that say nothing a user of ftconfig can act on.
LIBRARY_NOISE: tuple[tuple[str, str], ...] = (
    # bitsandbytes probes for an optional CPU kernel package on every import; training never needs it.
    ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward"),
    # ftconfig grows the embeddings on purpose and says so itself ("Grew the embeddings from ...").
    ("transformers.modeling_utils", "The new embeddings will be initialized"),
    # ftconfig chose the pad token (data_conf.missing_pad_token_strategy); the model config follows it.
    ("transformers.trainer_utils", "The tokenizer has new PAD/BOS/EOS tokens"),
)

# Deprecation notices raised inside the libraries are for their callers' authors, not for a user of ftrun.
_LIBRARY_MODULES = (
    r"(transformers|trl|peft|accelerate|datasets|bitsandbytes|torch|mlflow|huggingface_hub)(\.|$)"
)


class _DropMessages(logging.Filter):
    def __init__(self, starts: tuple[str, ...]) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.starts)


def _silence_library_noise() -> None:
    by_logger: dict[str, tuple[str, ...]] = {}
    for name, start in LIBRARY_NOISE:
        by_logger[name] = (*by_logger.get(name, ()), start)
    for name, starts in by_logger.items():
        logging.getLogger(name).addFilter(_DropMessages(starts))
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=_LIBRARY_MODULES)
    # peft saves the grown embedding rows with every adapter checkpoint; ftconfig grew them and said so.
    warnings.filterwarnings(
        "ignore", message="Setting `save_embedding_layers` to `True`", category=UserWarning
    )


def configure_output(rank: int) -> None:
    """ftconfig's messages from every rank, prefixed `ftrun:` (`ftrun[RANK]:` beyond rank 0); library noise off."""
    prefix = "ftrun" if rank == 0 else f"ftrun[{rank}]"
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"{prefix}: %(message)s"))
    handler.addFilter(_redact_record)
    if logging.lastResort is not None:  # where library warnings go when nobody configured the root logger
        logging.lastResort.addFilter(_redact_record)
    ours = logging.getLogger("ftconfig")
    for earlier in [h for h in ours.handlers if getattr(h, "_ftconfig_cli", False)]:
        ours.removeHandler(earlier)  # an earlier main() in this process: its stream may be closed by now
    handler._ftconfig_cli = True  # type: ignore[attr-defined]  # marks the handler this function owns
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False
    _silence_library_noise()


def _redact_record(record: logging.LogRecord) -> bool:
    """Credentials in any URI a log line quotes are redacted before the line is printed."""
    from ftconfig.runtime.config._secrets import redact_text

    message = record.getMessage()
    redacted = redact_text(message)
    if redacted != message:
        record.msg, record.args = redacted, None
    return True
