"""The commented starter config that `ftschema init` writes."""

from __future__ import annotations

import os
from pathlib import Path

from ftconfig.tools._paths import BUNDLE_FILE

__all__ = ["STARTER_TEMPLATE", "render_starter", "schema_reference"]

STARTER_TEMPLATE = """\
# yaml-language-server: $schema={schema_ref}
# An ftconfig supervised finetuning run. Your editor completes and checks this file from the schema above.
# Validate: ftschema validate {name}    Plan: ftrun {name} --dry-run    Train: ftrun {name}

data_conf:
  training_data:
    type: CONCATENATION            # or PRECOMPUTE_WEIGHTED_MIX with sampling_weight per dataset
    datasets:
      - path: data/train.jsonl     # JSON Lines: {{"messages": [{{"role": "user", "content": "..."}}, ...]}}
  validation_data:
    type: AUTO_SPLIT               # or CONCATENATION (own files) or NONE
    ratio: 0.1
  chat_template_name: chat-ml      # mistral-with-system, chat-ml, poro, keep-original, simplified-llama31
  missing_pad_token_strategy: bos-repurpose

training_args:                     # transformers TrainingArguments (batch sizes come from batchsize_conf)
  output_dir: outputs/my-run
  learning_rate: 2.0e-4
  num_train_epochs: 1
  lr_scheduler_type: cosine
  warmup_steps: 0.05               # a float below 1 is a ratio of the total steps
  logging_steps: 10
  save_strategy: steps
  save_steps: 200
  eval_strategy: steps
  eval_steps: 200
  seed: 42

batchsize_conf:
  total_train_batch_size: 32       # = processes x per-device batch x accumulation
  max_per_device_train_batch_size: 4

peft_conf:
  peft_type: LORA                  # NO_PEFT for full finetuning, PRETRAINED_PEFT to continue an adapter
  task_type: CAUSAL_LM
  peft_kwargs:
    r: 16
    lora_alpha: 32
    lora_dropout: 0.05
    target_modules: all-linear

run_conf:
  model: /local_resources/basemodel   # a local path or a HuggingFace model id
  model_args:
    torch_dtype: auto
  resume_from_checkpoint: auto

sft_args:
  max_seq_length: 2048             # longer examples are dropped (and counted)
  train_on_completions_only: true
"""


def schema_reference(target: Path) -> str:
    """How `target` should point at the bundled schema: a path relative to it when possible."""
    try:
        return os.path.relpath(BUNDLE_FILE, target.resolve().parent)
    except ValueError:  # another drive on Windows
        return str(BUNDLE_FILE)


def render_starter(target: Path, schema_ref: str | None = None) -> str:
    return STARTER_TEMPLATE.format(schema_ref=schema_ref or schema_reference(target), name=target.name)
