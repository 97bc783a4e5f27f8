"""Rewrite configs of older and newer dialects into the current schema: one table of rules, applied in place.

Configs written for transformers 4 (`warmup_ratio`, `evaluation_strategy`, ...) and for TRL 0.x DPO
(`max_prompt_length`, `rpo_alpha`, ...) use keys the installed libraries removed; configs of the newer dialect
of the seed's system use `model_args` keys transformers 5 no longer has. Each rule names the key by its JSON
path, says what it becomes and why. The rules edit any mutable mapping, so the same table serves plain parsed
documents (detection on the validate path) and ruamel round-trip documents (`ftschema migrate`, which keeps
comments and key order). Torch-free: the validator imports it.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "RULES",
    "Change",
    "MigrationResult",
    "Rule",
    "Unmigratable",
    "migrate_document",
    "old_dialect_paths",
]


class Unmigratable(Exception):
    """A key a rule recognises but cannot rewrite mechanically (the user has to decide)."""


@dataclass(frozen=True)
class Change:
    """One rewrite, for the user: where, what it became, and why."""

    path: str
    becomes: str
    note: str

    def render(self) -> str:
        return f"{self.path}: {self.becomes} ({self.note})"


@dataclass(frozen=True)
class MigrationResult:
    changes: list[Change]
    problems: list[tuple[str, str]]  # (JSON path, why it cannot be migrated)


# A rule's action gets the mapping that holds the key, the key and its value, and edits the mapping in place.
# It returns what the key became (words), or raises Unmigratable.
Action = Callable[[MutableMapping[str, Any], str, Any], str]


@dataclass(frozen=True)
class Rule:
    """`path` is the key's JSON path (`$.training_args.warmup_ratio`); `becomes` what it turns into."""

    path: str
    becomes: str
    note: str
    action: Action

    @property
    def parent_keys(self) -> list[str]:
        return self.path.removeprefix("$.").split(".")[:-1]

    @property
    def key(self) -> str:
        return self.path.rsplit(".", 1)[1]


# --- editing helpers: keep the key's place (and, for ruamel documents, its comments) ---------------------------


def _is_round_trip(mapping: MutableMapping[str, Any]) -> bool:
    return hasattr(mapping, "ca") and hasattr(mapping, "insert")


def replace_key(mapping: MutableMapping[str, Any], old: str, new: str, value: Any) -> None:
    """Put `new: value` where `old` was (old removed), keeping the order of every other key."""
    if new in mapping and new != old:
        delete_key(mapping, new)
    if _is_round_trip(mapping):
        position = list(mapping).index(old)
        comment = mapping.ca.items.pop(old, None)  # type: ignore[attr-defined]
        del mapping[old]
        mapping.insert(position, new, value)  # type: ignore[attr-defined]
        if comment is not None:
            mapping.ca.items[new] = comment  # type: ignore[attr-defined]
        return
    items = [(new if key == old else key, value if key == old else item) for key, item in mapping.items()]
    mapping.clear()
    mapping.update(items)


def _last_leaf(mapping: Any) -> tuple[Any, Any] | None:
    """The innermost (collection, key-or-index) whose comment slot holds the lines after a nested block."""
    if not hasattr(mapping, "ca") or len(mapping) == 0:
        return None
    last = list(mapping)[-1] if isinstance(mapping, MutableMapping) else len(mapping) - 1
    child = mapping[last]
    if hasattr(child, "ca") and len(child) > 0 and not getattr(child.fa, "_flow_style", False):
        return _last_leaf(child) or (mapping, last)
    return mapping, last


def delete_key(mapping: MutableMapping[str, Any], key: str) -> None:
    """Remove a key; in a ruamel document, full-line comments stored on it (they precede the next key) move to
    the key before it, so only the deleted key's own end-of-line comment goes."""
    if not _is_round_trip(mapping):
        del mapping[key]
        return
    keys = list(mapping)
    index = keys.index(key)
    slot = mapping.ca.items.pop(key, None)  # type: ignore[attr-defined]
    del mapping[key]
    token = slot[2] if slot and len(slot) > 2 else None
    if token is None or ("\n" not in token.value.rstrip("\n") and not token.value.startswith("\n")):
        return
    _, _, following = token.value.partition("\n")
    if not following.strip():
        return
    if index == 0:
        if len(keys) > 1:  # the first key went: the lines become the comment above the next one
            lines = [line.strip() for line in following.splitlines() if line.strip()]
            column = len(following) - len(following.lstrip(" "))
            mapping.yaml_set_comment_before_after_key(  # type: ignore[attr-defined]
                keys[1], before="\n".join(line.removeprefix("#").strip() for line in lines), indent=column
            )
        return
    holder = _last_leaf(mapping[keys[index - 1]]) or (mapping, keys[index - 1])
    collection: Any
    collection, where = holder
    items = collection.ca.items
    current = items.get(where)
    if current is not None and len(current) > 2 and current[2] is not None:
        current[2].value += following
        return
    token.value = "\n" + following
    entry = list(current) if current is not None else [None, None, None, None]
    entry += [None] * (4 - len(entry))
    entry[2] = token
    items[where] = entry


