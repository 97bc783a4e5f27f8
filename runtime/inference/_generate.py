"""`ftmodel generate`: a generation config's prompts answered in left-padded batches, one record per answer."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ftconfig.runtime.config._errors import ConfigError, DataError, ErrorItem, UserError
from ftconfig.runtime.data._records import read_conversations, read_file_bytes
from ftconfig.runtime.inference._gen_params import check_gen_params
from ftconfig.runtime.inference._run_dir import ADAPTER_CONFIG_NAME, ModelSource, read_model_source

if TYPE_CHECKING:
    from ftconfig.generated.config import GenerationConfig

__all__ = ["Prompt", "check_output_file", "generate_records", "read_prompts", "source_for", "write_records"]

MODEL_CONF = "$.model_conf"
OPEN_PROMPT_DATASET = "_open_prompt_data_"


@dataclass(frozen=True)
class Prompt:
    """One conversation to continue, and the answers the data holds for it (possibly none)."""

    dataset: str
    id: str
    messages: list[dict[str, str]]
    reference_answers: list[str]


def read_prompts(config: GenerationConfig) -> list[Prompt]:
    """The prompts of `prompt_conf`. With eval-data each conversation is cut after its last user turn; the
    assistant turn that followed it, when there is one, is the reference answer."""
    from ftconfig.generated.config import OpenInputPrompts

    prompt_conf = config.prompt_conf
    if isinstance(prompt_conf, OpenInputPrompts):
        text = prompt_conf.input if isinstance(prompt_conf.input, str) else ""  # decoding never leaves UNSET
        message = [{"role": "user", "content": text}]
        return [Prompt(OPEN_PROMPT_DATASET, str(i), message, []) for i in range(prompt_conf.num_samples)]
    path = prompt_conf.data.path
    raw = read_file_bytes(Path(path), location="$.prompt_conf.data.path", shown=path)
    prompts, problems = [], []
    for index, conversation in enumerate(read_conversations(raw, name=path)):
        users = [i for i, message in enumerate(conversation) if message["role"] == "user"]
        if not users:
            problems.append(ErrorItem(f"{path}: conversation {index + 1}", "has no user turn to answer"))
            continue
        last = users[-1]
        following = conversation[last + 1 : last + 2]
        references = [m["content"] for m in following if m["role"] == "assistant"]
        prompts.append(
            Prompt(
                path,
                str(index),
                [{"role": m["role"], "content": m["content"]} for m in conversation[: last + 1]],
                references,
            )
        )
    if problems:
        raise DataError(problems)
    return prompts


def _relocated(error: ConfigError) -> ConfigError:
    """Errors from the shared model loader name run_conf; in a generation config the same keys are model_conf."""
    items = [
        ErrorItem(item.location.replace("$.run_conf", MODEL_CONF, 1), item.message, item.hint)
        for item in error.items
    ]
    return ConfigError(items)


def source_for(config: GenerationConfig) -> ModelSource:
    """What model_conf describes: a model (or an ftrun output_dir), an adapter on it, the tokenizer to use."""
    from ftconfig.generated.config import RunConfig
    from ftconfig.runtime.model._references import local_problem, looks_like_hub_id

    model_conf = config.model_conf
    if model_conf.adapter is None and (Path(model_conf.model) / "resolved_config.json").is_file():
        source = read_model_source(model_conf.model)
        base = msgspec.structs.replace(source.base_run_conf, model_args=model_conf.model_args)
        return dataclasses.replace(source, base_run_conf=base, tokenizer=model_conf.tokenizer)
    problem = local_problem(model_conf.model, model_conf.model_args.subfolder)
    if problem is not None:
        raise _relocated(ConfigError(problem))
    run_conf = RunConfig(model=model_conf.model, model_args=model_conf.model_args)
    adapter_config: dict[str, Any] = {}
    adapter = Path(model_conf.adapter) if model_conf.adapter is not None else None
    if adapter is not None:
        if not (adapter / ADAPTER_CONFIG_NAME).is_file():
            raise ConfigError(
                ErrorItem(
                    f"{MODEL_CONF}.adapter",
                    f"{str(adapter)!r} is not an adapter folder (it has no {ADAPTER_CONFIG_NAME})",
                    "Point it at a checkpoint written by an adapter run (e.g. output_dir/checkpoint-final)",
                )
            )
        adapter_config = json.loads((adapter / ADAPTER_CONFIG_NAME).read_text(encoding="utf-8"))
    tokenizer = model_conf.tokenizer or model_conf.adapter or model_conf.model
    named = model_conf.tokenizer
    if named is not None and not Path(named).exists() and not looks_like_hub_id(named):
        raise ConfigError(ErrorItem(f"{MODEL_CONF}.tokenizer", f"no tokenizer folder at {named!r}"))
    checkpoint = adapter if adapter is not None else Path(model_conf.model)
    return ModelSource(checkpoint, adapter, run_conf, False, None, None, adapter_config, tokenizer)


def _prompt_limit(loaded: Any, max_new_tokens: int) -> int | None:
    """How many prompt tokens fit before the answer: the model's positions minus the answer's length."""
    positions = getattr(loaded.model.config, "max_position_embeddings", None)
    if not isinstance(positions, int):
        return None
    return max(positions - max_new_tokens, 1)


def generate_records(
    config: GenerationConfig, *, batch_size: int = 8, progress: bool = True
) -> list[dict[str, Any]]:
    """Answer every prompt; one record per answer (num_return_sequences answers per prompt).

    Everything the config and data can get wrong is checked before the model loads. Prompts go in batches,
    longest first (less padding), padded on the left so that every answer starts right after its prompt.
    """
    import torch
    from tqdm.auto import tqdm

    from ftconfig.runtime.inference._load import load_inference_model
    from ftconfig.runtime.inference._prompts import render_prompt

    gen_params = check_gen_params(dict(config.hf_gen_params))
    prompts = read_prompts(config)
    source = source_for(config)
    try:
        loaded = load_inference_model(source, quant_conf=config.quant_conf)
    except ConfigError as exc:
        raise _relocated(exc) from None
    tokenizer = loaded.tokenizer
    generation_config = loaded.model.generation_config
    shown_params = {
        **gen_params,
        "eos_token_id": generation_config.eos_token_id,
        "pad_token_id": generation_config.pad_token_id,
    }
    max_new_tokens = int(gen_params.get("max_new_tokens") or 0)
    limit = _prompt_limit(loaded, max_new_tokens)
    texts = [render_prompt(tokenizer, prompt.messages) for prompt in prompts]
    encoded = [tokenizer(text, add_special_tokens=True)["input_ids"] for text in texts]
    truncated = [limit is not None and len(ids) > limit for ids in encoded]
    encoded = [
        ids[-limit:] if limit is not None and cut else ids
        for ids, cut in zip(encoded, truncated, strict=True)
    ]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    returned = int(gen_params.get("num_return_sequences", 1))
    answers: dict[int, list[str]] = {}
    with tqdm(total=len(prompts), desc="generating", unit="prompt", disable=not progress) as bar:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            padded = tokenizer.pad({"input_ids": [encoded[i] for i in chunk]}, return_tensors="pt")
            batch = {key: value.to(loaded.device) for key, value in padded.items()}
            with torch.no_grad():
                output = loaded.model.generate(**batch, **gen_params)
            new_tokens = output[:, batch["input_ids"].shape[1] :]
            decoded = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for position, index in enumerate(chunk):
                answers[index] = decoded[position * returned : (position + 1) * returned]
            bar.update(len(chunk))
    records = []
    for index, prompt in enumerate(prompts):
        for sample, answer in enumerate(answers[index]):
            records.append(
                {
                    "dataset": prompt.dataset,
                    "id": prompt.id if returned == 1 else f"{prompt.id}.{sample}",
                    "prompt": prompt.messages[-1]["content"],
                    "messages": prompt.messages,
                    "answer": answer,
                    "reference_answers": prompt.reference_answers,
                    "truncated": truncated[index],
                    "gen_params": shown_params,
                }
            )
    return records


def write_records(records: list[dict[str, Any]], output: Path) -> None:
    """JSON Lines, or one YAML list when the file name ends in .yaml/.yml; written whole or not at all."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial-{os.getpid()}")
    try:
        with partial.open("w", encoding="utf-8") as handle:
            if output.suffix in (".yaml", ".yml"):
                from ruamel.yaml import YAML

                yaml = YAML(typ="safe", pure=True)
                yaml.default_flow_style = False
                yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]  # keep record key order
                yaml.dump(records, handle)
            else:
                for record in records:
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        partial.replace(output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def check_output_file(output: Path) -> None:
    """OUTPUT is a file to write, not a folder."""
    if output.is_dir():
        raise UserError(ErrorItem("OUTPUT", f"{output} is a folder", "Name a .jsonl or .yaml file"))
