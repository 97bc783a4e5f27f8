"""The embedding rows of a chat template's new tokens in an adapter run: what trains, what is saved.

With an adapter, only the new tokens' rows of the input and output embeddings train (PEFT's trainable tokens,
`trainable_token_indices`, which LoRA and AdaLoRA have) and only those rows are saved with the adapter. The
adapter then fits any copy of the original base model resized to the tokenizer's length: the rows it holds
replace the resized rows, so how the loader initialises them does not matter, and no grown copy of the base
model is needed. Adapter types without trainable-token support fall back to training (and saving) whole
embedding copies.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from ftconfig.runtime.config._errors import ConfigError, ErrorItem

__all__ = [
    "FULL_MODEL",
    "MODULES_TO_SAVE",
    "NOT_TRAINED",
    "TRAINABLE_TOKENS",
    "NewTokenRows",
    "add_new_rows",
    "check_new_token_training",
    "describe_training",
    "finish_adapter_with_new_rows",
    "lora_targeted_embeddings",
    "new_rows_method",
]

TRAINABLE_TOKENS = "trainable-tokens"
MODULES_TO_SAVE = "modules-to-save"
FULL_MODEL = "full-model"
NOT_TRAINED = "not-trained"


@dataclass(frozen=True)
class NewTokenRows:
    """Where the new tokens live in a loaded model: their ids and the embedding modules holding their rows.

    `input_module`/`output_module` are the short names PEFT matches (`embed_tokens`, `lm_head`); `tied` means
    both are one tensor; `grown` says whether the embeddings had to grow for them.
    """

    token_ids: tuple[int, ...]
    input_module: str
    output_module: str | None
    tied: bool
    grown: bool

    @property
    def modules(self) -> list[str]:
        return [self.input_module] + ([self.output_module] if self.output_module else [])


def _supports_trainable_tokens(peft_type: str) -> bool:
    """Whether peft's config class for this type has `trainable_token_indices` (LoRA and AdaLoRA in peft 0.21).

    Read from peft's source where possible, so the dry run (which keeps peft out) decides as the real run does.
    """
    from ftconfig.runtime.model._peft_fields import peft_config_fields

    fields = peft_config_fields(peft_type)
    if fields is not None:
        return "trainable_token_indices" in fields.fields
    import dataclasses

    import peft

    cls = peft.PEFT_TYPE_TO_CONFIG_MAPPING.get(peft.PeftType(peft_type))
    return cls is not None and any(
        field.name == "trainable_token_indices" for field in dataclasses.fields(cls)
    )


def new_rows_method(
    peft_type: str,
    peft_kwargs: dict[str, Any],
    embedding_modules: tuple[str, ...] = ("embed_tokens", "lm_head"),
) -> str:
    """How a run with this adapter trains the new tokens' rows (one of the constants above).

    Adapter types with trainable-token support train just the rows, unless peft_kwargs already lists an
    embedding in modules_to_save (then that whole copy trains anyway); other types train whole copies.
    """
    if peft_type == "NO_PEFT":
        return FULL_MODEL
    if peft_type == "PRETRAINED_PEFT":
        return NOT_TRAINED
    listed = peft_kwargs.get("modules_to_save") or []
    listed = [listed] if isinstance(listed, str) else list(listed)
    if _supports_trainable_tokens(peft_type) and not set(listed) & set(embedding_modules):
        return TRAINABLE_TOKENS
    return MODULES_TO_SAVE


def lora_targeted_embeddings(
    peft_kwargs: dict[str, Any], embedding_modules: tuple[str, ...] = ("embed_tokens", "lm_head")
) -> list[str]:
    """The embedding modules that peft_kwargs.target_modules puts LoRA on (a list entry naming the module, or a
    pattern that matches it); "all-linear" never includes the output layer."""
    import re

    targets = peft_kwargs.get("target_modules")
    found = []
    for name in embedding_modules:
        keys = (name, f"model.{name}")
        if isinstance(targets, str) and targets != "all-linear":
            hit = any(re.fullmatch(targets, key) for key in keys)
        elif isinstance(targets, list):
            hit = any(target == name or str(target).endswith(f".{name}") for target in targets)
        else:
            hit = False
        if hit:
            found.append(name)
    return found


def check_new_token_training(
    peft_type: str,
    peft_kwargs: dict[str, Any],
    token_ids: tuple[int, ...],
    embedding_modules: tuple[str, ...] = ("embed_tokens", "lm_head"),
) -> None:
    """A chat template's new tokens and LoRA on an embedding module cannot go together (preflight, and again
    with the model's real module names): PEFT puts either LoRA or trainable rows on a module, never both, and
    the new rows must be trained and saved as rows, else they are random when the adapter is loaded."""
    if not token_ids or new_rows_method(peft_type, peft_kwargs, embedding_modules) != TRAINABLE_TOKENS:
        return
    targeted = lora_targeted_embeddings(peft_kwargs, embedding_modules)
    if targeted:
        raise ConfigError(
            ErrorItem(
                "$.peft_conf.peft_kwargs.target_modules",
                f"LoRA on {' and '.join(targeted)} cannot be combined with the {len(token_ids)} tokens the chat "
                "template adds: their rows of the input and output embeddings train as trainable tokens, and "
                "PEFT cannot put LoRA on the same module",
                f"Leave {' and '.join(targeted)} out of target_modules (the new rows train anyway), or list "
                "them in peft_kwargs.modules_to_save to train whole copies, or use keep-original.",
            )
        )


def _merged_indices(current: Any, ids: tuple[int, ...]) -> list[int]:
    return sorted(set(current or []) | set(ids))


def _add_trainable_token_indices(config: Any, rows: NewTokenRows) -> None:
    """The new ids join trainable_token_indices. A list means the input embeddings, and PEFT ties a tied
    output embedding to it; untied, both modules are named (else the new tokens could never be predicted)."""
    current = config.trainable_token_indices
    if rows.tied or rows.output_module is None:
        if isinstance(current, dict):
            merged = _merged_indices(current.get(rows.input_module), rows.token_ids)
            config.trainable_token_indices = {**current, rows.input_module: merged}
        else:
            config.trainable_token_indices = _merged_indices(current, rows.token_ids)
        return
    by_module = dict(current) if isinstance(current, dict) else {rows.input_module: list(current or [])}
    for module in rows.modules:
        by_module[module] = _merged_indices(by_module.get(module), rows.token_ids)
    config.trainable_token_indices = by_module


def _add_modules_to_save(config: Any, rows: NewTokenRows, peft_kwargs: dict[str, Any]) -> None:
    """Fallback: whole copies of both embeddings train; a tied pair stays one copy where the type can say so
    (peft's `ensure_weight_tying`), unless peft_kwargs sets that itself."""
    current = getattr(config, "modules_to_save", None)
    existing = [current] if isinstance(current, str) else list(current or [])
    config.modules_to_save = existing + [name for name in rows.modules if name not in existing]
    if rows.tied and hasattr(config, "ensure_weight_tying") and "ensure_weight_tying" not in peft_kwargs:
        config.ensure_weight_tying = True


def add_new_rows(config: Any, rows: NewTokenRows, *, peft_type: str, peft_kwargs: dict[str, Any]) -> str:
    """Make a freshly built peft config train the new tokens' rows (changed in place); returns the method."""
    check_new_token_training(peft_type, peft_kwargs, rows.token_ids, tuple(rows.modules))
    method = new_rows_method(peft_type, peft_kwargs, tuple(rows.modules))
    if method == TRAINABLE_TOKENS:
        _add_trainable_token_indices(config, rows)
    else:
        _add_modules_to_save(config, rows, peft_kwargs)
    return method


def finish_adapter_with_new_rows(model: Any) -> None:
    """Two fixes on a PEFT model that trains new rows, made once after wrapping.

    Saves: every save (checkpoints, final) writes the adapter and the new rows only. PEFT's default
    (`save_embedding_layers="auto"`) adds both full embedding matrices whenever the vocabulary was resized,
    which is always the case here and makes the adapter about as large as the embeddings; the trained rows are
    in the adapter and every other row equals the original base model's.

    Output head: TRL's SFTTrainer computes the loss from `lm_head.weight` and `lm_head.bias`, and PEFT's
    trainable-token wrapper only exposes `weight` (the rows merged in, gradients flowing to them). The wrapped
    layer's bias is made visible as a plain attribute (not a parameter: it is neither trained nor saved).
    """
    from peft.utils.other import TrainableTokensWrapper

    model.save_pretrained = functools.partial(type(model).save_pretrained, model, save_embedding_layers=False)
    for module in model.modules():
        if isinstance(module, TrainableTokensWrapper) and "bias" not in module.__dict__:
            base = module.token_adapter.get_base_layer()
            object.__setattr__(module, "bias", getattr(base, "bias", None))


def describe_training(
    *,
    peft_type: str,
    peft_kwargs: dict[str, Any],
    token_ids: tuple[int, ...],
    rows: int | None,
    tied: bool,
    final_name: str,
    base_copy: str | None,
) -> tuple[list[str], list[str]]:
    """What a run will train and what it will save, in words, for the dry-run plan (no weights needed).

    `rows` is the base model's embedding row count (None when its config does not say); `base_copy` is the
    folder a grown base-model copy goes to, None when none is written.
    """
    method = new_rows_method(peft_type, peft_kwargs)
    adapter = f"{peft_type} adapter"
    if peft_type == "LORA" and "target_modules" in peft_kwargs:
        adapter += f" on {peft_kwargs['target_modules']}"
    trained = ["every parameter of the model"] if method == FULL_MODEL else [adapter]
    saved = [
        f"{final_name}: " + ("the full model" if method == FULL_MODEL else "the adapter") + " and tokenizer"
    ]
    if not token_ids:
        return trained, saved
    listed = _ranges(token_ids)
    size = max(token_ids) + 1
    growth = f"grown from {rows} to {size} rows" if rows is not None and size > rows else "no growth"
    if method == TRAINABLE_TOKENS:
        notes = "; ".join((["tied: one copy"] if tied else []) + [growth])
        trained.append(f"rows {listed} of the input and output embeddings ({notes})")
        saved[0] = f"{final_name}: the adapter with rows {listed} and tokenizer (no full embedding matrices)"
    elif method == MODULES_TO_SAVE:
        trained.append(f"whole input and output embeddings, copied into the adapter ({growth})")
        saved[0] = f"{final_name}: the adapter with full copies of the embeddings and tokenizer"
    elif method == NOT_TRAINED:
        trained.append(f"rows {listed} are not trained (the pretrained adapter brings its own config)")
    else:
        trained[0] += f" (new token rows {listed}, {growth})"
    if base_copy is not None and method != FULL_MODEL:
        saved.append(
            f"{base_copy}: a copy of the base model with grown embeddings (sft_args.save_new_basemodel)"
        )
    return trained, saved


def _ranges(ids: tuple[int, ...]) -> str:
    """`512-513, 600` for ids 512, 513, 600."""
    spans: list[list[int]] = []
    for token_id in sorted(ids):
        if spans and token_id == spans[-1][1] + 1:
            spans[-1][1] = token_id
        else:
            spans.append([token_id, token_id])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