def _conflict(mapping: MutableMapping[str, Any], target: str, value: Any) -> bool:
    return target in mapping and _plain(mapping[target]) != _plain(value)


def _plain(value: Any) -> Any:
    """A value as plain JSON data (ruamel scalars compare and print like their Python values)."""
    if isinstance(value, MutableMapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


# --- actions ---------------------------------------------------------------------------------------------------


def rename(target: str) -> Action:
    def action(mapping: MutableMapping[str, Any], key: str, value: Any) -> str:
        if _conflict(mapping, target, value):
            raise Unmigratable(f"both '{key}' and '{target}' are set, to different values; keep one")
        replace_key(mapping, key, target, value)
        return f"renamed to {target}"

    return action


def remove(mapping: MutableMapping[str, Any], key: str, value: Any) -> str:
    delete_key(mapping, key)
    return "removed"


def flag_to(target: str, when_true: Any, *, wins: bool = False) -> Action:
    """A boolean that, when true, becomes `target: when_true`; false is the default and simply goes.

    `wins`: transformers 4 let the flag override `target` (adafactor: true replaced optim), so it still does.
    """

    def action(mapping: MutableMapping[str, Any], key: str, value: Any) -> str:
        if value is False or value is None:
            delete_key(mapping, key)
            return "removed (it was off)"
        if value is not True:
            raise Unmigratable(f"expected true or false, got {value!r}")
        if _conflict(mapping, target, when_true):
            if not wins:
                raise Unmigratable(
                    f"'{key}: true' means {target}: {when_true!r}, but {target} is {mapping[target]!r}"
                )
            replaced = mapping[target]
            mapping[target] = when_true
            delete_key(mapping, key)
            return f"{target}: {when_true!r} (replacing {replaced!r}, as transformers 4 did)"
        replace_key(mapping, key, target, when_true)
        return f"{target}: {when_true!r}"

    return action


def into_mapping(target: str, inner: str) -> Action:
    """A key that moved into a mapping-valued option (`split_batches` -> `accelerator_config.split_batches`)."""

    def action(mapping: MutableMapping[str, Any], key: str, value: Any) -> str:
        container = mapping.get(target)
        if container is None:
            replace_key(mapping, key, target, {inner: value})
            return f"{target}.{inner}: {value!r}"
        if not isinstance(container, MutableMapping):
            raise Unmigratable(
                f"{target} is {container!r}, not a mapping to move '{key}' into; move it by hand"
            )
        if _conflict(container, inner, value):
            raise Unmigratable(f"{target}.{inner} is already {container[inner]!r}")
        container[inner] = value
        delete_key(mapping, key)
        return f"moved to {target}.{inner}"

    return action


def _warmup(mapping: MutableMapping[str, Any], key: str, value: Any) -> str:
    """warmup_ratio r -> warmup_steps r: transformers 5 reads a warmup_steps below 1 as a ratio of the steps."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise Unmigratable(
            f"warmup_ratio {value!r} is not a fraction in [0, 1); write warmup_steps (below 1: a ratio)"
        )
    steps = mapping.get("warmup_steps")
    if isinstance(steps, int | float) and not isinstance(steps, bool) and steps > 0:
        delete_key(mapping, key)
        return f"removed: warmup_steps {steps!r} is set and won over it in transformers 4 too"
    replace_key(mapping, key, "warmup_steps", float(value))
    return f"warmup_steps: {float(value)!r}"


def _tpu_metrics_debug(mapping: MutableMapping[str, Any], key: str, value: Any) -> str:
    if value is not True:
        delete_key(mapping, key)
        return "removed (it was off)"
    debug = mapping.get("debug") or ""
    if not isinstance(debug, str):
        raise Unmigratable("debug is a list; add 'tpu_metrics_debug' to it by hand")
    options = debug.split()
    joined = " ".join([*options, "tpu_metrics_debug"]) if "tpu_metrics_debug" not in options else debug
    if "debug" in mapping:
        mapping["debug"] = joined
        delete_key(mapping, key)
    else:
        replace_key(mapping, key, "debug", joined)
    return f"debug: {joined!r}"


def _hub_model_id(mapping: MutableMapping[str, Any], key: str, value: Any) -> str:
    """push_to_hub_model_id (+ push_to_hub_organization) -> hub_model_id 'organization/name'."""
    organization = mapping.get("push_to_hub_organization")
    target = f"{organization}/{value}" if organization else value
    if _conflict(mapping, "hub_model_id", target):
        raise Unmigratable(f"hub_model_id is already {mapping['hub_model_id']!r}; keep one")
    replace_key(mapping, key, "hub_model_id", target)
    if "push_to_hub_organization" in mapping:
        delete_key(mapping, "push_to_hub_organization")
    return f"hub_model_id: {target!r}"


def _hub_organization(mapping: MutableMapping[str, Any], key: str, value: Any) -> str:
    if value is None:
        delete_key(mapping, key)
        return "removed (it was null)"
    hub_id = mapping.get("hub_model_id")
    if isinstance(hub_id, str) and "/" not in hub_id:
        mapping["hub_model_id"] = f"{value}/{hub_id}"
        delete_key(mapping, key)
        return f"hub_model_id: {value}/{hub_id!r}"
    raise Unmigratable(f"write hub_model_id: '{value}/<repository name>' instead")


def _rpo_alpha(mapping: MutableMapping[str, Any], key: str, value: Any) -> str:
    """RPO's NLL term on the chosen answer is TRL 1's 'sft' loss, weighted next to the preference loss."""
    if value is None:
        delete_key(mapping, key)
        return "removed (it was null)"
    losses = mapping.get("loss_type", ["sigmoid"])
    losses = [losses] if isinstance(losses, str) else list(_plain(losses))
    if "sft" in losses:
        raise Unmigratable("loss_type already has 'sft'; set its weight in loss_weights by hand")
    weights = mapping.get("loss_weights")
    weights = [1.0] * len(losses) if weights is None else list(_plain(weights))
    if len(weights) != len(losses):
        raise Unmigratable("loss_weights and loss_type differ in length")
    new_losses, new_weights = [*losses, "sft"], [*weights, float(value)]
    for name, new in (("loss_type", new_losses), ("loss_weights", new_weights)):
        if name in mapping:
            mapping[name] = new
    for name, new in (("loss_type", new_losses), ("loss_weights", new_weights)):
        if name not in mapping:
            if key in mapping:
                replace_key(mapping, key, name, new)
            else:
                mapping[name] = new
    if key in mapping:
        delete_key(mapping, key)
    return f"loss_type: {new_losses}, loss_weights: {new_weights}"


def refuse_if_true(why: str) -> Action:
    def action(mapping: MutableMapping[str, Any], key: str, value: Any) -> str:
        if value:
            raise Unmigratable(why)
        delete_key(mapping, key)
        return "removed (it was off)"

    return action


def refuse_unless(keep: Callable[[Any], bool], why: str) -> Action:
    def action(mapping: MutableMapping[str, Any], key: str, value: Any) -> str:
        if not keep(value):
            raise Unmigratable(why)
        delete_key(mapping, key)
        return "removed"

    return action


# --- the rules -------------------------------------------------------------------------------------------------

TA = "$.training_args"
MA = "$.run_conf.model_args"
_TF4 = "removed in transformers 5"
_TRL1 = "removed in TRL 1"
_TRL1_LENGTH = (
    f"{_TRL1}: DPO truncates prompt and completion together to max_length, keeping the start; "
    "set max_length to the longest prompt + completion you want"
)

RULES: tuple[Rule, ...] = (
    # transformers 4 -> 5
    Rule(
        f"{TA}.warmup_ratio",
        "warmup_steps, same fraction",
        f"{_TF4}; a warmup_steps below 1 is a ratio",
        _warmup,
    ),
    Rule(f"{TA}.evaluation_strategy", "eval_strategy", "renamed in transformers 5", rename("eval_strategy")),
    Rule(
        f"{TA}.overwrite_output_dir",
        "removed",
        f"{_TF4}; pass `ftrun --overwrite` to replace an earlier run in output_dir",
        remove,
    ),
    Rule(f"{TA}.no_cuda", "use_cpu: true", _TF4, flag_to("use_cpu", True)),
    Rule(f"{TA}.logging_dir", "removed", f"{_TF4}; trackers choose their own log location", remove),
    Rule(f"{TA}.save_safetensors", "removed", f"{_TF4}; checkpoints are always safetensors", remove),
    Rule(
        f"{TA}.include_tokens_per_second",
        "include_num_input_tokens_seen: true",
        _TF4,
        flag_to("include_num_input_tokens_seen", True),
    ),
    Rule(f"{TA}.use_ipex", "removed", _TF4, remove),
    Rule(f"{TA}.jit_mode_eval", "removed", _TF4, remove),
    Rule(f"{TA}.use_mps_device", "removed", f"{_TF4}; the device is chosen automatically", remove),
    Rule(f"{TA}.tpu_num_cores", "removed", _TF4, remove),
    Rule(f"{TA}.push_to_hub_token", "hub_token", "renamed", rename("hub_token")),
    Rule(f"{TA}.half_precision_backend", "removed", _TF4, remove),
    Rule(f"{TA}.fp16_backend", "removed", _TF4, remove),
    Rule(f"{TA}.fp16_opt_level", "removed", f"{_TF4} (apex AMP is gone; fp16/bf16 use torch AMP)", remove),
    Rule(f"{TA}.mp_parameters", "removed", _TF4, remove),
    Rule(f"{TA}.past_index", "removed", _TF4, remove),
    Rule(f"{TA}.ray_scope", "removed", _TF4, remove),
    Rule(f"{TA}.use_legacy_prediction_loop", "removed", f"{_TF4}; there is one evaluation loop", remove),
    Rule(
        f"{TA}.split_batches",
        "accelerator_config.split_batches",
        "moved in transformers 5",
        into_mapping("accelerator_config", "split_batches"),
    ),
    Rule(
        f"{TA}.dispatch_batches",
        "accelerator_config.dispatch_batches",
        "moved in transformers 5",
        into_mapping("accelerator_config", "dispatch_batches"),
    ),
    Rule(
        f"{TA}.group_by_length",
        "train_sampling_strategy: group_by_length",
        f"{_TF4}; the sampler is chosen by train_sampling_strategy",
        flag_to("train_sampling_strategy", "group_by_length"),
    ),
    Rule(
        f"{TA}.adafactor",
        "optim: adafactor",
        f"{_TF4}; the optimizer is chosen by optim",
        flag_to("optim", "adafactor", wins=True),
    ),
    Rule(f"{TA}.torchdynamo", "torch_compile_backend", f"{_TF4}", rename("torch_compile_backend")),
    Rule(
        f"{TA}.fsdp_min_num_params",
        "fsdp_config.min_num_params",
        f"{_TF4}; FSDP options live in fsdp_config",
        into_mapping("fsdp_config", "min_num_params"),
    ),
    Rule(
        f"{TA}.fsdp_transformer_layer_cls_to_wrap",
        "fsdp_config.transformer_layer_cls_to_wrap",
        f"{_TF4}; FSDP options live in fsdp_config",
        into_mapping("fsdp_config", "transformer_layer_cls_to_wrap"),
    ),
    Rule(
        f"{TA}.include_inputs_for_metrics",
        "include_for_metrics: [inputs]",
        _TF4,
        flag_to("include_for_metrics", ["inputs"]),
    ),
    Rule(
        f"{TA}.push_to_hub_model_id",
        "hub_model_id (organization/name)",
        _TF4,
        _hub_model_id,
    ),
    Rule(f"{TA}.push_to_hub_organization", "part of hub_model_id", _TF4, _hub_organization),
    Rule(f"{TA}.tpu_metrics_debug", "debug: tpu_metrics_debug", _TF4, _tpu_metrics_debug),
    # TRL 0.x DPOConfig -> TRL 1
    Rule(f"{TA}.max_prompt_length", "removed", _TRL1_LENGTH, remove),
    Rule(f"{TA}.max_completion_length", "removed", _TRL1_LENGTH, remove),
    Rule(f"{TA}.max_target_length", "removed", _TRL1_LENGTH, remove),
    Rule(
        f"{TA}.rpo_alpha",
        "loss_type + ['sft'], loss_weights + [rpo_alpha]",
        f"{_TRL1}; RPO is the preference loss plus a weighted 'sft' loss",
        _rpo_alpha,
    ),
    Rule(
        f"{TA}.reference_free",
        "removed when false",
        _TRL1,
        refuse_if_true(
            f"{_TRL1}: DPO always compares with a reference model; delete the key or use another loss"
        ),
    ),
    Rule(f"{TA}.use_num_logits_to_keep", "removed", _TRL1, remove),
    Rule(f"{TA}.use_logits_to_keep", "removed", _TRL1, remove),
    Rule(
        f"{TA}.generate_during_eval", "removed", f"{_TRL1}; DPO no longer generates during evaluation", remove
    ),
    Rule(f"{TA}.is_encoder_decoder", "removed", f"{_TRL1}; read from the model", remove),
    Rule(f"{TA}.padding_value", "removed", f"{_TRL1}; padding uses the tokenizer's pad token", remove),
    Rule(f"{TA}.label_pad_token_id", "removed", f"{_TRL1}; completion masks replace label padding", remove),
    Rule(f"{TA}.force_use_ref_model", "removed", f"{_TRL1}; ftconfig chooses the reference model", remove),
    Rule(
        f"{TA}.ref_model_init_kwargs",
        "removed when empty",
        _TRL1,
        refuse_unless(
            lambda value: not value, f"{_TRL1}: the reference model loads like the model (run_conf)"
        ),
    ),
    Rule(
        f"{TA}.model_adapter_name",
        "removed when null",
        _TRL1,
        refuse_unless(
            lambda value: value is None, f"{_TRL1}: named adapters are not supported; delete the key"
        ),
    ),
    Rule(
        f"{TA}.ref_adapter_name",
        "removed when null",
        _TRL1,
        refuse_unless(
            lambda value: value is None, f"{_TRL1}: named adapters are not supported; delete the key"
        ),
    ),
    # newer dialect of the seed's system: open model_args with transformers 4 loading keys
    Rule(
        f"{MA}.from_tf",
        "removed when false",
        "transformers 5 loads no TensorFlow weights",
        refuse_if_true("transformers 5 cannot load TensorFlow weights; convert the model to safetensors"),
    ),
    Rule(
        f"{MA}.from_flax",
        "removed when false",
        "transformers 5 loads no Flax weights",
        refuse_if_true("transformers 5 cannot load Flax weights; convert the model to safetensors"),
    ),
    Rule(
        f"{MA}.output_loading_info",
        "removed when false",
        "it changes what from_pretrained returns",
        refuse_if_true("output_loading_info: true would break loading; delete the key"),
    ),
    Rule(
        f"{MA}.pretrained_model_name_or_path",
        "removed (run_conf.model names the model)",
        "run_conf.model is the model",
        refuse_unless(
            lambda value: value is None,
            "run_conf.model names the model; move this value there and delete the key",
        ),
    ),
)


def _parent(document: Any, keys: list[str]) -> MutableMapping[str, Any] | None:
    node = document
    for key in keys:
        if not isinstance(node, MutableMapping) or not isinstance(node.get(key), MutableMapping):
            return None
        node = node[key]
    return node if isinstance(node, MutableMapping) else None


def old_dialect_paths(document: Any) -> list[str]:
    """JSON paths of keys that `ftschema migrate` would rewrite (cheap: no edit, for error messages)."""
    found = []
    for rule in RULES:
        parent = _parent(document, rule.parent_keys)
        if parent is not None and rule.key in parent:
            found.append(rule.path)
    return found


def migrate_document(document: MutableMapping[str, Any]) -> MigrationResult:
    """Apply every rule to the document in place; a rule that cannot apply leaves its key and is reported."""
    changes: list[Change] = []
    problems: list[tuple[str, str]] = []
    for rule in RULES:
        parent = _parent(document, rule.parent_keys)
        if parent is None or rule.key not in parent:
            continue
        value = parent[rule.key]
        try:
            becomes = rule.action(parent, rule.key, value)
        except Unmigratable as exc:
            problems.append((rule.path, str(exc)))
            continue
        changes.append(Change(rule.path, becomes, rule.note))
    return MigrationResult(changes, problems)
