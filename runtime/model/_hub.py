"""Hub references before anything loads: cached, offline, or is the Hub reachable at all? Light: no torch.

huggingface_hub retries a failed connection five times with back-off (about 40 s) for every file, and logs each
retry. One short probe answers "can the Hub be reached" once per process: a reference that is not in the local
cache then fails at once, and one that is cached loads from the cache with the Hub switched off.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

from ftconfig.generated.config import DPOFinetuningConfig, FinetuningConfig, PretrainedPeftConfig
from ftconfig.runtime.config._errors import ConfigError, ErrorItem
from ftconfig.runtime.model._references import MODEL, local_problem, looks_like_hub_id

__all__ = ["HubReference", "check_hub_references", "hub_references", "hub_unreachable_reason"]

logger = logging.getLogger(__name__)

# Per phase (connect with TLS, then the answer): enough for a working connection with a few hundred ms of
# round trip, short enough that a user whose network drops packets hears about it within two seconds.
PROBE_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class HubReference:
    """A reference the run reads from the Hub (or its cache), the config location naming it, and a file that
    every such repository has (its presence in the cache means the repository was downloaded)."""

    repo_id: str
    location: str
    marker_files: tuple[str, ...]


def hub_references(config: FinetuningConfig | DPOFinetuningConfig) -> list[HubReference]:
    """The model, tokenizer and adapter references of a config that are Hub ids rather than local folders."""
    run_conf = config.run_conf
    subfolder = run_conf.model_args.subfolder
    prefix = f"{subfolder}/" if subfolder else ""
    candidates = [HubReference(run_conf.model, MODEL, (f"{prefix}config.json",))]
    if run_conf.tokenizer is not None:
        candidates.append(
            HubReference(
                str(run_conf.tokenizer),
                "$.run_conf.tokenizer",
                ("tokenizer_config.json", "tokenizer.json", "config.json"),
            )
        )
    if isinstance(config.peft_conf, PretrainedPeftConfig):
        candidates.append(
            HubReference(config.peft_conf.name_or_path, "$.peft_conf.name_or_path", ("adapter_config.json",))
        )
    return [
        reference
        for reference in candidates
        if not Path(reference.repo_id).expanduser().exists() and looks_like_hub_id(reference.repo_id)
    ]


def _is_cached(reference: HubReference, *, cache_dir: str | None, revision: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(
        isinstance(
            try_to_load_from_cache(reference.repo_id, name, cache_dir=cache_dir, revision=revision), str
        )
        for name in reference.marker_files
    )


def _offline_mode() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _switch_hub_off() -> None:
    """Every later load in this process reads the cache only (huggingface_hub reads this flag per request)."""
    from huggingface_hub import constants

    constants.HF_HUB_OFFLINE = True


@functools.cache
def hub_unreachable_reason() -> str | None:
    """Why the Hub endpoint (HF_ENDPOINT, proxies as configured) cannot be reached; None when it answers.

    Any HTTP answer counts as reachable: only a connection that fails or stays silent does not.
    """
    from huggingface_hub import constants, get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=PROBE_TIMEOUT_S, follow_redirects=False)
    except Exception as exc:
        reason = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {reason[0]}" if reason else type(exc).__name__
    return None


def check_hub_references(config: FinetuningConfig | DPOFinetuningConfig) -> None:
    """Fail at once (ConfigError, exit 2) for a Hub reference that can only come from a Hub this process cannot
    use: offline mode or local_files_only with the reference not cached, or an unreachable Hub.

    A model path typo never gets here: local_problem names it first, without asking the Hub.
    """
    problem = local_problem(config.run_conf.model, config.run_conf.model_args.subfolder)
    if problem is not None:
        raise ConfigError(problem)
    references = hub_references(config)
    if not references:
        return
    args = config.run_conf.model_args
    cached = {
        ref.repo_id: _is_cached(ref, cache_dir=args.cache_dir, revision=args.revision) for ref in references
    }
    if args.local_files_only or _offline_mode():
        why = "local_files_only is true" if args.local_files_only else "offline mode is on (HF_HUB_OFFLINE)"
        missing = [ref for ref in references if not cached[ref.repo_id]]
        if missing:
            raise ConfigError(
                [
                    ErrorItem(
                        ref.location,
                        f"{ref.repo_id!r} is not a local folder and not in the local Hugging Face cache, "
                        f"and {why}",
                        "Download it first (hf download ...), point it at a local folder, or turn offline "
                        "mode off.",
                    )
                    for ref in missing
                ]
            )
        return
    reason = hub_unreachable_reason()
    if reason is None:
        return
    missing = [ref for ref in references if not cached[ref.repo_id]]
    if missing:
        from huggingface_hub import constants

        raise ConfigError(
            [
                ErrorItem(
                    ref.location,
                    f"{ref.repo_id!r} is not a local folder and not in the local Hugging Face cache, and the "
                    f"Hub ({constants.ENDPOINT}) cannot be reached ({reason})",
                    "Check the network (or HTTPS_PROXY), point it at a local folder, or fix the path if it "
                    "was meant to be one (relative paths start from the directory ftrun runs in).",
                )
                for ref in missing
            ]
        )
    logger.warning("the Hugging Face Hub cannot be reached (%s): loading from the local cache only", reason)
    _switch_hub_off()
