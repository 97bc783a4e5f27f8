"""What a run directory (or a checkpoint, or a plain model folder) holds, read from its files; no weights.

A run directory has `resolved_config.json` (the config, which names the base model and the chat template) and
`checkpoint-final` (a full model, or an adapter with `adapter_config.json`). An adapter trained while a chat
template grew the vocabulary needs a base with the same vocabulary: either the saved grown base
(`checkpoint-new-basemodel`, when the run wrote one) or the original base with its embeddings resized to the
tokenizer, the adapter then carrying the new rows itself (`modules_to_save` or `trainable_token_indices`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ftconfig.runtime.config._errors import ConfigError, ErrorItem, UserError
from ftconfig.runtime.training._output import RESOLVED_CONFIG_NAME

if TYPE_CHECKING:
    from ftconfig.generated.config import DPOFinetuningConfig, FinetuningConfig, RunConfig

__all__ = [
    "ADAPTER_CONFIG_NAME",
    "ModelSource",
    "adapter_embedding_modules",
    "read_model_source",
]

ADAPTER_CONFIG_NAME = "adapter_config.json"


@dataclass(frozen=True)
class ModelSource:
    """Where each part of a trained model comes from.

    `checkpoint` holds the tokenizer saved for inference and either the full model or the adapter
    (`adapter` is then the same folder). `base_run_conf` loads the base model (for a full model: the model
    itself). `grown_base` says the base is the run's saved grown base model. `config` is the run's config when
    there is a run directory.
    """

    checkpoint: Path
    adapter: Path | None
    base_run_conf: RunConfig
    grown_base: bool
    config: FinetuningConfig | DPOFinetuningConfig | None
    run_dir: Path | None
    adapter_config: dict[str, Any]
    tokenizer: str | None = None

    @property
    def tokenizer_source(self) -> str:
        """Where the inference tokenizer is read from: the checkpoint, unless a tokenizer was named."""
        return self.tokenizer or str(self.checkpoint)

    @property
    def describe(self) -> str:
        if self.adapter is None:
            return f"model {self.checkpoint}"
        return f"adapter {self.adapter} on {self.base_run_conf.model}"


def _read_json(path: Path, location: str) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(ErrorItem(location, f"cannot read {path} ({exc})")) from None
    if not isinstance(document, dict):
        raise ConfigError(ErrorItem(location, f"{path} is not a JSON object"))
    return document


def _read_run_config(run_dir: Path) -> FinetuningConfig | DPOFinetuningConfig:
    """The config of a finished run, as its resolved_config.json recorded it."""
    from ftconfig.runtime.config._load import load_config

    path = run_dir / RESOLVED_CONFIG_NAME
    document = _read_json(path, str(path))
    if not isinstance(document.get("config"), dict):
        raise ConfigError(ErrorItem(str(path), "has no 'config' object; was it written by ftrun?"))
    try:
        return load_config(document["config"])
    except UserError as exc:
        raise exc.with_source(f"{path} ($.config)") from None


def adapter_embedding_modules(adapter_config: dict[str, Any]) -> list[str]:
    """Modules whose weights (whole matrices or some rows) an adapter carries besides its low-rank factors."""
    modules: list[str] = []
    saved = adapter_config.get("modules_to_save")
    if isinstance(saved, str):
        modules.append(saved)
    elif isinstance(saved, list):
        modules += [str(name) for name in saved]
    tokens = adapter_config.get("trainable_token_indices")
    if isinstance(tokens, dict):
        modules += [f"{name} (rows {', '.join(map(str, rows))})" for name, rows in tokens.items()]
    elif isinstance(tokens, list) and tokens:
        modules.append(f"embed_tokens (rows {', '.join(map(str, tokens))})")
    return modules


def _base_of_run(
    config: FinetuningConfig | DPOFinetuningConfig, run_dir: Path, base_model: str | None
) -> tuple[RunConfig, bool]:
    """The run_conf that loads the adapter's base: the grown base the run saved, else the run's model (a DPO
    run saves no grown base: its adapter carries the new rows)."""
    from ftconfig.runtime.config._structs import is_dpo

    run_conf = config.run_conf
    if base_model is not None:
        return msgspec.structs.replace(run_conf, model=base_model, tokenizer=None), False
    if is_dpo(config):
        return msgspec.structs.replace(run_conf, tokenizer=None), False
    grown = run_dir / config.sft_args.save_name_if_new_basemodel
    if (grown / "config.json").is_file():
        return msgspec.structs.replace(run_conf, model=str(grown), tokenizer=None), True
    return msgspec.structs.replace(run_conf, tokenizer=None), False


def _check_base_exists(run_conf: RunConfig, where: str) -> None:
    """A relative base path is read from the current directory; say so when it is not there."""
    from ftconfig.runtime.model._references import local_problem

    problem = local_problem(run_conf.model, run_conf.model_args.subfolder)
    if problem is not None:
        raise UserError(
            ErrorItem(
                where,
                f"the base model {run_conf.model!r} cannot be found ({problem.message})",
                "Relative paths are read from the current directory: run from where ftrun ran, "
                "or pass --base-model PATH",
            )
        )


def _plain_run_conf(model: str) -> RunConfig:
    from ftconfig.generated.config import RunConfig

    return RunConfig(model=model)


def read_model_source(reference: str | Path, *, base_model: str | None = None) -> ModelSource:
    """Work out what `reference` is: a run directory, one of its checkpoints, an adapter or a model folder.

    Raises a UserError naming the argument when it is none of these. Reads only small JSON files.
    """
    path = Path(reference).expanduser()
    run_dir: Path | None = None
    config: FinetuningConfig | DPOFinetuningConfig | None = None
    if (path / RESOLVED_CONFIG_NAME).is_file():
        run_dir = path
        config = _read_run_config(path)
        checkpoint = path / config.run_conf.final_checkpoint_name
        if not checkpoint.is_dir():
            raise UserError(
                ErrorItem(
                    str(path),
                    f"the run has no {config.run_conf.final_checkpoint_name} (it has not finished)",
                    "Wait for ftrun to finish, or pass one of its checkpoint-<N> folders",
                )
            )
    elif path.is_dir() and (path.parent / RESOLVED_CONFIG_NAME).is_file():
        run_dir = path.parent
        config = _read_run_config(run_dir)
        checkpoint = path
    elif path.is_dir():
        checkpoint = path
    else:
        from ftconfig.runtime.model._references import looks_like_hub_id

        if not path.exists() and looks_like_hub_id(str(reference)):
            run_conf = _plain_run_conf(str(reference))
            return ModelSource(Path(str(reference)), None, run_conf, False, None, None, {})
        raise UserError(
            ErrorItem(
                str(reference),
                "not a run directory, a checkpoint or a model folder",
                "Pass the output_dir of an ftrun run (it holds resolved_config.json)",
            )
        )
    adapter_file = checkpoint / ADAPTER_CONFIG_NAME
    if adapter_file.is_file():
        adapter_config = _read_json(adapter_file, str(adapter_file))
        if config is not None and run_dir is not None:
            base_run_conf, grown = _base_of_run(config, run_dir, base_model)
            where = f"{run_dir / RESOLVED_CONFIG_NAME} ($.config.run_conf.model)"
        else:
            base = base_model or adapter_config.get("base_model_name_or_path")
            if not isinstance(base, str) or not base:
                raise UserError(
                    ErrorItem(str(adapter_file), "does not name its base model", "Pass --base-model PATH")
                )
            base_run_conf, grown = _plain_run_conf(base), False
            where = f"{adapter_file} (base_model_name_or_path)"
        _check_base_exists(base_run_conf, where if base_model is None else "--base-model")
        return ModelSource(checkpoint, checkpoint, base_run_conf, grown, config, run_dir, adapter_config)
    if not (checkpoint / "config.json").is_file():
        raise UserError(
            ErrorItem(
                str(checkpoint),
                "holds neither a model (config.json) nor an adapter (adapter_config.json)",
                "Pass a run directory, a checkpoint folder or a model folder",
            )
        )
    run_conf = (
        msgspec.structs.replace(config.run_conf, model=str(checkpoint), tokenizer=None)
        if config is not None
        else _plain_run_conf(str(checkpoint))
    )
    return ModelSource(checkpoint, None, run_conf, False, config, run_dir, {})
