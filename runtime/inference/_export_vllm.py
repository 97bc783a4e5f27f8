"""An adapter folder that vLLM's LoRA loader accepts: LoRA tensors only, the base named, the run left as it is."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ftconfig.runtime.config._errors import ErrorItem, UserError
from ftconfig.runtime.inference._output import check_output_folder, staged_folder
from ftconfig.runtime.inference._run_dir import ADAPTER_CONFIG_NAME, ModelSource, adapter_embedding_modules

__all__ = ["ADAPTER_WEIGHTS_NAME", "export_vllm_adapter", "non_lora_tensors"]

ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
# Files of a checkpoint that are not the adapter and that vLLM has no use for.
_SKIPPED = {ADAPTER_WEIGHTS_NAME, ADAPTER_CONFIG_NAME, "training_args.bin", "README.md"}


def non_lora_tensors(weights: Path) -> list[str]:
    """Names of the tensors in an adapter file that are not LoRA factors (whole modules, token rows, ...)."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as handle:
        return sorted(name for name in handle.keys() if ".lora_" not in name)  # noqa: SIM118


def _refuse(source: ModelSource, reason: str) -> UserError:
    where = str(source.run_dir or source.checkpoint)
    return UserError(
        ErrorItem(
            where,
            f"cannot export an adapter vLLM can load: {reason}",
            f"Merge it instead (`ftmodel merge {where} MERGED_DIR`) and serve the merged model",
        )
    )


def _base_reference(source: ModelSource) -> str:
    """The base vLLM must serve with this adapter: a local folder as an absolute path, else the hub id."""
    model = source.base_run_conf.model
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else model


def export_vllm_adapter(source: ModelSource, output: Path) -> Path:
    """Write an adapter with only LoRA tensors to `output`, or refuse when that would change the model.

    Refused: a full-model run (no adapter), an adapter that carries embedding rows or whole modules
    (`modules_to_save`, trainable tokens: a grown vocabulary or trained embeddings), and an adapter whose base
    is a grown base model rather than a model vLLM can load by itself. Dropping those tensors would silently
    serve a different model, so the way out is `ftmodel merge`.
    """
    if source.adapter is None:
        raise _refuse(source, "the run trained the full model (NO_PEFT); there is no adapter")
    weights = source.adapter / ADAPTER_WEIGHTS_NAME
    if not weights.is_file():
        raise UserError(
            ErrorItem(
                str(source.adapter), f"has no {ADAPTER_WEIGHTS_NAME} (only safetensors adapters export)"
            )
        )
    carried = adapter_embedding_modules(source.adapter_config)
    extra = non_lora_tensors(weights)
    if carried or extra:
        shown = ", ".join(carried) if carried else ", ".join(extra[:4]) + (" ..." if len(extra) > 4 else "")
        raise _refuse(source, f"the adapter carries trained weights besides LoRA ({shown})")
    if source.grown_base:
        raise _refuse(
            source, "the adapter was trained on a grown base model (the chat template added tokens)"
        )
    check_output_folder(output, source)
    config: dict[str, Any] = dict(source.adapter_config)
    config.update(
        modules_to_save=None, trainable_token_indices=None, base_model_name_or_path=_base_reference(source)
    )
    with staged_folder(output) as staging:
        shutil.copy2(weights, staging / ADAPTER_WEIGHTS_NAME)
        (staging / ADAPTER_CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        for item in source.adapter.iterdir():
            if item.is_file() and item.name not in _SKIPPED:
                shutil.copy2(item, staging / item.name)  # tokenizer files, chat template, generation config
    return output
