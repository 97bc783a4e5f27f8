"""Tokenizer setup: load, install the chat template and its tokens, choose a pad token, save for inference."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from ftconfig.generated.config import ChatTrainValidConfig, RunConfig
from ftconfig.runtime.config._errors import ConfigError, ErrorItem, UserError
from ftconfig.runtime.data._templates import ChatTemplate, chat_template_for, has_generation_markers

__all__ = [
    "TokenizerSetup",
    "apply_pad_strategy",
    "build_tokenizer",
    "check_completions_only",
    "check_pad_strategy",
    "completions_only_supported",
    "install_chat_template",
    "install_inference_save",
    "load_tokenizer",
    "tokenizer_load_error",
]

PAD_STRATEGY_LOCATION = "$.data_conf.missing_pad_token_strategy"
COMPLETIONS_ONLY_LOCATION = "$.sft_args.train_on_completions_only"

# Which special token each strategy turns into the pad token; unk-convert-to-eos also needs EOS, because the
# collator shows padding to the model as EOS. Keyed by every MissingPadTokenStrategy value (a test checks the
# keys against the schema's enum).
_PAD_SOURCE: dict[str, str] = {
    "eos-repurpose": "eos_token",
    "bos-repurpose": "bos_token",
    "unk-repurpose": "unk_token",
    "unk-convert-to-eos": "unk_token",
}


@dataclass(frozen=True)
class TokenizerSetup:
    """What build_tokenizer did, for the encoder, the collator, the model builder and the dry-run plan.

    `added_tokens` counts tokens new to the vocabulary (the model's embeddings may have to grow) and
    `new_token_ids` are their ids (the embedding rows an adapter run trains);
    `inference_eos` is the EOS every save writes; `pad_strategy` is the configured strategy, applied only when
    the tokenizer had no pad token.
    """

    template: ChatTemplate | None
    added_tokens: int
    inference_eos: str
    pad_strategy: str
    new_token_ids: tuple[int, ...] = ()


def _tokenizer_source(run_conf: RunConfig) -> tuple[str, str]:
    """The path or hub id the tokenizer comes from, and the config location that names it."""
    if run_conf.tokenizer is not None:
        return str(run_conf.tokenizer), "$.run_conf.tokenizer"
    return str(run_conf.model), "$.run_conf.model"


@contextlib.contextmanager
def tokenizer_load_error(run_conf: RunConfig) -> Iterator[None]:
    """The seam where a tokenizer that cannot be loaded (bad path, missing or broken files) is a ConfigError.

    Only wrap the from_pretrained call, and only what the libraries raise for bad files or references is mapped:
    OSError (missing path, unknown or uncached hub id), ValueError (broken JSON, no usable tokenizer files),
    KeyError (a tokenizer.json without its keys) and the plain Exception the `tokenizers` library raises for a
    tokenizer.json it cannot parse. Anything else (TypeError, AttributeError, ...) is a bug and propagates.
    """
    source, location = _tokenizer_source(run_conf)
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        if not (isinstance(exc, OSError | ValueError | KeyError) or type(exc) is Exception):
            raise
        from ftconfig.runtime.model._references import looks_like_hub_id

        if not Path(source).expanduser().exists() and not looks_like_hub_id(source):
            # transformers would call a missing path a malformed Hub repo id; say what is really wrong.
            raise ConfigError(
                ErrorItem(
                    location,
                    f"no tokenizer folder at {source!r}",
                    "Check the path (relative paths start from the directory ftrun runs in)",
                )
            ) from exc
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            ErrorItem(
                location,
                f"cannot load a tokenizer from {source!r} ({type(exc).__name__}: {reason})",
                "Point it at a local folder with tokenizer files (tokenizer.json / tokenizer_config.json) "
                "or at a hub model id that is in the local cache",
            )
        ) from exc


def load_tokenizer(run_conf: RunConfig, *, padding_side: str) -> PreTrainedTokenizerBase:
    """Load the tokenizer so that every sequence gets BOS and EOS; it keeps its own EOS (no forced `</s>`)."""
    source, _ = _tokenizer_source(run_conf)
    model_args = run_conf.model_args
    with tokenizer_load_error(run_conf):
        return AutoTokenizer.from_pretrained(
            source,
            use_fast=run_conf.use_fast_tokenizer,
            padding_side=padding_side,
            add_bos_token=True,
            add_eos_token=True,
            revision=model_args.revision,
            token=model_args.token,
            trust_remote_code=model_args.trust_remote_code,
            cache_dir=model_args.cache_dir,
            local_files_only=model_args.local_files_only,
        )


def install_chat_template(tokenizer: PreTrainedTokenizerBase, template: ChatTemplate) -> int:
    """Overwrite the tokenizer's chat template and register its special tokens; returns how many are new.

    Existing extra special tokens are kept. Tokens the vocabulary already has (e.g. from an earlier run of
    this tool) are not counted, so only real growth makes the model resize its embeddings.
    """
    tokenizer.chat_template = template.jinja
    if not template.special_tokens:
        return 0
    before = len(tokenizer)
    tokenizer.add_special_tokens(
        {"extra_special_tokens": list(template.special_tokens)}, replace_extra_special_tokens=False
    )
    return len(tokenizer) - before


def check_pad_strategy(tokenizer: PreTrainedTokenizerBase, strategy: str) -> None:
    """Raise a ConfigError if `strategy` cannot give this tokenizer a pad token (a preflight check)."""
    if tokenizer.pad_token is not None:
        if strategy == "unk-convert-to-eos":
            raise ConfigError(
                ErrorItem(
                    PAD_STRATEGY_LOCATION,
                    f"the tokenizer already has a pad token ({tokenizer.pad_token!r}), but the strategy "
                    f"{strategy!r} pads with UNK and shows it as EOS",
                    "Use one of the repurpose strategies (they leave an existing pad token alone)",
                )
            )
        return
    needed = [_PAD_SOURCE[strategy]] + (["eos_token"] if strategy == "unk-convert-to-eos" else [])
    missing = [name for name in needed if getattr(tokenizer, name) is None]
    if missing:
        names = " and ".join(name.removesuffix("_token").upper() for name in missing)
        usable = [
            name
            for name, source in _PAD_SOURCE.items()
            if getattr(tokenizer, source) is not None
            and (name != "unk-convert-to-eos" or tokenizer.eos_token is not None)
        ]
        hint = (
            f"Use {' or '.join(repr(name) for name in usable)}"
            if usable
            else ("The tokenizer has none of EOS, BOS and UNK; give it a pad token")
        )
        raise ConfigError(
            ErrorItem(
                PAD_STRATEGY_LOCATION,
                f"the tokenizer has no pad token and no {names} token, so {strategy!r} cannot make one",
                hint,
            )
        )


def apply_pad_strategy(tokenizer: PreTrainedTokenizerBase, strategy: str) -> None:
    """Give a tokenizer without a pad token one, as `strategy` says (a tokenizer that has one keeps it)."""
    check_pad_strategy(tokenizer, strategy)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = getattr(tokenizer, _PAD_SOURCE[strategy])


def _inference_save(tokenizer: PreTrainedTokenizerBase, inference_eos: str, *args: Any, **kwargs: Any) -> Any:
    """save_pretrained in inference mode (BOS on, EOS off, EOS = the template's assistant end), then restore.

    A top-level function bound with functools.partial, so the wrapped tokenizer still pickles (datasets.map).
    """
    flags = {
        name: getattr(tokenizer, name)
        for name in ("add_bos_token", "add_eos_token")
        if hasattr(tokenizer, name)
    }
    eos_token = tokenizer.eos_token
    backend = getattr(tokenizer, "backend_tokenizer", None)
    post_processor = backend.post_processor if backend is not None else None
    try:
        tokenizer.eos_token = inference_eos
        # The add_* setters rebuild a fast tokenizer's post-processor, which is what tokenizer.json records.
        if "add_bos_token" in flags:
            tokenizer.add_bos_token = True
        if "add_eos_token" in flags:
            tokenizer.add_eos_token = False
        files = type(tokenizer).save_pretrained(tokenizer, *args, **kwargs)
    finally:
        tokenizer.eos_token = eos_token
        for name, value in flags.items():
            setattr(tokenizer, name, value)
        if backend is not None:
            backend.post_processor = post_processor
    _record_flags(files)
    return files


def _record_flags(files: Any) -> None:
    """Write add_bos_token/add_eos_token into tokenizer_config.json for readers that look there (transformers
    4, vLLM); transformers 5 leaves them out and reads the post-processor in tokenizer.json instead."""
    for name in files or ():
        path = Path(name)
        if path.name.endswith("tokenizer_config.json") and path.exists():
            config = json.loads(path.read_text(encoding="utf-8"))
            config.update(add_bos_token=True, add_eos_token=False)
            path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def install_inference_save(tokenizer: PreTrainedTokenizerBase, inference_eos: str) -> None:
    """Make every save of this tokenizer instance (trainer checkpoints, final save) an inference-mode save.

    Training appends EOS to each sequence; generation needs BOS only and must stop at the template's end.
    """
    current = tokenizer.__dict__.get("save_pretrained")
    if isinstance(current, functools.partial) and current.func is _inference_save:
        raise RuntimeError("the tokenizer's save_pretrained is already wrapped for inference")
    tokenizer.save_pretrained = functools.partial(_inference_save, tokenizer, inference_eos)  # type: ignore[method-assign]  # this instance only, on purpose


def build_tokenizer(
    run_conf: RunConfig, data_conf: ChatTrainValidConfig
) -> tuple[PreTrainedTokenizerBase, TokenizerSetup]:
    """Load the tokenizer, install the chat template and its special tokens, set the pad token."""
    tokenizer = load_tokenizer(run_conf, padding_side=data_conf.padding_side)
    source, location = _tokenizer_source(run_conf)
    if tokenizer.eos_token is None:
        raise ConfigError(
            ErrorItem(
                location,
                f"the tokenizer from {source!r} has no EOS token",
                "Use a tokenizer that defines eos_token",
            )
        )
    template = chat_template_for(data_conf.chat_template_name, tokenizer)
    if template is None:
        if not tokenizer.chat_template:
            raise ConfigError(
                ErrorItem(
                    "$.data_conf.chat_template_name",
                    f"'keep-original' needs the tokenizer's own chat template, "
                    f"but the tokenizer from {source!r} has none",
                    "Choose one of the named templates (e.g. 'chat-ml')",
                )
            )
        added = 0
        inference_eos = str(tokenizer.eos_token)
        new_ids: tuple[int, ...] = ()
    else:
        before = len(tokenizer)
        added = install_chat_template(tokenizer, template)
        inference_eos = template.assistant_end
        ids = [tokenizer.convert_tokens_to_ids(token) for token in template.special_tokens]
        new_ids = tuple(
            sorted(token_id for token_id in ids if isinstance(token_id, int) and token_id >= before)
        )
    apply_pad_strategy(tokenizer, data_conf.missing_pad_token_strategy)
    install_inference_save(tokenizer, inference_eos)
    setup = TokenizerSetup(template, added, inference_eos, data_conf.missing_pad_token_strategy, new_ids)
    return tokenizer, setup


def completions_only_supported(tokenizer: PreTrainedTokenizerBase, setup: TokenizerSetup) -> bool:
    """Whether completions-only labels can be computed: the template marks assistant output with
    {% generation %} (all named templates do) and the tokenizer gives character offsets (a fast tokenizer)."""
    jinja = setup.template.jinja if setup.template is not None else tokenizer.chat_template
    return has_generation_markers(jinja) and bool(tokenizer.is_fast)


def check_completions_only(tokenizer: PreTrainedTokenizerBase, setup: TokenizerSetup) -> None:
    """Raise a ConfigError when train_on_completions_only cannot work with this tokenizer (preflight)."""
    if completions_only_supported(tokenizer, setup):
        return
    if not tokenizer.is_fast:
        raise ConfigError(
            ErrorItem(
                COMPLETIONS_ONLY_LOCATION,
                "completions-only loss needs a fast tokenizer (character offsets), but this one is not",
                "Set run_conf.use_fast_tokenizer: true, or turn train_on_completions_only off",
            )
        )
    raise ConfigError(
        ErrorItem(
            COMPLETIONS_ONLY_LOCATION,
            "completions-only loss needs a chat template that marks assistant output with {% generation %}, "
            "and the tokenizer's own template (keep-original) does not",
            "Choose a named chat_template_name (e.g. 'chat-ml'), or turn train_on_completions_only off",
        )
    )
