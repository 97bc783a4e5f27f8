# Generated from schema/*.schema.json by `ftschema gen-code`. Do not edit by hand.

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from msgspec import UNSET, Meta
from msgspec import Struct as _Struct
from msgspec import UnsetType, convert, field


class Struct(_Struct, kw_only=True, forbid_unknown_fields=True):
    pass


ChatTemplateName: TypeAlias = Annotated[
    Literal['mistral-with-system', 'chat-ml', 'poro', 'keep-original', 'simplified-llama31'],
    Meta(
        description="Chat templates that ftconfig can install on the tokenizer (keep-original leaves the tokenizer's own).",
        title='ChatTemplateName',
    ),
]


MissingPadTokenStrategy: TypeAlias = Annotated[
    Literal['eos-repurpose', 'bos-repurpose', 'unk-repurpose', 'unk-convert-to-eos'],
    Meta(
        description="Specifies the available missing pad token strategies.\n\nWe've shown in a small set of experiments that repurposing EOS can start to hurt performance while the other options seem to work equally well.\n\nRepurposing EOS is the default in many online sources, but it is actually a bad idea if we want to predict EOS, as all the pad_token_ids get ignored in loss computation, and thus the model does not learn to predict the end of the text. However, for models that have additional tokens for end of message, end of turn, etc. this is not so dangerous.\n\nRepurposing BOS is similar to repurposing EOS, but since we do not need to predict BOS, this may be more sensible.\n\nRepurposing UNK can work with tokenizers that never produce UNKs in normal data (e.g. Mistral tokenizers should have a byte fall-back so that everything can be tokenized).\n\nUNK_CONVERT_TO_EOS uses a hack where the unk_token_id is initially used for padding, but in the collation phase the input-side UNKs (padding) gets set to EOS, so that the input-side padding looks like EOS. On the output-side, the UNKs (padding) still gets ignored. NOTE: This will leave the tokenizer's pad_token_id set to the unk_token_id; so any subsequent use of the model where padding is involved should somehow explicitly set the pad_token_id again.",
        title='MissingPadTokenStrategy',
    ),
]


class DatasetDefinition(Struct, kw_only=True):
    """
    Define how to load a dataset.
    """

    path: Annotated[
        str,
        Meta(
            description='Local path to a JSONL file in the finetuning data format.',
            min_length=1,
        ),
    ]


class WeightedDatasetDefinition(Struct, kw_only=True):
    """
    Define a dataset, with a weight for sampling.
    """

    path: Annotated[
        str,
        Meta(
            description='Local path to a JSONL file in the finetuning data format.',
            min_length=1,
        ),
    ]
    sampling_weight: (
        Annotated[
            float,
            Meta(
                description='Relative sampling weight; 0 skips the dataset. When every weight is exactly 1.0 the datasets are interleaved round robin.',
                ge=0.0,
            ),
        ]
    ) = 1.0


class ConcatenationDataInput(Struct, kw_only=True, tag_field='type', tag='CONCATENATION'):
    """
    A simple list of datasets.

    These are simply concatenated, the same as sampling all with equal weight. Each file is JSON Lines (or one JSON array) with one chat conversation per line, written as `{"messages": [{"role": "user", "content": "..."}, ...]}`.
    """

    datasets: Annotated[
        list[DatasetDefinition],
        Meta(description='The datasets, concatenated in this order.', min_length=1),
    ]
    data_type: (
        Annotated[
            Literal['ChatConversation'],
            Meta(description='Record type of the data files. Generally set automatically from the method; for SFT it is ChatConversation.'),
        ]
    ) = 'ChatConversation'


class WeightedMixDataInput(Struct, kw_only=True, tag_field='type', tag='PRECOMPUTE_WEIGHTED_MIX'):
    """
    A list of datasets where each is sampled by a certain weight.

    These datasets are interleaved based on the sampling weights. The resulting dataset is fully precomputed, up to the point where every single sample in every dataset gets picked. This means that with small sampling weights, it can take a lot of draws to see every sample from a dataset and so the resulting dataset can be very large. Each file is JSON Lines (or one JSON array) with one chat conversation per line, written as `{"messages": [{"role": "user", "content": "..."}, ...]}`.
    """

    datasets: Annotated[
        list[WeightedDatasetDefinition],
        Meta(description='The datasets and their sampling weights.', min_length=1),
    ]
    data_type: (
        Annotated[
            Literal['ChatConversation'],
            Meta(description='Record type of the data files. Generally set automatically from the method; for SFT it is ChatConversation.'),
        ]
    ) = 'ChatConversation'
    seed: (
        Annotated[
            int,
            Meta(
                description='Seed for the random number generator for interleaving draws.',
                ge=0,
                le=4294967295,
            ),
        ]
    ) = 19851243


class AutoSplitDataInput(Struct, kw_only=True, tag_field='type', tag='AUTO_SPLIT'):
    """
    Automatic validation split from the training data. A source example never lands on both sides, also after a weighted mix.
    """

    data_type: (
        Annotated[
            Literal['ChatConversation'],
            Meta(description='Record type of the data files. Generally set automatically from the method; for SFT it is ChatConversation.'),
        ]
    ) = 'ChatConversation'
    ratio: (
        Annotated[
            float,
            Meta(
                description='Ratio of the training data to use for validation.',
                gt=0.0,
                lt=1.0,
            ),
        ]
    ) = 0.2
    seed: (
        Annotated[
            int,
            Meta(
                description='Seed for the random number generator for splitting.',
                ge=0,
                le=4294967295,
            ),
        ]
    ) = 1289525893


class NoneDataInput(Struct, kw_only=True, tag_field='type', tag='NONE'):
    """
    A special type for not using data e.g. in validation.
    """

    data_type: (
        Annotated[
            Literal['ChatConversation'],
            Meta(description='Record type of the data files. Generally set automatically from the method; for SFT it is ChatConversation.'),
        ]
    ) = 'ChatConversation'


class SilogenTrainingArguments(Struct, kw_only=True):
    """
    HuggingFace TrainingArguments as config, with ftconfig conventions. Generated from transformers 5.24.0 by `ftschema import-training-args`; do not edit by hand. The batch-size fields are not allowed here: batchsize_conf sets them.
    """

    output_dir: (
        Annotated[
            str,
            Meta(
                description='The output directory where the model predictions and checkpoints will be written. ftconfig: when null, $CHECKPOINTS_PATH if set, else ./checkpoints.'
            ),
        ]
        | None
    ) = None
    num_train_epochs: (
        Annotated[
            float,
            Meta(description='Total number of training epochs to perform.', ge=0.0),
        ]
    ) = 3.0
    max_steps: (
        Annotated[
            int,
            Meta(
                description='Overrides `num_train_epochs`. If set to a positive number, the total number of training steps to perform. Must be set when the training dataset does not implement `__len__` (e.g. a streaming dataset).'
            ),
        ]
    ) = -1
    learning_rate: (
        Annotated[
            float,
            Meta(description='The initial learning rate for the optimizer.', ge=0.0),
        ]
    ) = 5e-05
    lr_scheduler_type: (
        Annotated[
            Literal['linear', 'cosine', 'cosine_with_restarts', 'polynomial', 'constant', 'constant_with_warmup', 'inverse_sqrt', 'reduce_lr_on_plateau', 'cosine_with_min_lr', 'cosine_warmup_with_min_lr', 'warmup_stable_decay', 'greedy'],
            Meta(description='The learning rate scheduler type to use. See `SchedulerType` for all possible values.'),
        ]
    ) = 'linear'
    lr_scheduler_kwargs: (
        Annotated[
            dict[str, Any] | str,
            Meta(
                description='The extra arguments for the lr_scheduler. See the documentation of each scheduler for possible values.'
            ),
        ]
        | None
    ) = None
    warmup_steps: (
        Annotated[
            float,
            Meta(
                description='Number of steps for a linear warmup from 0 to `learning_rate`. Can be an integer (exact steps) or a float in [0, 1) (ratio of total steps).',
                ge=0.0,
            ),
        ]
    ) = 0
    optim: (
        Annotated[
            Literal['adamw_torch', 'adamw_torch_fused', 'adamw_torch_xla', 'adamw_torch_npu_fused', 'adafactor', 'adamw_anyprecision', 'adamw_torch_4bit', 'adamw_torch_8bit', 'ademamix', 'sgd', 'adagrad', 'adamw_bnb_8bit', 'adamw_8bit', 'ademamix_8bit', 'lion_8bit', 'lion_32bit', 'paged_adamw_32bit', 'paged_adamw_8bit', 'paged_ademamix_32bit', 'paged_ademamix_8bit', 'paged_lion_32bit', 'paged_lion_8bit', 'rmsprop', 'rmsprop_bnb', 'rmsprop_bnb_8bit', 'rmsprop_bnb_32bit', 'galore_adamw', 'galore_adamw_8bit', 'galore_adafactor', 'galore_adamw_layerwise', 'galore_adamw_8bit_layerwise', 'galore_adafactor_layerwise', 'lomo', 'adalomo', 'grokadamw', 'schedule_free_radam', 'schedule_free_adamw', 'schedule_free_sgd', 'apollo_adamw', 'apollo_adamw_layerwise', 'stable_adamw'],
            Meta(description='The optimizer to use. See `OptimizerNames` for the complete list.'),
        ]
    ) = 'adamw_torch_fused'
    optim_args: (
        Annotated[
            str,
            Meta(
                description='Optional arguments supplied to optimizers such as AnyPrecisionAdamW, AdEMAMix, and GaLore.'
            ),
        ]
        | None
    ) = None
    weight_decay: (
        Annotated[
            float,
            Meta(
                description='Weight decay coefficient applied by the optimizer. Automatically excluded from bias and LayerNorm parameters.',
                ge=0.0,
            ),
        ]
    ) = 0.0
    adam_beta1: (
        Annotated[
            float,
            Meta(
                description='The exponential decay rate for the first moment estimates (momentum) in Adam-based optimizers.',
                ge=0.0,
                lt=1.0,
            ),
        ]
    ) = 0.9
    adam_beta2: (
        Annotated[
            float,
            Meta(
                description='The exponential decay rate for the second moment estimates (variance) in Adam-based optimizers.',
                ge=0.0,
                lt=1.0,
            ),
        ]
    ) = 0.999
    adam_epsilon: (
        Annotated[
            float,
            Meta(
                description='Epsilon value for numerical stability in Adam-based optimizers.',
                ge=0.0,
            ),
        ]
    ) = 1e-08
    optim_target_modules: (
        Annotated[
            str | list[str] | None,
            Meta(
                description='The target modules to optimize. Currently used for the GaLore and APOLLO algorithms.'
            ),
        ]
        | None
    ) = None
    average_tokens_across_devices: (
        Annotated[
            bool,
            Meta(
                description='Whether or not to average tokens across devices. If enabled, will use all_reduce to synchronize num_tokens_in_batch for precise loss calculation. Reference: https://github.com/huggingface/transformers/issues/34242'
            ),
        ]
    ) = True
    max_grad_norm: (
        Annotated[
            float,
            Meta(
                description='Maximum gradient norm for gradient clipping. Set to 0 to disable.'
            ),
        ]
    ) = 1.0
    label_smoothing_factor: (
        Annotated[
            float,
            Meta(
                description='Label smoothing factor to prevent overconfidence. Zero means no smoothing.'
            ),
        ]
    ) = 0.0
    bf16: (
        Annotated[
            bool,
            Meta(
                description='Enable bfloat16 (BF16) mixed precision training. Generally preferred over FP16 due to better numerical stability.'
            ),
        ]
    ) = False
    fp16: (
        Annotated[
            bool,
            Meta(
                description='Enable float16 (FP16) mixed precision training. Consider using BF16 instead if your hardware supports it.'
            ),
        ]
    ) = False
    bf16_full_eval: (
        Annotated[
            bool,
            Meta(
                description='Use full BF16 precision for evaluation (not just mixed precision). Faster and saves memory.'
            ),
        ]
    ) = False
    fp16_full_eval: (
        Annotated[
            bool,
            Meta(
                description='Use full FP16 precision for evaluation (not just mixed precision). Faster and saves memory.'
            ),
        ]
    ) = False
    tf32: (
        Annotated[
            bool,
            Meta(
                description='Enable TF32 mode on Ampere and newer GPUs. Provides up to 8x speedup with negligible accuracy loss.'
            ),
        ]
        | None
    ) = None
    activation_checkpointing: (
        Annotated[
            bool,
            Meta(
                description='Enable activation checkpointing to trade compute for memory. Reduces memory at the cost of ~20% slower training.'
            ),
        ]
        | None
    ) = None
    activation_checkpointing_kwargs: (
        Annotated[
            dict[str, Any] | str,
            Meta(
                description='Keyword arguments passed to `activation_checkpointing_enable()`. `every_n_layers` checkpoints only every n-th decoder layer instead of all of them; `1` is the usual all-or-nothing behavior, and larger values give some memory back to speed. `offload` holds the saved activations in pinned host memory, which frees device memory and makes the step slower. Any other key is forwarded to `torch.utils.checkpoint.checkpoint`.'
            ),
        ]
        | None
    ) = None
    gradient_checkpointing: (
        Annotated[
            bool,
            Meta(
                description='Deprecated alias of `activation_checkpointing`, will be removed in v6.'
            ),
        ]
        | None
    ) = None
    gradient_checkpointing_kwargs: (
        Annotated[
            dict[str, Any] | str,
            Meta(
                description='Deprecated alias of `activation_checkpointing_kwargs`, will be removed in v6.'
            ),
        ]
        | None
    ) = None
    torch_compile: (
        Annotated[
            bool,
            Meta(
                description='Compile the model using `torch.compile()` for faster training.'
            ),
        ]
    ) = False
    torch_compile_backend: (
        Annotated[
            str,
            Meta(
                description='Backend for `torch.compile()`. If set, automatically enables `torch_compile`.'
            ),
        ]
        | None
    ) = None
    torch_compile_mode: (
        Annotated[
            str,
            Meta(
                description='Compilation mode for `torch.compile()`. If set, automatically enables `torch_compile`.'
            ),
        ]
        | None
    ) = None
    use_liger_kernel: (
        Annotated[
            bool,
            Meta(
                description='Enable Liger Kernel optimizations. Increases throughput by ~20% and reduces memory by ~60%.'
            ),
        ]
    ) = False
    liger_kernel_config: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Configuration for Liger Kernel. Passed as kwargs to `_apply_liger_kernel_to_instance()`. If None, uses default configuration.'
            ),
        ]
        | None
    ) = None
    use_cache: (
        Annotated[
            bool,
            Meta(
                description='Whether or not to use cache for the model For training, this is usually not needed apart from some PEFT methods that uses `cache`.'
            ),
        ]
    ) = False
    neftune_noise_alpha: (
        Annotated[
            float,
            Meta(
                description='If not None, activates NEFTune noise embeddings. Can drastically improve performance for instruction fine-tuning. Typical range: [5.0, 15.0].'
            ),
        ]
        | None
    ) = None
    torch_empty_cache_steps: (
        Annotated[
            int,
            Meta(
                description='Number of steps to wait before calling `torch.<device>.empty_cache()`. Helps avoid CUDA OOM at a cost of ~10% slower performance. If None, cache will not be emptied.',
                gt=0,
            ),
        ]
        | None
    ) = None
    auto_find_batch_size: (
        Annotated[
            bool,
            Meta(
                description='Whether to find a training batch size that will fit into memory automatically through exponential decay, avoiding CUDA Out-of-Memory errors. The evaluation batch size is not adjusted.'
            ),
        ]
    ) = False
    logging_strategy: (
        Annotated[
            Literal['no', 'steps', 'epoch'],
            Meta(description="The logging strategy to adopt during training. Options: 'no', 'epoch', 'steps'."),
        ]
    ) = 'steps'
    logging_steps: (
        Annotated[
            float,
            Meta(
                description='Log every X updates steps. Should be an integer or a float in range `[0,1)`. If smaller than 1, will be interpreted as ratio of total training steps.',
                gt=0.0,
            ),
        ]
    ) = 500
    logging_first_step: (
        Annotated[
            bool, Meta(description='Whether to log the first `global_step` or not.')
        ]
    ) = False
    log_on_each_node: (
        Annotated[
            bool,
            Meta(
                description='When doing a multinode distributed training, whether to log once per node or just once on the main node.'
            ),
        ]
    ) = True
    logging_nan_inf_filter: (
        Annotated[
            bool,
            Meta(
                description='Filter out NaN and Inf training and evaluation losses when logging. Does not affect gradient computation, only logging.'
            ),
        ]
    ) = True
    include_num_input_tokens_seen: (
        Annotated[
            str | bool,
            Meta(description='Whether to track the number of input tokens seen. Must be one of [`all`, `non_padding`, `no`] or a boolean value which map to `all` or `no`'),
        ]
    ) = 'no'
    log_level: (
        Annotated[
            Literal['detail', 'debug', 'info', 'warning', 'error', 'critical', 'passive'],
            Meta(description="Logging level for the main process. Options: 'debug', 'info', 'warning', 'error', 'critical', 'passive'."),
        ]
    ) = 'passive'
    log_level_replica: (
        Annotated[
            Literal['detail', 'debug', 'info', 'warning', 'error', 'critical', 'passive'],
            Meta(description='Logging level for replica processes in distributed training. Same options as `log_level`.'),
        ]
    ) = 'warning'
    disable_tqdm: (
        Annotated[
            bool,
            Meta(
                description='Disable tqdm progress bars. Defaults to True if log_level is warning or lower.'
            ),
        ]
        | None
    ) = None
    report_to: (
        Annotated[
            str | list[str],
            Meta(description="The list of integrations to report the results and logs to. Use 'all' for all installed integrations, 'none' for no integrations. ftconfig adds 'mlflow' when tracking is on (see the tracking section)."),
        ]
        | None
    ) = 'none'
    run_name: (
        Annotated[
            str,
            Meta(
                description='An optional descriptor for the run. Notably used for trackio, wandb, mlflow comet and swanlab logging.'
            ),
        ]
        | None
    ) = None
    project: (
        Annotated[
            str,
            Meta(description='The name of the project to use for logging. Currently, only used by Trackio.'),
        ]
    ) = 'huggingface'
    trackio_space_id: (
        Annotated[
            str,
            Meta(
                description="Hugging Face Space id for live Gradio-based Trackio logging (read/write Bucket access). Use 'username/reponame', 'orgname/reponame', or 'reponame' (current user's namespace). None: log only locally, no Space. Prefer trackio_static_space_id for stable post-training dashboard links. Public unless hub_private_repo=True or org default."
            ),
        ]
        | None
    ) = None
    trackio_bucket_id: (
        Annotated[
            str,
            Meta(
                description='Optional HF Bucket id when using a Trackio Space; if unset, Trackio picks a default.'
            ),
        ]
        | None
    ) = None
    trackio_static_space_id: (
        Annotated[
            str | bool,
            Meta(
                description='Static read-only Trackio Space over the Bucket (stable model-card links). False: no static sync on Hub push and no freeze after training. None/str: allow static Space; for local-only logging, Hub push runs sync(static); after training, freeze runs only if trackio_space_id was set (Gradio Space). str sets explicit static Space id. Public unless hub_private_repo=True or org default.'
            ),
        ]
        | None
    ) = None
    eval_strategy: (
        Annotated[
            Literal['no', 'steps', 'epoch'],
            Meta(description="When to run evaluation. Options: 'no', 'steps', 'epoch'."),
        ]
    ) = 'no'
    eval_steps: (
        Annotated[
            float,
            Meta(
                description="Number of update steps between evaluations if `eval_strategy='steps'`. Defaults to `logging_steps` if not set. Should be an integer or a float in range `[0,1)`. If smaller than 1, will be interpreted as ratio of total training steps.",
                gt=0.0,
            ),
        ]
        | None
    ) = None
    eval_delay: (
        Annotated[
            float,
            Meta(
                description='Number of epochs or steps to wait for before the first evaluation can be performed, depending on the eval_strategy.'
            ),
        ]
    ) = 0
    prediction_loss_only: (
        Annotated[
            bool,
            Meta(
                description='When performing evaluation and generating predictions, only returns the loss.'
            ),
        ]
    ) = False
    eval_on_start: (
        Annotated[
            bool,
            Meta(
                description='Whether to run through the entire `evaluation` step at the very beginning of training as a sanity check.'
            ),
        ]
    ) = False
    eval_do_concat_batches: (
        Annotated[
            bool,
            Meta(
                description='Whether to recursively concat inputs/losses/labels/predictions across batches. If `False`, will instead store them as lists, with each batch kept separate.'
            ),
        ]
    ) = True
    eval_use_gather_object: (
        Annotated[
            bool,
            Meta(
                description='Whether to run recursively gather object in a nested list/tuple/dictionary of objects from all devices.'
            ),
        ]
    ) = False
    eval_accumulation_steps: (
        Annotated[
            int,
            Meta(
                description='Number of predictions steps to accumulate the output tensors for, before moving the results to the CPU. If unset, predictions are accumulated on the accelerator before being moved to the CPU.'
            ),
        ]
        | None
    ) = None
    include_for_metrics: (
        Annotated[
            list[str],
            Meta(
                description="Include additional data in the `compute_metrics` function. Options: 'inputs', 'loss'."
            ),
        ]
    ) = field(default_factory=list)
    batch_eval_metrics: (
        Annotated[
            bool,
            Meta(
                description='Break eval metrics calculation into batches to save memory.'
            ),
        ]
    ) = False
    save_only_model: (
        Annotated[
            bool,
            Meta(
                description='Save only model weights, not optimizer/scheduler/RNG state. Prevents resuming training from checkpoint.'
            ),
        ]
    ) = False
    save_strategy: (
        Annotated[
            Literal['no', 'steps', 'epoch', 'best'],
            Meta(description="The checkpoint save strategy to adopt during training. Options: 'no', 'epoch', 'steps', 'best'."),
        ]
    ) = 'steps'
    save_steps: (
        Annotated[
            float,
            Meta(
                description='Save checkpoint every X updates steps. Should be an integer or a float in range `[0,1)`. If smaller than 1, will be interpreted as ratio of total training steps.',
                gt=0.0,
            ),
        ]
    ) = 500
    save_on_each_node: (
        Annotated[
            bool,
            Meta(
                description='When doing multi-node distributed training, whether to save models and checkpoints on each node, or only on the main one'
            ),
        ]
    ) = False
    save_total_limit: (
        Annotated[
            int,
            Meta(
                description='Maximum number of checkpoints to keep. Deletes older checkpoints in `output_dir`. The best checkpoint is always retained when `load_best_model_at_end=True`.'
            ),
        ]
        | None
    ) = None
    enable_jit_checkpoint: (
        Annotated[
            bool,
            Meta(
                description="Enable JIT checkpointing on SIGTERM signal for graceful termination on preemptible workloads. Configure your orchestrator's graceful shutdown period accordingly."
            ),
        ]
    ) = False
    push_to_hub: (
        Annotated[
            bool,
            Meta(
                description='Whether or not to push the model to the Hub every time the model is saved.'
            ),
        ]
    ) = False
    hub_token: (
        Annotated[
            str,
            Meta(
                description='The token to use to push the model to the Hub. Defaults to the token from `hf auth login`.'
            ),
        ]
        | None
    ) = None
    hub_private_repo: (
        Annotated[
            bool,
            Meta(
                description="Whether to make the repo private. If `None` (default), the repo will be public unless the organization's default is private. This value is ignored if the repo already exists. If reporting to Trackio Spaces created or synced (including on Hub push when `trackio_space_id` is None) use the same logic for whether the Space is private."
            ),
        ]
        | None
    ) = None
    hub_model_id: (
        Annotated[
            str,
            Meta(
                description='The name of the repository to keep in sync with the local `output_dir`.'
            ),
        ]
        | None
    ) = None
    hub_strategy: (
        Annotated[
            Literal['end', 'every_save', 'checkpoint', 'all_checkpoints'],
            Meta(description="Defines what and when to push to Hub. Options: 'end', 'every_save', 'checkpoint', 'all_checkpoints'."),
        ]
    ) = 'every_save'
    hub_always_push: (
        Annotated[
            bool,
            Meta(
                description="Unless `True`, the Trainer will skip pushes if the previous one wasn't finished yet."
            ),
        ]
    ) = False
    hub_revision: (
        Annotated[
            str,
            Meta(
                description='The revision to use when pushing to the Hub. Can be a branch name, a tag, or a commit hash.'
            ),
        ]
        | None
    ) = None
    load_best_model_at_end: (
        Annotated[
            bool,
            Meta(
                description='Load the best checkpoint at the end of training. Requires `eval_strategy` to be set.'
            ),
        ]
    ) = False
    metric_for_best_model: (
        Annotated[
            str,
            Meta(
                description="Metric to use for comparing models when `load_best_model_at_end=True`. Defaults to 'loss'."
            ),
        ]
        | None
    ) = None
    greater_is_better: (
        Annotated[
            bool,
            Meta(
                description='Whether higher metric values are better. Defaults based on `metric_for_best_model`.'
            ),
        ]
        | None
    ) = None
    ignore_data_skip: (
        Annotated[
            bool,
            Meta(
                description='When resuming training, skip fast-forwarding through the dataset to reach the previous state. If True, training starts from the beginning of the dataset.'
            ),
        ]
    ) = False
    restore_callback_states_from_checkpoint: (
        Annotated[
            bool,
            Meta(
                description='Whether to restore the callback states from the checkpoint. If `True`, will override callbacks passed to the `Trainer` if they exist in the checkpoint.'
            ),
        ]
    ) = False
    full_determinism: (
        Annotated[
            bool,
            Meta(
                description='Whether to call enable_full_determinism instead of set_seed for reproducibility in distributed training. Important: this will negatively impact the performance, so only use it for debugging.'
            ),
        ]
    ) = False
    seed: (
        Annotated[
            int,
            Meta(
                description='Random seed that will be set at the beginning of training.',
                ge=0,
                le=4294967295,
            ),
        ]
    ) = 42
    data_seed: (
        Annotated[
            int,
            Meta(
                description='Random seed to be used with data samplers. If not set, uses the same seed as `seed`.',
                ge=0,
                le=4294967295,
            ),
        ]
        | None
    ) = None
    use_cpu: (
        Annotated[
            bool,
            Meta(
                description='Whether or not to use cpu. If set to False, we will use the available torch device/backend.'
            ),
        ]
    ) = False
    accelerator_config: (
        Annotated[
            dict[str, Any] | str,
            Meta(
                description='Configuration for the internal Accelerate integration. Can be a path to a JSON config file or a dict.'
            ),
        ]
        | None
    ) = None
    parallelism_config: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Parallelism configuration for the training run. Requires Accelerate `1.10.1`.'
            ),
        ]
        | None
    ) = None
    dataloader_drop_last: (
        Annotated[
            bool,
            Meta(
                description='Drop the last incomplete batch if it is not divisible by the batch size.'
            ),
        ]
    ) = False
    dataloader_num_workers: (
        Annotated[
            int,
            Meta(
                description='Number of subprocesses to use for data loading (PyTorch only). 0 means that the data will be loaded in the main process.',
                ge=0,
            ),
        ]
    ) = 0
    dataloader_pin_memory: (
        Annotated[
            bool, Meta(description='Whether or not to pin memory for DataLoader.')
        ]
    ) = True
    dataloader_persistent_workers: (
        Annotated[
            bool,
            Meta(
                description='If True, the data loader will not shut down the worker processes after a dataset has been consumed once. This allows to maintain the workers Dataset instances alive. Can potentially speed up training, but will increase RAM usage.'
            ),
        ]
    ) = False
    dataloader_prefetch_factor: (
        Annotated[
            int,
            Meta(
                description='Number of batches loaded in advance by each worker. 2 means there will be a total of 2 * num_workers batches prefetched across all workers.',
                ge=1,
            ),
        ]
        | None
    ) = None
    dataloader_multiprocessing_context: (
        Annotated[
            Literal['fork', 'spawn', 'forkserver'],
            Meta(
                description="The multiprocessing start method to use for data loading workers ('fork', 'spawn', or 'forkserver'). Defaults to PyTorch's default, except on MPS with dataloader_num_workers > 1, where it defaults to 'fork'. Use 'spawn' when streaming from sources whose objects are not fork-safe (e.g. HDFS via pyarrow). Under 'spawn', any custom collate_fn / dataset code must be importable at module level (no lambdas/closures)."
            ),
        ]
        | None
    ) = None
    dataloader_in_order: (
        Annotated[
            bool,
            Meta(
                description='If True (default), the data loader yields batches in the order workers were dispatched. Set to False to yield batches as soon as they are ready, reducing tail latency for IterableDataset streaming workloads. Requires PyTorch >= 2.6.'
            ),
        ]
    ) = True
    remove_unused_columns: (
        Annotated[
            bool,
            Meta(
                description='Whether or not to automatically remove the columns unused by the model forward method.'
            ),
        ]
    ) = True
    label_names: (
        Annotated[
            list[str],
            Meta(
                description='The list of keys in your dictionary of inputs that correspond to the labels.'
            ),
        ]
        | None
    ) = None
    train_sampling_strategy: (
        Annotated[
            Literal['random', 'sequential', 'group_by_length', 'batch_rebalance'],
            Meta(description="Sampler for training: 'random' (default), 'sequential', 'group_by_length', or 'batch_rebalance'."),
        ]
    ) = 'random'
    length_column_name: (
        Annotated[
            str,
            Meta(description="Column name for precomputed lengths. Ignored unless `train_sampling_strategy` is 'group_by_length' or 'batch_rebalance'."),
        ]
    ) = 'length'
    ddp_find_unused_parameters: (
        Annotated[
            bool,
            Meta(
                description='When using distributed training, the value of the flag `find_unused_parameters` passed to `DistributedDataParallel`.'
            ),
        ]
        | None
    ) = None
    ddp_bucket_cap_mb: (
        Annotated[
            int,
            Meta(
                description='When using distributed training, the value of the flag `bucket_cap_mb` passed to `DistributedDataParallel`.'
            ),
        ]
        | None
    ) = None
    ddp_broadcast_buffers: (
        Annotated[
            bool,
            Meta(
                description='When using distributed training, the value of the flag `broadcast_buffers` passed to `DistributedDataParallel`.'
            ),
        ]
        | None
    ) = None
    ddp_static_graph: (
        Annotated[
            bool,
            Meta(
                description='When using distributed training, the value of the flag `static_graph` passed to `DistributedDataParallel`.'
            ),
        ]
        | None
    ) = None
    ddp_backend: (
        Annotated[
            Literal['nccl', 'gloo', 'mpi', 'xccl', 'hccl', 'cncl', 'mccl'],
            Meta(
                description="The backend to use for distributed training. Must be one of 'nccl', 'mpi', 'xccl', 'gloo', 'hccl'."
            ),
        ]
        | None
    ) = None
    ddp_timeout: (
        Annotated[
            int,
            Meta(
                description='The timeout for `torch.distributed.init_process_group` calls (in seconds).'
            ),
        ]
    ) = 1800
    fsdp: (
        Annotated[
            str,
            Meta(
                description='Enable PyTorch Fully Sharded Data Parallel (FSDP) for distributed training. Pass `--fsdp` (or `fsdp=True`) to turn FSDP on.'
            ),
        ]
        | None
    ) = None
    fsdp_config: (
        Annotated[
            dict[str, Any] | str,
            Meta(
                description='Tuning for FSDP (used only when `fsdp` is enabled). Either a path to a JSON config file (e.g., `fsdp_config.json`) or an already loaded dict.'
            ),
        ]
        | None
    ) = None
    deepspeed: (
        Annotated[
            dict[str, Any] | str,
            Meta(
                description='Enable DeepSpeed integration. Value is a path to a JSON config file or a dict.'
            ),
        ]
        | None
    ) = None
    debug: (
        Annotated[
            str | list[Literal['underflow_overflow', 'tpu_metrics_debug']],
            Meta(description="Enable one or more debug features. Options: 'underflow_overflow' (detect overflow in model I/O), 'tpu_metrics_debug' (print TPU metrics)."),
        ]
    ) = ''
    skip_memory_metrics: (
        Annotated[
            bool,
            Meta(
                description='Whether to skip adding memory profiler reports to metrics. Skipped by default because it slows down training.'
            ),
        ]
    ) = True
    do_train: (
        Annotated[
            bool,
            Meta(
                description='Whether to run training. Not directly used by Trainer; intended for training/evaluation scripts.'
            ),
        ]
    ) = False
    do_eval: (
        Annotated[
            bool,
            Meta(
                description='Whether to run evaluation. Not directly used by Trainer; intended for training/evaluation scripts.'
            ),
        ]
    ) = False
    do_predict: (
        Annotated[
            bool,
            Meta(
                description='Whether to run predictions on the test set. Not directly used by Trainer; intended for training/evaluation scripts.'
            ),
        ]
    ) = False
    local_rank: (
        Annotated[
            int,
            Meta(
                description='When using torch.distributed.launch (Deprecated), it will pass `local_rank` in the script, so we need this for the parser. To get the local rank, prefer using the property `local_process_index`'
            ),
        ]
    ) = -1


class NoPeftConfig(Struct, kw_only=True, tag_field='peft_type', tag='NO_PEFT'):
    """
    A trivial config specifying that no peft is used: every parameter of the model is trained.
    """


class PretrainedPeftConfig(Struct, kw_only=True, tag_field='peft_type', tag='PRETRAINED_PEFT'):
    """
    PEFT adapter uses the config and initialisation from a pretrained adapter.
    """

    name_or_path: Annotated[
        str, Meta(description='HF ID or path to the pretrained peft.', min_length=1)
    ]


PeftType: TypeAlias = Annotated[
    Literal['PROMPT_TUNING', 'MULTITASK_PROMPT_TUNING', 'P_TUNING', 'PREFIX_TUNING', 'LORA', 'ADALORA', 'BOFT', 'ADAPTION_PROMPT', 'IA3', 'LOHA', 'LOKR', 'OFT', 'POLY', 'LN_TUNING', 'VERA', 'FOURIERFT', 'XLORA', 'HRA', 'VBLORA'],
    Meta(
        description="The PEFT adapter types that ftconfig can initialise (peft's PeftType values).",
        title='PeftType',
    ),
]


TaskType: TypeAlias = Annotated[
    Literal['SEQ_CLS', 'SEQ_2_SEQ_LM', 'CAUSAL_LM', 'TOKEN_CLS', 'QUESTION_ANS', 'FEATURE_EXTRACTION'],
    Meta(
        description='Enum class for the different types of tasks supported by PEFT. SEQ_CLS: text classification. SEQ_2_SEQ_LM: sequence-to-sequence language modeling. CAUSAL_LM: causal language modeling. TOKEN_CLS: token classification. QUESTION_ANS: question answering. FEATURE_EXTRACTION: provides the hidden states, which can be used as embeddings or features for downstream tasks.',
        title='TaskType',
    ),
]


class PromptTuningPeftConfig(Struct, kw_only=True, tag_field='peft_type', tag='PROMPT_TUNING'):
    """
    Config for a newly initialised PROMPT_TUNING adapter (GenericPeftConfig with peft_type PROMPT_TUNING). peft_kwargs go to peft's config class for PROMPT_TUNING.
    """

    task_type: (
        Annotated[
            TaskType,
            Meta(description='The PEFT task type; ftconfig trains causal LMs.'),
        ]
    ) = 'CAUSAL_LM'
    peft_kwargs: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Keyword arguments of the peft config class of the chosen peft_type (e.g. r, lora_alpha, target_modules for LORA). Checked against that class before the model loads.'
            ),
        ]
    ) = field(default_factory=dict)


class MultitaskPromptTuningPeftConfig(Struct, kw_only=True, tag_field='peft_type', tag='MULTITASK_PROMPT_TUNING'):
    """
    Config for a newly initialised MULTITASK_PROMPT_TUNING adapter (GenericPeftConfig with peft_type MULTITASK_PROMPT_TUNING). peft_kwargs go to peft's config class for MULTITASK_PROMPT_TUNING.
    """

    task_type: (
        Annotated[
            TaskType,
            Meta(description='The PEFT task type; ftconfig trains causal LMs.'),
        ]
    ) = 'CAUSAL_LM'
    peft_kwargs: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Keyword arguments of the peft config class of the chosen peft_type (e.g. r, lora_alpha, target_modules for LORA). Checked against that class before the model loads.'
            ),
        ]
    ) = field(default_factory=dict)


class PTuningPeftConfig(Struct, kw_only=True, tag_field='peft_type', tag='P_TUNING'):
    """
    Config for a newly initialised P_TUNING adapter (GenericPeftConfig with peft_type P_TUNING). peft_kwargs go to peft's config class for P_TUNING.
    """

    task_type: (
        Annotated[
            TaskType,
            Meta(description='The PEFT task type; ftconfig trains causal LMs.'),
        ]
    ) = 'CAUSAL_LM'
    peft_kwargs: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Keyword arguments of the peft config class of the chosen peft_type (e.g. r, lora_alpha, target_modules for LORA). Checked against that class before the model loads.'
            ),
        ]
    ) = field(default_factory=dict)


class PrefixTuningPeftConfig(Struct, kw_only=True, tag_field='peft_type', tag='PREFIX_TUNING'):
    """
    Config for a newly initialised PREFIX_TUNING adapter (GenericPeftConfig with peft_type PREFIX_TUNING). peft_kwargs go to peft's config class for PREFIX_TUNING.
    """

    task_type: (
        Annotated[
            TaskType,
            Meta(description='The PEFT task type; ftconfig trains causal LMs.'),
        ]
    ) = 'CAUSAL_LM'
    peft_kwargs: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Keyword arguments of the peft config class of the chosen peft_type (e.g. r, lora_alpha, target_modules for LORA). Checked against that class before the model loads.'
            ),
        ]
    ) = field(default_factory=dict)


class LoraPeftConfig(Struct, kw_only=True, tag_field='peft_type', tag='LORA'):
    """
    Config for a newly initialised LORA adapter (GenericPeftConfig with peft_type LORA). peft_kwargs go to peft's config class for LORA.
    """

    task_type: (
        Annotated[
            TaskType,
            Meta(description='The PEFT task type; ftconfig trains causal LMs.'),
        ]
    ) = 'CAUSAL_LM'
    peft_kwargs: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Keyword arguments of the peft config class of the chosen peft_type (e.g. r, lora_alpha, target_modules for LORA). Checked against that class before the model loads.'
            ),
        ]
    ) = field(default_factory=dict)


class AdaloraPeftConfig(Struct, kw_only=True, tag_field='peft_type', tag='ADALORA'):
    """
    Config for a newly initialised ADALORA adapter (GenericPeftConfig with peft_type ADALORA). peft_kwargs go to peft's config class for ADALORA.
    """

    task_type: (
        Annotated[
            TaskType,
            Meta(description='The PEFT task type; ftconfig trains causal LMs.'),
        ]
    ) = 'CAUSAL_LM'
    peft_kwargs: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Keyword arguments of the peft config class of the chosen peft_type (e.g. r, lora_alpha, target_modules for LORA). Checked against that class before the model loads.'
            ),
        ]
    ) = field(default_factory=dict)


class BoftPeftConfig(Struct, kw_only=True, tag_field='peft_type', tag='BOFT'):
    """
    Config for a newly initialised BOFT adapter (GenericPeftConfig with peft_type BOFT). peft_kwargs go to peft's config class for BOFT.
    """

    task_type: (
        Annotated[
            TaskType,
            Meta(description='The PEFT task type; ftconfig trains causal LMs.'),
        ]
    ) = 'CAUSAL_LM'
    peft_kwargs: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Keyword arguments of the peft config class of the chosen peft_type (e.g. r, lora_alpha, target_modules for LORA). Checked against that class before the model loads.'
            ),
        ]
    ) = field(default_factory=dict)


class AdaptionPromptPeftConfig(Struct, kw_only=True, tag_field='peft_type', tag='ADAPTION_PROMPT'):
    """
    Config for a newly initialised ADAPTION_PROMPT adapter (GenericPeftConfig with peft_type ADAPTION_PROMPT). peft_kwargs go to peft's config class for ADAPTION_PROMPT.
    """

    task_type: (
        Annotated[
            TaskType,
            Meta(description='The PEFT task type; ftconfig trains causal LMs.'),
        ]
    ) = 'CAUSAL_LM'
    peft_kwargs: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Keyword arguments of the peft config class of the chosen peft_type (e.g. r, lora_alpha, target_modules for LORA). Checked against that class before the model loads.'
            ),
        ]
    ) = field(default_factory=dict)


class Ia3PeftConfig(Struct, kw_only=True, tag_field='peft_type', tag='IA3'):
    """
    Config for a newly initialised IA3 adapter (GenericPeftConfig with peft_type IA3). peft_kwargs go to peft's config class for IA3.
    """

    task_type: (
        Annotated[
            TaskType,
            Meta(description='The PEFT task type; ftconfig trains causal LMs.'),
        ]
    ) = 'CAUSAL_LM'
    peft_kwargs: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Keyword arguments of the peft config class of the chosen peft_type (e.g. r, lora_alpha, target_modules for LORA). Checked against that class before the model loads.'
            ),
        ]
    ) = field(default_factory=dict)


class LohaPeftConfig(Struct, kw_only=True, tag_field='peft_type', tag='LOHA'):
    """
    Config for a newly initialised LOHA adapter (GenericPeftConfig with peft_type LOHA). peft_kwargs go to peft's config class for LOHA.
    """

    task_type: (
        Annotated[
            TaskType,
            Meta(description='The PEFT task type; ftconfig trains causal LMs.'),
        ]
    ) = 'CAUSAL_LM'
    peft_kwargs: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Keyword arguments of the peft config class of the chosen peft_type (e.g. r, lora_alpha, target_modules for LORA). Checked against that class before the model loads.'
            ),
        ]
    ) = field(default_factory=dict)


class LokrPeftConfig(Struct, kw_only=True, tag_field='peft_type', tag='LOKR'):
    """
    Config for a newly initialised LOKR adapter (GenericPeftConfig with peft_type LOKR). peft_kwargs go to peft's config class for LOKR.
    """

    task_type: (
        Annotated[
            TaskType,
            Meta(description='The PEFT task type; ftconfig trains causal LMs.'),
        ]
    ) = 'CAUSAL_LM'
    peft_kwargs: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Keyword arguments of the peft config class of the chosen peft_type (e.g. r, lora_alpha, target_modules for LORA). Checked against that class before the model loads.'
            ),
        ]
    ) = field(default_factory=dict)


class OftPeftConfig(Struct, kw_only=True, tag_field='peft_type', tag='OFT'):
    """
    Config for a newly initialised OFT adapter (GenericPeftConfig with peft_type OFT). peft_kwargs go to peft's config class for OFT.
    """

    task_type: (
        Annotated[
            TaskType,
            Meta(description='The PEFT task type; ftconfig trains causal LMs.'),
        ]
    ) = 'CAUSAL_LM'
    peft_kwargs: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Keyword arguments of the peft config class of the chosen peft_type (e.g. r, lora_alpha, target_modules for LORA). Checked against that class before the model loads.'
            ),
        ]
    ) = field(default_factory=dict)


class PolyPeftConfig(Struct, kw_only=True, tag_field='peft_type', tag='POLY'):
    """
    Config for a newly initialised POLY adapter (GenericPeftConfig with peft_type POLY). peft_kwargs go to peft's config class for POLY.
    """

    task_type: (
        Annotated[
            TaskType,
            Meta(description='The PEFT task type; ftconfig trains causal LMs.'),
        ]
    ) = 'CAUSAL_LM'
    peft_kwargs: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Keyword arguments of the peft config class of the chosen peft_type (e.g. r, lora_alpha, target_modules for LORA). Checked against that class before the model loads.'
            ),
        ]
    ) = field(default_factory=dict)


class LnTuningPeftConfig(Struct, kw_only=True, tag_field='peft_type', tag='LN_TUNING'):
    """
    Config for a newly initialised LN_TUNING adapter (GenericPeftConfig with peft_type LN_TUNING). peft_kwargs go to peft's config class for LN_TUNING.
    """

    task_type: (
        Annotated[
            TaskType,
            Meta(description='The PEFT task type; ftconfig trains causal LMs.'),
        ]
    ) = 'CAUSAL_LM'
    peft_kwargs: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Keyword arguments of the peft config class of the chosen peft_type (e.g. r, lora_alpha, target_modules for LORA). Checked against that class before the model loads.'
            ),
        ]
    ) = field(default_factory=dict)


class VeraPeftConfig(Struct, kw_only=True, tag_field='peft_type', tag='VERA'):
    """
    Config for a newly initialised VERA adapter (GenericPeftConfig with peft_type VERA). peft_kwargs go to peft's config class for VERA.
    """

    task_type: (
        Annotated[
            TaskType,
            Meta(description='The PEFT task type; ftconfig trains causal LMs.'),
        ]
    ) = 'CAUSAL_LM'
    peft_kwargs: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Keyword arguments of the peft config class of the chosen peft_type (e.g. r, lora_alpha, target_modules for LORA). Checked against that class before the model loads.'
            ),
        ]
    ) = field(default_factory=dict)


class FourierftPeftConfig(Struct, kw_only=True, tag_field='peft_type', tag='FOURIERFT'):
    """
    Config for a newly initialised FOURIERFT adapter (GenericPeftConfig with peft_type FOURIERFT). peft_kwargs go to peft's config class for FOURIERFT.
    """

    task_type: (
        Annotated[
            TaskType,
            Meta(description='The PEFT task type; ftconfig trains causal LMs.'),
        ]
    ) = 'CAUSAL_LM'
    peft_kwargs: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Keyword arguments of the peft config class of the chosen peft_type (e.g. r, lora_alpha, target_modules for LORA). Checked against that class before the model loads.'
            ),
        ]
    ) = field(default_factory=dict)


class XloraPeftConfig(Struct, kw_only=True, tag_field='peft_type', tag='XLORA'):
    """
    Config for a newly initialised XLORA adapter (GenericPeftConfig with peft_type XLORA). peft_kwargs go to peft's config class for XLORA.
    """

    task_type: (
        Annotated[
            TaskType,
            Meta(description='The PEFT task type; ftconfig trains causal LMs.'),
        ]
    ) = 'CAUSAL_LM'
    peft_kwargs: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Keyword arguments of the peft config class of the chosen peft_type (e.g. r, lora_alpha, target_modules for LORA). Checked against that class before the model loads.'
            ),
        ]
    ) = field(default_factory=dict)


class HraPeftConfig(Struct, kw_only=True, tag_field='peft_type', tag='HRA'):
    """
    Config for a newly initialised HRA adapter (GenericPeftConfig with peft_type HRA). peft_kwargs go to peft's config class for HRA.
    """

    task_type: (
        Annotated[
            TaskType,
            Meta(description='The PEFT task type; ftconfig trains causal LMs.'),
        ]
    ) = 'CAUSAL_LM'
    peft_kwargs: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Keyword arguments of the peft config class of the chosen peft_type (e.g. r, lora_alpha, target_modules for LORA). Checked against that class before the model loads.'
            ),
        ]
    ) = field(default_factory=dict)


class VbloraPeftConfig(Struct, kw_only=True, tag_field='peft_type', tag='VBLORA'):
    """
    Config for a newly initialised VBLORA adapter (GenericPeftConfig with peft_type VBLORA). peft_kwargs go to peft's config class for VBLORA.
    """

    task_type: (
        Annotated[
            TaskType,
            Meta(description='The PEFT task type; ftconfig trains causal LMs.'),
        ]
    ) = 'CAUSAL_LM'
    peft_kwargs: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Keyword arguments of the peft config class of the chosen peft_type (e.g. r, lora_alpha, target_modules for LORA). Checked against that class before the model loads.'
            ),
        ]
    ) = field(default_factory=dict)


class ModelArguments(Struct, kw_only=True):
    """
    These are passed to AutoModelForCausalLM.from_pretrained.

    See https://huggingface.co/docs/transformers/main/en/main_classes/model#transformers.PreTrainedModel.from_pretrained. device_map: where each submodule goes (a device such as "cpu" or "cuda:1", a GPU ordinal, "auto", or a module-to-device mapping). attn_implementation: "eager", "sdpa" or "flash_attention_2". Quantization is configured separately, in quant_conf.
    """

    dtype: (
        Annotated[
            Literal['auto', 'bfloat16', 'float16', 'float32'],
            Meta(
                description="transformers 5's name for torch_dtype: the dtype the weights load in (auto: the checkpoint's own). null: torch_dtype decides. Setting both is an error."
            ),
        ]
        | None
    ) = None
    torch_dtype: (
        Annotated[
            Literal['auto', 'bfloat16', 'float16', 'float32'],
            Meta(description="dtype the weights load in; auto takes the checkpoint's own. Passed as transformers' dtype. The newer name dtype means the same; set one of the two."),
        ]
    ) = 'auto'
    device_map: (
        Annotated[
            dict[str, Any] | str | int,
            Meta(
                description='Custom device map so that you can manually override the choices that HuggingFace would make. This can also be a string to specify "auto", "balanced_low_0", or "sequential". null lets the trainer place the model (one device per process).'
            ),
        ]
        | None
    ) = None
    max_memory: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Maximum memory per device for device_map "auto", e.g. {"0": "20GiB", "cpu": "60GiB"}.'
            ),
        ]
        | None
    ) = None
    low_cpu_mem_usage: (
        Annotated[
            bool,
            Meta(
                description='Load the weights without a first random initialisation (always on in transformers 5).'
            ),
        ]
    ) = False
    attn_implementation: (
        Annotated[
            str,
            Meta(
                description='Note: this can be set to "sdpa", "flash_attention_2", "eager".'
            ),
        ]
        | None
    ) = None
    offload_folder: (
        Annotated[
            str,
            Meta(description='Folder for weights that device_map offloads to disk.'),
        ]
        | None
    ) = None
    offload_state_dict: (
        Annotated[
            bool,
            Meta(description='Default is True if offloading (otherwise no effect).'),
        ]
        | None
    ) = None
    offload_buffers: (
        Annotated[
            bool, Meta(description='Offload buffers together with the parameters.')
        ]
        | None
    ) = None
    use_cache: (
        Annotated[
            bool,
            Meta(
                description='Saves generated hidden states to speed up generation. use_cache is mutually exclusive with gradient_checkpointing: ftconfig turns it off (with a warning) when gradient checkpointing is on.'
            ),
        ]
    ) = True
    cache_dir: (
        Annotated[str, Meta(description='Where downloaded models are cached.')] | None
    ) = None
    force_download: (
        Annotated[
            bool,
            Meta(description='Download the model files again even if they are cached.'),
        ]
    ) = False
    local_files_only: (
        Annotated[bool, Meta(description='Never download; use only local files.')]
    ) = False
    proxies: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Proxy servers by protocol, e.g. {"https": "http://proxy:3128"}.'
            ),
        ]
        | None
    ) = None
    resume_download: (
        Annotated[
            bool,
            Meta(
                description='Deprecated upstream (downloads always resume); kept for compatibility.'
            ),
        ]
    ) = False
    revision: (
        Annotated[
            str,
            Meta(description='Branch, tag or commit of the model repository.'),
        ]
    ) = 'main'
    code_revision: (
        Annotated[
            str,
            Meta(description='Branch, tag or commit of remote code (with trust_remote_code).'),
        ]
    ) = 'main'
    subfolder: (
        Annotated[
            str,
            Meta(description='Subfolder of the model repository that holds the model.'),
        ]
        | None
    ) = None
    token: (
        Annotated[
            str,
            Meta(
                description='HuggingFace access token. Never logged or written to resolved_config.json.'
            ),
        ]
        | None
    ) = None
    use_safetensors: (
        Annotated[
            bool,
            Meta(
                description='Load safetensors weights (null: prefer them when present).'
            ),
        ]
        | None
    ) = None
    variant: (
        Annotated[str, Meta(description='Weights variant, e.g. "fp16".')] | None
    ) = None
    trust_remote_code: (
        Annotated[
            bool,
            Meta(
                description='Warning: if set to true, allows execution of downloaded remote code.'
            ),
        ]
    ) = False
    tp_plan: (
        Annotated[
            str | dict[str, Any],
            Meta(
                description='Tensor-parallel plan for from_pretrained: "auto" (the model\'s own plan) or a mapping of module name patterns to styles. Needs a torchrun launch; device_map must then stay null.'
            ),
        ]
        | None
    ) = None
    tp_size: (
        Annotated[
            int,
            Meta(
                description='Number of processes a tensor-parallel model is split over (null: all of them). Only with tp_plan.',
                ge=1,
            ),
        ]
        | None
    ) = None
    key_mapping: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Rename checkpoint weights while loading: a mapping of regular expressions (matched against weight names) to replacements.'
            ),
        ]
        | None
    ) = None
    weights_only: (
        Annotated[
            bool,
            Meta(
                description='Load .bin checkpoints with torch.load(weights_only=True), which refuses pickled code. Keep it true unless you trust the checkpoint.'
            ),
        ]
    ) = True
    ignore_mismatched_sizes: (
        Annotated[
            bool,
            Meta(
                description="Load a checkpoint whose weights differ in shape from the model's config, leaving those weights newly initialised (with a warning)."
            ),
        ]
    ) = False


HfMlflowLogArtifacts: TypeAlias = Annotated[
    str,
    Meta(
        description='Whether to store model artifacts (checkpoints) in MLFlow. A boolean, or the seed\'s string form ("True"/"False").',
        pattern='^(?:[Tt]rue|TRUE|[Ff]alse|FALSE|1|0|[Yy]es|YES|[Nn]o|NO|[Oo]n|ON|[Oo]ff|OFF)$',
    ),
]


class FinetuningTrackingConfig(Struct, kw_only=True):
    """
    Settings that define how run details are logged.
    """

    mlflow_server_uri: Annotated[
        str,
        Meta(
            description='MLflow server URI. Can be local path (e.g. sqlite:///mlflow.db or an http(s) server).',
            min_length=1,
        ),
    ]
    experiment_name: Annotated[
        str,
        Meta(
            description='Experiment name that is used for MLFlow tracking.',
            min_length=1,
        ),
    ]
    run_id: (
        Annotated[
            str,
            Meta(description='Run id, to resume logging to previously started run.'),
        ]
        | None
    ) = None
    run_name: (
        Annotated[
            str,
            Meta(
                description='Run name, to give meaningful name to the run to be displayed in MLFlow UI. Used only when run_id is unspecified.'
            ),
        ]
        | None
    ) = None
    hf_mlflow_log_artifacts: (
        Annotated[
            bool | HfMlflowLogArtifacts,
            Meta(description='Whether to store model artifacts (checkpoints) in MLFlow. A boolean, or the seed\'s string form ("True"/"False").'),
        ]
    ) = 'False'


TorchDtypeName: TypeAlias = Annotated[
    Literal['bfloat16', 'float16', 'float32'],
    Meta(description='A torch floating-point dtype by name.', title='TorchDtypeName'),
]


class NoQuantizationConfig(Struct, kw_only=True, tag_field='quantization_type', tag='no-quantization'):
    """
    A marker not to use quantization.
    """


class BnBQuantizationConfig(Struct, kw_only=True, tag_field='quantization_type', tag='bits-and-bytes'):
    """
    Bits and Bytes configuration.

    The options are from the BitsAndBytes config, see: https://huggingface.co/docs/transformers/en/main_classes/quantization#transformers.BitsAndBytesConfig. Exactly one of load_in_4bit and load_in_8bit must be true.
    """

    load_in_8bit: (
        Annotated[
            bool, Meta(description='Load the linear layers in 8 bits (LLM.int8()).')
        ]
    ) = False
    load_in_4bit: (
        Annotated[bool, Meta(description='Load the linear layers in 4 bits (QLoRA).')]
    ) = False
    llm_int8_threshold: (
        Annotated[
            float,
            Meta(
                description='Outlier threshold of LLM.int8(): hidden states above it are computed in 16 bits.'
            ),
        ]
    ) = 6.0
    llm_int8_skip_modules: (
        Annotated[
            list[str],
            Meta(description='Modules that are not quantized (e.g. lm_head).'),
        ]
        | None
    ) = None
    llm_int8_enable_fp32_cpu_offload: (
        Annotated[
            bool,
            Meta(
                description='Keep offloaded (CPU) modules in float32 when loading in 8 bits.'
            ),
        ]
    ) = False
    llm_int8_has_fp16_weight: (
        Annotated[
            bool, Meta(description='Keep 16-bit main weights for 8-bit training.')
        ]
    ) = False
    bnb_4bit_compute_dtype: (
        Annotated[
            TorchDtypeName,
            Meta(description='Compute dtype of 4-bit layers; null means float32.'),
        ]
        | None
    ) = None
    bnb_4bit_quant_type: (
        Annotated[
            Literal['fp4', 'nf4'],
            Meta(description='The 4-bit data type: fp4 or nf4 (NormalFloat4, the QLoRA choice).'),
        ]
    ) = 'fp4'
    bnb_4bit_use_double_quant: (
        Annotated[
            bool,
            Meta(
                description='Quantize the quantization constants too (saves about 0.4 bits per parameter).'
            ),
        ]
    ) = False
    bnb_4bit_quant_storage: (
        Annotated[
            Literal['uint8', 'bfloat16', 'float16', 'float32'],
            Meta(
                description='Storage dtype of packed 4-bit weights; FSDP needs it equal to the training dtype. null means uint8.'
            ),
        ]
        | None
    ) = None


class SFTArguments(Struct, kw_only=True):
    """
    Supervised fine-tuning arguments.
    """

    max_seq_length: (
        Annotated[
            int,
            Meta(
                description='Maximum length input sequence length (special tokens counted). Longer sequences are filtered out (counted, and reported), or cut to this length with length_handling: truncate.',
                ge=1,
            ),
        ]
    ) = 2048
    length_handling: (
        Annotated[
            Literal['filter', 'truncate'],
            Meta(description='What happens to examples longer than max_seq_length. filter: they are dropped and counted (all dropped is an error). truncate: they are kept, cut to max_seq_length tokens from the right; the loss mask of the kept part stays as it was (a cut assistant turn is trained up to the cut).'),
        ]
    ) = 'filter'
    save_name_if_new_basemodel: (
        Annotated[
            str,
            Meta(description="Sub-folder of output_dir for a copy of the base model with its embeddings grown for the chat template's new tokens. Written only when save_new_basemodel is true (and the run uses an adapter and the template adds tokens).", min_length=1, pattern='^[^/\\\\]+$'),
        ]
    ) = 'checkpoint-new-basemodel'
    save_new_basemodel: (
        Annotated[
            bool,
            Meta(
                description='Also save the base model with grown embeddings (and the tokenizer) to save_name_if_new_basemodel when an adapter run\'s chat template adds tokens. Not needed to use the adapter: it holds the new tokens\' trained rows, and the base only has to be resized to the tokenizer\'s length when loaded (see the guide, "New tokens and serving"). Not possible with a quantized model.'
            ),
        ]
    ) = False
    train_on_completions_only: (
        Annotated[bool, Meta(description="Only compute loss on the assistant's turns.")]
    ) = False
    packing: (
        Annotated[
            bool,
            Meta(
                description='Pack several examples into each sequence of up to max_seq_length tokens (best-fit decreasing) instead of padding every example to the longest of its batch. Examples never attend to each other (position ids restart at 0 for each one) and the trained tokens stay exactly the same, completions-only masking included. A batch then holds per-device-batch-size packs, so each step sees more examples and an epoch has fewer steps. Needs attn_implementation eager, sdpa, flex_attention or a flash-attention kernel (the default, sdpa, works); worth it when examples differ much in length.'
            ),
        ]
    ) = False


class Overrides(Struct, kw_only=True):
    """
    Override options that allow simple interfaces for charts using these configs.

    This is particularly useful for a helm chart interface where we include the finetuning package config as a part of the values.yaml file. They are applied once, when the run is resolved; the config itself is never changed.
    """

    num_train_epochs: (
        Annotated[
            float,
            Meta(
                description='Overrides the number of epochs in the training_args (when not null).',
                gt=0.0,
            ),
        ]
        | None
    ) = None
    lr_multiplier: (
        Annotated[
            float,
            Meta(
                description='Multiplier applied to the learning rate in the training_args.',
                gt=0.0,
            ),
        ]
    ) = 1.0
    lr_batch_size_scaling: (
        Annotated[
            Literal['none', 'sqrt', 'linear'],
            Meta(description='Scales the learning rate in the training_args by a factor derived from the total training batch size. none: No scaling. sqrt: Multiplies learning rate by square root of batch size (a classic scaling rule). linear: Multiplies learning rate by the batch size (a more modern scaling rule).'),
        ]
    ) = 'none'


class BatchsizeConfig(Struct, kw_only=True):
    """
    Config for determining the total batch size.

    Total batch size is the effective batch size for the complete training run. It is equal to number of processes * per-device batch size * accumulation.

    The maximum batch size per device is the maximum batch size that can be accommodated on a single device. This mostly limited by the memory capacity of the device.
    """

    total_train_batch_size: Annotated[
        int, Meta(description='The total batch size for the training run.', ge=1)
    ]
    max_per_device_train_batch_size: Annotated[
        int, Meta(description='The maximum training batch size per device.', ge=1)
    ]
    per_device_eval_batch_size: (
        Annotated[
            int,
            Meta(
                description='The maximum eval batch size per device, if not given, will use same as training batch size.',
                ge=1,
            ),
        ]
        | None
    ) = None


LossType: TypeAlias = Annotated[
    list[Literal['sigmoid', 'hinge', 'ipo', 'exo_pair', 'nca_pair', 'robust', 'bco_pair', 'sppo_hard', 'aot', 'aot_unpaired', 'apo_zero', 'apo_down', 'discopop', 'sft', 'sigmoid_norm']],
    Meta(
        description="Type of loss to use. Possible values are: `'sigmoid'`, `'hinge'`, `'ipo'`, `'exo_pair'`, `'nca_pair'`, `'robust'`, `'bco_pair'`, `'sppo_hard'`, `'aot'`, `'aot_unpaired'`, `'apo_zero'`, `'apo_down'`, `'discopop'`, `'sft'`, `'sigmoid_norm'`. If multiple loss types are provided, they will be combined using the weights specified in `loss_weights`.",
        min_length=1,
    ),
]


class SilogenDPOConfig(Struct, kw_only=True):
    """
    TRL's DPOConfig as config (the transformers TrainingArguments plus the DPO fields), with ftconfig conventions. Generated from TRL 1.16.0 and transformers 5.24.0 by `ftschema import-training-args`; do not edit by hand. The batch-size fields are not allowed here: batchsize_conf sets them.
    """

    output_dir: (
        Annotated[
            str,
            Meta(
                description='The output directory where the model predictions and checkpoints will be written. ftconfig: when null, $CHECKPOINTS_PATH if set, else ./checkpoints.'
            ),
        ]
        | None
    ) = None
    num_train_epochs: (
        Annotated[
            float,
            Meta(description='Total number of training epochs to perform.', ge=0.0),
        ]
    ) = 3.0
    max_steps: (
        Annotated[
            int,
            Meta(
                description='Overrides `num_train_epochs`. If set to a positive number, the total number of training steps to perform. Must be set when the training dataset does not implement `__len__` (e.g. a streaming dataset).'
            ),
        ]
    ) = -1
    learning_rate: (
        Annotated[
            float, Meta(description='The initial learning rate for AdamW.', ge=0.0)
        ]
    ) = 1e-06
    lr_scheduler_type: (
        Annotated[
            Literal['linear', 'cosine', 'cosine_with_restarts', 'polynomial', 'constant', 'constant_with_warmup', 'inverse_sqrt', 'reduce_lr_on_plateau', 'cosine_with_min_lr', 'cosine_warmup_with_min_lr', 'warmup_stable_decay', 'greedy'],
            Meta(description='The learning rate scheduler type to use. See `SchedulerType` for all possible values.'),
        ]
    ) = 'linear'
    lr_scheduler_kwargs: (
        Annotated[
            dict[str, Any] | str,
            Meta(
                description="Additional parameters for the lr_scheduler, such as {'num_cycles': 1} for cosine with hard restarts. See the documentation of each scheduler for possible values."
            ),
        ]
        | None
    ) = None
    warmup_steps: (
        Annotated[
            float,
            Meta(
                description='Number of steps for a linear warmup from 0 to `learning_rate`. Can be an integer (exact steps) or a float in [0, 1) (ratio of total steps).',
                ge=0.0,
            ),
        ]
    ) = 0
    optim: (
        Annotated[
            Literal['adamw_torch', 'adamw_torch_fused', 'adamw_torch_xla', 'adamw_torch_npu_fused', 'adafactor', 'adamw_anyprecision', 'adamw_torch_4bit', 'adamw_torch_8bit', 'ademamix', 'sgd', 'adagrad', 'adamw_bnb_8bit', 'adamw_8bit', 'ademamix_8bit', 'lion_8bit', 'lion_32bit', 'paged_adamw_32bit', 'paged_adamw_8bit', 'paged_ademamix_32bit', 'paged_ademamix_8bit', 'paged_lion_32bit', 'paged_lion_8bit', 'rmsprop', 'rmsprop_bnb', 'rmsprop_bnb_8bit', 'rmsprop_bnb_32bit', 'galore_adamw', 'galore_adamw_8bit', 'galore_adafactor', 'galore_adamw_layerwise', 'galore_adamw_8bit_layerwise', 'galore_adafactor_layerwise', 'lomo', 'adalomo', 'grokadamw', 'schedule_free_radam', 'schedule_free_adamw', 'schedule_free_sgd', 'apollo_adamw', 'apollo_adamw_layerwise', 'stable_adamw'],
            Meta(description='The optimizer to use. See `OptimizerNames` for the complete list.'),
        ]
    ) = 'adamw_torch_fused'
    optim_args: (
        Annotated[
            str,
            Meta(
                description='Optional arguments supplied to optimizers such as AnyPrecisionAdamW, AdEMAMix, and GaLore.'
            ),
        ]
        | None
    ) = None
    weight_decay: (
        Annotated[
            float,
            Meta(
                description='Weight decay coefficient applied by the optimizer. Automatically excluded from bias and LayerNorm parameters.',
                ge=0.0,
            ),
        ]
    ) = 0.0
    adam_beta1: (
        Annotated[
            float,
            Meta(
                description='The exponential decay rate for the first moment estimates (momentum) in Adam-based optimizers.',
                ge=0.0,
                lt=1.0,
            ),
        ]
    ) = 0.9
    adam_beta2: (
        Annotated[
            float,
            Meta(
                description='The exponential decay rate for the second moment estimates (variance) in Adam-based optimizers.',
                ge=0.0,
                lt=1.0,
            ),
        ]
    ) = 0.999
    adam_epsilon: (
        Annotated[
            float,
            Meta(
                description='Epsilon value for numerical stability in Adam-based optimizers.',
                ge=0.0,
            ),
        ]
    ) = 1e-08
    optim_target_modules: (
        Annotated[
            str | list[str] | None,
            Meta(
                description='The target modules to optimize. Currently used for the GaLore and APOLLO algorithms.'
            ),
        ]
        | None
    ) = None
    average_tokens_across_devices: (
        Annotated[
            bool,
            Meta(
                description='Whether or not to average tokens across devices. If enabled, will use all_reduce to synchronize num_tokens_in_batch for precise loss calculation. Reference: https://github.com/huggingface/transformers/issues/34242'
            ),
        ]
    ) = True
    max_grad_norm: (
        Annotated[
            float,
            Meta(
                description='Maximum gradient norm for gradient clipping. Set to 0 to disable.'
            ),
        ]
    ) = 1.0
    label_smoothing_factor: (
        Annotated[
            float,
            Meta(
                description='Label smoothing factor to prevent overconfidence. Zero means no smoothing.'
            ),
        ]
    ) = 0.0
    bf16: (
        Annotated[
            bool,
            Meta(
                description='Whether to use bf16 (mixed) precision instead of 32-bit. Requires Ampere or higher NVIDIA architecture or Intel XPU or using CPU (use_cpu) or Ascend NPU. If not set, it defaults to `True` if `fp16` is not set.'
            ),
        ]
        | None
    ) = None
    fp16: (
        Annotated[
            bool,
            Meta(
                description='Enable float16 (FP16) mixed precision training. Consider using BF16 instead if your hardware supports it.'
            ),
        ]
    ) = False
    bf16_full_eval: (
        Annotated[
            bool,
            Meta(
                description='Use full BF16 precision for evaluation (not just mixed precision). Faster and saves memory.'
            ),
        ]
    ) = False
    fp16_full_eval: (
        Annotated[
            bool,
            Meta(
                description='Use full FP16 precision for evaluation (not just mixed precision). Faster and saves memory.'
            ),
        ]
    ) = False
    tf32: (
        Annotated[
            bool,
            Meta(
                description='Enable TF32 mode on Ampere and newer GPUs. Provides up to 8x speedup with negligible accuracy loss.'
            ),
        ]
        | None
    ) = None
    activation_checkpointing: (
        Annotated[
            bool,
            Meta(
                description='Enable activation checkpointing to trade compute for memory. Reduces memory at the cost of ~20% slower training.'
            ),
        ]
        | None
    ) = None
    activation_checkpointing_kwargs: (
        Annotated[
            dict[str, Any] | str,
            Meta(
                description='Keyword arguments passed to `activation_checkpointing_enable()`. `every_n_layers` checkpoints only every n-th decoder layer instead of all of them; `1` is the usual all-or-nothing behavior, and larger values give some memory back to speed. `offload` holds the saved activations in pinned host memory, which frees device memory and makes the step slower. Any other key is forwarded to `torch.utils.checkpoint.checkpoint`.'
            ),
        ]
        | None
    ) = None
    gradient_checkpointing: (
        Annotated[
            bool,
            Meta(
                description='Enable gradient checkpointing to trade compute for memory. Reduces memory at the cost of ~20% slower training.'
            ),
        ]
    ) = True
    gradient_checkpointing_kwargs: (
        Annotated[
            dict[str, Any] | str,
            Meta(
                description='Deprecated alias of `activation_checkpointing_kwargs`, will be removed in v6.'
            ),
        ]
        | None
    ) = None
    torch_compile: (
        Annotated[
            bool,
            Meta(
                description='Compile the model using `torch.compile()` for faster training.'
            ),
        ]
    ) = False
    torch_compile_backend: (
        Annotated[
            str,
            Meta(
                description='Backend for `torch.compile()`. If set, automatically enables `torch_compile`.'
            ),
        ]
        | None
    ) = None
    torch_compile_mode: (
        Annotated[
            str,
            Meta(
                description='Compilation mode for `torch.compile()`. If set, automatically enables `torch_compile`.'
            ),
        ]
        | None
    ) = None
    use_liger_kernel: (
        Annotated[
            bool,
            Meta(
                description='Enable Liger Kernel optimizations: transformers patches the model\'s layers with Liger\'s Triton kernels. Deprecated in `SFTTrainer`, `DPOTrainer`, `KTOTrainer`, `GRPOTrainer` and `RLOOTrainer`, and will be removed in v2.0.0: use `model_init_kwargs={"use_kernels": True}` instead.'
            ),
        ]
    ) = False
    liger_kernel_config: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Configuration for Liger Kernel. Passed as kwargs to `_apply_liger_kernel_to_instance()`. If None, uses default configuration.'
            ),
        ]
        | None
    ) = None
    use_cache: (
        Annotated[
            bool,
            Meta(
                description='Whether or not to use cache for the model For training, this is usually not needed apart from some PEFT methods that uses `cache`.'
            ),
        ]
    ) = False
    neftune_noise_alpha: (
        Annotated[
            float,
            Meta(
                description='If not None, activates NEFTune noise embeddings. Can drastically improve performance for instruction fine-tuning. Typical range: [5.0, 15.0].'
            ),
        ]
        | None
    ) = None
    torch_empty_cache_steps: (
        Annotated[
            int,
            Meta(
                description='Number of steps to wait before calling `torch.<device>.empty_cache()`. Helps avoid CUDA OOM at a cost of ~10% slower performance. If None, cache will not be emptied.',
                gt=0,
            ),
        ]
        | None
    ) = None
    auto_find_batch_size: (
        Annotated[
            bool,
            Meta(
                description='Whether to find a training batch size that will fit into memory automatically through exponential decay, avoiding CUDA Out-of-Memory errors. The evaluation batch size is not adjusted.'
            ),
        ]
    ) = False
    logging_strategy: (
        Annotated[
            Literal['no', 'steps', 'epoch'],
            Meta(description="The logging strategy to adopt during training. Options: 'no', 'epoch', 'steps'."),
        ]
    ) = 'steps'
    logging_steps: (
        Annotated[
            float,
            Meta(
                description='Log every X updates steps. Should be an integer or a float in range `[0,1)`. If smaller than 1, will be interpreted as ratio of total training steps.',
                gt=0.0,
            ),
        ]
    ) = 10
    logging_first_step: (
        Annotated[
            bool, Meta(description='Whether to log the first `global_step` or not.')
        ]
    ) = False
    log_on_each_node: (
        Annotated[
            bool,
            Meta(
                description='When doing a multinode distributed training, whether to log once per node or just once on the main node.'
            ),
        ]
    ) = True
    logging_nan_inf_filter: (
        Annotated[
            bool,
            Meta(
                description='Filter out NaN and Inf training and evaluation losses when logging. Does not affect gradient computation, only logging.'
            ),
        ]
    ) = True
    include_num_input_tokens_seen: (
        Annotated[
            str | bool,
            Meta(description='Whether to track the number of input tokens seen. Must be one of [`all`, `non_padding`, `no`] or a boolean value which map to `all` or `no`'),
        ]
    ) = 'no'
    log_level: (
        Annotated[
            Literal['detail', 'debug', 'info', 'warning', 'error', 'critical', 'passive'],
            Meta(description="Logging level for the main process. Options: 'debug', 'info', 'warning', 'error', 'critical', 'passive'."),
        ]
    ) = 'passive'
    log_level_replica: (
        Annotated[
            Literal['detail', 'debug', 'info', 'warning', 'error', 'critical', 'passive'],
            Meta(description='Logging level for replica processes in distributed training. Same options as `log_level`.'),
        ]
    ) = 'warning'
    disable_tqdm: (
        Annotated[
            bool,
            Meta(
                description='Disable tqdm progress bars. Defaults to True if log_level is warning or lower.'
            ),
        ]
        | None
    ) = None
    report_to: (
        Annotated[
            str | list[str],
            Meta(description="The list of integrations to report the results and logs to. Use 'all' for all installed integrations, 'none' for no integrations. ftconfig adds 'mlflow' when tracking is on (see the tracking section)."),
        ]
        | None
    ) = 'none'
    run_name: (
        Annotated[
            str,
            Meta(
                description='An optional descriptor for the run. Notably used for trackio, wandb, mlflow comet and swanlab logging.'
            ),
        ]
        | None
    ) = None
    project: (
        Annotated[
            str,
            Meta(description='The name of the project to use for logging. Currently, only used by Trackio.'),
        ]
    ) = 'huggingface'
    trackio_space_id: (
        Annotated[
            str,
            Meta(
                description="Hugging Face Space id for live Gradio-based Trackio logging (read/write Bucket access). Use 'username/reponame', 'orgname/reponame', or 'reponame' (current user's namespace). None: log only locally, no Space. Prefer trackio_static_space_id for stable post-training dashboard links. Public unless hub_private_repo=True or org default."
            ),
        ]
        | None
    ) = None
    trackio_bucket_id: (
        Annotated[
            str,
            Meta(
                description='Optional HF Bucket id when using a Trackio Space; if unset, Trackio picks a default.'
            ),
        ]
        | None
    ) = None
    trackio_static_space_id: (
        Annotated[
            str | bool,
            Meta(
                description='Static read-only Trackio Space over the Bucket (stable model-card links). False: no static sync on Hub push and no freeze after training. None/str: allow static Space; for local-only logging, Hub push runs sync(static); after training, freeze runs only if trackio_space_id was set (Gradio Space). str sets explicit static Space id. Public unless hub_private_repo=True or org default.'
            ),
        ]
        | None
    ) = None
    eval_strategy: (
        Annotated[
            Literal['no', 'steps', 'epoch'],
            Meta(description="When to run evaluation. Options: 'no', 'steps', 'epoch'."),
        ]
    ) = 'no'
    eval_steps: (
        Annotated[
            float,
            Meta(
                description="Number of update steps between evaluations if `eval_strategy='steps'`. Defaults to `logging_steps` if not set. Should be an integer or a float in range `[0,1)`. If smaller than 1, will be interpreted as ratio of total training steps.",
                gt=0.0,
            ),
        ]
        | None
    ) = None
    eval_delay: (
        Annotated[
            float,
            Meta(
                description='Number of epochs or steps to wait for before the first evaluation can be performed, depending on the eval_strategy.'
            ),
        ]
    ) = 0
    prediction_loss_only: (
        Annotated[
            bool,
            Meta(
                description='When performing evaluation and generating predictions, only returns the loss.'
            ),
        ]
    ) = False
    eval_on_start: (
        Annotated[
            bool,
            Meta(
                description='Whether to run through the entire `evaluation` step at the very beginning of training as a sanity check.'
            ),
        ]
    ) = False
    eval_do_concat_batches: (
        Annotated[
            bool,
            Meta(
                description='Whether to recursively concat inputs/losses/labels/predictions across batches. If `False`, will instead store them as lists, with each batch kept separate.'
            ),
        ]
    ) = True
    eval_use_gather_object: (
        Annotated[
            bool,
            Meta(
                description='Whether to run recursively gather object in a nested list/tuple/dictionary of objects from all devices.'
            ),
        ]
    ) = False
    eval_accumulation_steps: (
        Annotated[
            int,
            Meta(
                description='Number of predictions steps to accumulate the output tensors for, before moving the results to the CPU. If unset, predictions are accumulated on the accelerator before being moved to the CPU.'
            ),
        ]
        | None
    ) = None
    include_for_metrics: (
        Annotated[
            list[str],
            Meta(
                description="Include additional data in the `compute_metrics` function. Options: 'inputs', 'loss'."
            ),
        ]
    ) = field(default_factory=list)
    batch_eval_metrics: (
        Annotated[
            bool,
            Meta(
                description='Break eval metrics calculation into batches to save memory.'
            ),
        ]
    ) = False
    save_only_model: (
        Annotated[
            bool,
            Meta(
                description='Save only model weights, not optimizer/scheduler/RNG state. Prevents resuming training from checkpoint.'
            ),
        ]
    ) = False
    save_strategy: (
        Annotated[
            Literal['no', 'steps', 'epoch', 'best'],
            Meta(description="The checkpoint save strategy to adopt during training. Options: 'no', 'epoch', 'steps', 'best'."),
        ]
    ) = 'steps'
    save_steps: (
        Annotated[
            float,
            Meta(
                description='Save checkpoint every X updates steps. Should be an integer or a float in range `[0,1)`. If smaller than 1, will be interpreted as ratio of total training steps.',
                gt=0.0,
            ),
        ]
    ) = 500
    save_on_each_node: (
        Annotated[
            bool,
            Meta(
                description='When doing multi-node distributed training, whether to save models and checkpoints on each node, or only on the main one'
            ),
        ]
    ) = False
    save_total_limit: (
        Annotated[
            int,
            Meta(
                description='Maximum number of checkpoints to keep. Deletes older checkpoints in `output_dir`. The best checkpoint is always retained when `load_best_model_at_end=True`.'
            ),
        ]
        | None
    ) = None
    enable_jit_checkpoint: (
        Annotated[
            bool,
            Meta(
                description="Enable JIT checkpointing on SIGTERM signal for graceful termination on preemptible workloads. Configure your orchestrator's graceful shutdown period accordingly."
            ),
        ]
    ) = False
    push_to_hub: (
        Annotated[
            bool,
            Meta(
                description='Whether or not to push the model to the Hub every time the model is saved.'
            ),
        ]
    ) = False
    hub_token: (
        Annotated[
            str,
            Meta(
                description='The token to use to push the model to the Hub. Defaults to the token from `hf auth login`.'
            ),
        ]
        | None
    ) = None
    hub_private_repo: (
        Annotated[
            bool,
            Meta(
                description="Whether to make the repo private. If `None` (default), the repo will be public unless the organization's default is private. This value is ignored if the repo already exists. If reporting to Trackio Spaces created or synced (including on Hub push when `trackio_space_id` is None) use the same logic for whether the Space is private."
            ),
        ]
        | None
    ) = None
    hub_model_id: (
        Annotated[
            str,
            Meta(
                description='The name of the repository to keep in sync with the local `output_dir`.'
            ),
        ]
        | None
    ) = None
    hub_strategy: (
        Annotated[
            Literal['end', 'every_save', 'checkpoint', 'all_checkpoints'],
            Meta(description="Defines what and when to push to Hub. Options: 'end', 'every_save', 'checkpoint', 'all_checkpoints'."),
        ]
    ) = 'every_save'
    hub_always_push: (
        Annotated[
            bool,
            Meta(
                description="Unless `True`, the Trainer will skip pushes if the previous one wasn't finished yet."
            ),
        ]
    ) = False
    hub_revision: (
        Annotated[
            str,
            Meta(
                description='The revision to use when pushing to the Hub. Can be a branch name, a tag, or a commit hash.'
            ),
        ]
        | None
    ) = None
    load_best_model_at_end: (
        Annotated[
            bool,
            Meta(
                description='Load the best checkpoint at the end of training. Requires `eval_strategy` to be set.'
            ),
        ]
    ) = False
    metric_for_best_model: (
        Annotated[
            str,
            Meta(
                description="Metric to use for comparing models when `load_best_model_at_end=True`. Defaults to 'loss'."
            ),
        ]
        | None
    ) = None
    greater_is_better: (
        Annotated[
            bool,
            Meta(
                description='Whether higher metric values are better. Defaults based on `metric_for_best_model`.'
            ),
        ]
        | None
    ) = None
    ignore_data_skip: (
        Annotated[
            bool,
            Meta(
                description='When resuming training, skip fast-forwarding through the dataset to reach the previous state. If True, training starts from the beginning of the dataset.'
            ),
        ]
    ) = False
    restore_callback_states_from_checkpoint: (
        Annotated[
            bool,
            Meta(
                description='Whether to restore the callback states from the checkpoint. If `True`, will override callbacks passed to the `Trainer` if they exist in the checkpoint.'
            ),
        ]
    ) = False
    full_determinism: (
        Annotated[
            bool,
            Meta(
                description='Whether to call enable_full_determinism instead of set_seed for reproducibility in distributed training. Important: this will negatively impact the performance, so only use it for debugging.'
            ),
        ]
    ) = False
    seed: (
        Annotated[
            int,
            Meta(
                description='Random seed that will be set at the beginning of training.',
                ge=0,
                le=4294967295,
            ),
        ]
    ) = 42
    data_seed: (
        Annotated[
            int,
            Meta(
                description='Random seed to be used with data samplers. If not set, uses the same seed as `seed`.',
                ge=0,
                le=4294967295,
            ),
        ]
        | None
    ) = None
    use_cpu: (
        Annotated[
            bool,
            Meta(
                description='Whether or not to use cpu. If set to False, we will use the available torch device/backend.'
            ),
        ]
    ) = False
    accelerator_config: (
        Annotated[
            dict[str, Any] | str,
            Meta(
                description='Configuration for the internal Accelerate integration. Can be a path to a JSON config file or a dict.'
            ),
        ]
        | None
    ) = None
    parallelism_config: (
        Annotated[
            dict[str, Any],
            Meta(
                description='Parallelism configuration for the training run. Requires Accelerate `1.10.1`.'
            ),
        ]
        | None
    ) = None
    dataloader_drop_last: (
        Annotated[
            bool,
            Meta(
                description='Drop the last incomplete batch if it is not divisible by the batch size.'
            ),
        ]
    ) = False
    dataloader_num_workers: (
        Annotated[
            int,
            Meta(
                description='Number of subprocesses to use for data loading (PyTorch only). 0 means that the data will be loaded in the main process.',
                ge=0,
            ),
        ]
    ) = 0
    dataloader_pin_memory: (
        Annotated[
            bool, Meta(description='Whether or not to pin memory for DataLoader.')
        ]
    ) = True
    dataloader_persistent_workers: (
        Annotated[
            bool,
            Meta(
                description='If True, the data loader will not shut down the worker processes after a dataset has been consumed once. This allows to maintain the workers Dataset instances alive. Can potentially speed up training, but will increase RAM usage.'
            ),
        ]
    ) = False
    dataloader_prefetch_factor: (
        Annotated[
            int,
            Meta(
                description='Number of batches loaded in advance by each worker. 2 means there will be a total of 2 * num_workers batches prefetched across all workers.',
                ge=1,
            ),
        ]
        | None
    ) = None
    dataloader_multiprocessing_context: (
        Annotated[
            Literal['fork', 'spawn', 'forkserver'],
            Meta(
                description="The multiprocessing start method to use for data loading workers ('fork', 'spawn', or 'forkserver'). Defaults to PyTorch's default, except on MPS with dataloader_num_workers > 1, where it defaults to 'fork'. Use 'spawn' when streaming from sources whose objects are not fork-safe (e.g. HDFS via pyarrow). Under 'spawn', any custom collate_fn / dataset code must be importable at module level (no lambdas/closures)."
            ),
        ]
        | None
    ) = None
    dataloader_in_order: (
        Annotated[
            bool,
            Meta(
                description='If True (default), the data loader yields batches in the order workers were dispatched. Set to False to yield batches as soon as they are ready, reducing tail latency for IterableDataset streaming workloads. Requires PyTorch >= 2.6.'
            ),
        ]
    ) = True
    remove_unused_columns: (
        Annotated[
            bool,
            Meta(
                description='Whether or not to automatically remove the columns unused by the model forward method.'
            ),
        ]
    ) = True
    label_names: (
        Annotated[
            list[str],
            Meta(
                description='The list of keys in your dictionary of inputs that correspond to the labels.'
            ),
        ]
        | None
    ) = None
    train_sampling_strategy: (
        Annotated[
            Literal['random', 'sequential', 'group_by_length', 'batch_rebalance'],
            Meta(description="Sampler for training: 'random' (default), 'sequential', 'group_by_length', or 'batch_rebalance'."),
        ]
    ) = 'random'
    length_column_name: (
        Annotated[
            str,
            Meta(description="Column name for precomputed lengths. Ignored unless `train_sampling_strategy` is 'group_by_length' or 'batch_rebalance'."),
        ]
    ) = 'length'
    ddp_find_unused_parameters: (
        Annotated[
            bool,
            Meta(
                description='When using distributed training, the value of the flag `find_unused_parameters` passed to `DistributedDataParallel`.'
            ),
        ]
        | None
    ) = None
    ddp_bucket_cap_mb: (
        Annotated[
            int,
            Meta(
                description='When using distributed training, the value of the flag `bucket_cap_mb` passed to `DistributedDataParallel`.'
            ),
        ]
        | None
    ) = None
    ddp_broadcast_buffers: (
        Annotated[
            bool,
            Meta(
                description='When using distributed training, the value of the flag `broadcast_buffers` passed to `DistributedDataParallel`.'
            ),
        ]
        | None
    ) = None
    ddp_static_graph: (
        Annotated[
            bool,
            Meta(
                description='When using distributed training, the value of the flag `static_graph` passed to `DistributedDataParallel`.'
            ),
        ]
        | None
    ) = None
    ddp_backend: (
        Annotated[
            Literal['nccl', 'gloo', 'mpi', 'xccl', 'hccl', 'cncl', 'mccl'],
            Meta(
                description="The backend to use for distributed training. Must be one of 'nccl', 'mpi', 'xccl', 'gloo', 'hccl'."
            ),
        ]
        | None
    ) = None
    ddp_timeout: (
        Annotated[
            int,
            Meta(
                description='The timeout for `torch.distributed.init_process_group` calls (in seconds).'
            ),
        ]
    ) = 1800
    fsdp: (
        Annotated[
            str,
            Meta(
                description='Enable PyTorch Fully Sharded Data Parallel (FSDP) for distributed training. Pass `--fsdp` (or `fsdp=True`) to turn FSDP on.'
            ),
        ]
        | None
    ) = None
    fsdp_config: (
        Annotated[
            dict[str, Any] | str,
            Meta(
                description='Tuning for FSDP (used only when `fsdp` is enabled). Either a path to a JSON config file (e.g., `fsdp_config.json`) or an already loaded dict.'
            ),
        ]
        | None
    ) = None
    deepspeed: (
        Annotated[
            dict[str, Any] | str,
            Meta(
                description='Enable DeepSpeed integration. Value is a path to a JSON config file or a dict.'
            ),
        ]
        | None
    ) = None
    debug: (
        Annotated[
            str | list[Literal['underflow_overflow', 'tpu_metrics_debug']],
            Meta(description="Enable one or more debug features. Options: 'underflow_overflow' (detect overflow in model I/O), 'tpu_metrics_debug' (print TPU metrics)."),
        ]
    ) = ''
    skip_memory_metrics: (
        Annotated[
            bool,
            Meta(
                description='Whether to skip adding memory profiler reports to metrics. Skipped by default because it slows down training.'
            ),
        ]
    ) = True
    do_train: (
        Annotated[
            bool,
            Meta(
                description='Whether to run training. Not directly used by Trainer; intended for training/evaluation scripts.'
            ),
        ]
    ) = False
    do_eval: (
        Annotated[
            bool,
            Meta(
                description='Whether to run evaluation. Not directly used by Trainer; intended for training/evaluation scripts.'
            ),
        ]
    ) = False
    do_predict: (
        Annotated[
            bool,
            Meta(
                description='Whether to run predictions on the test set. Not directly used by Trainer; intended for training/evaluation scripts.'
            ),
        ]
    ) = False
    local_rank: (
        Annotated[
            int,
            Meta(
                description='When using torch.distributed.launch (Deprecated), it will pass `local_rank` in the script, so we need this for the parser. To get the local rank, prefer using the property `local_process_index`'
            ),
        ]
    ) = -1
    router_aux_loss_coef: (
        Annotated[
            float,
            Meta(
                description='Coefficient of the load-balancing auxiliary loss for Mixture-of-Experts (MoE) models, added to the training loss with this weight. When not set, the value declared by the model config is used. Set to `0.0` to disable it. Fails when used with a non-MoE model.'
            ),
        ]
        | None
    ) = None
    disable_dropout: (
        Annotated[
            bool,
            Meta(
                description='Whether to disable dropout in the model and reference model.'
            ),
        ]
    ) = True
    max_length: (
        Annotated[
            int,
            Meta(description="Maximum length of the tokenized sequence. Sequences longer than `max_length` are truncated from the left or right depending on the `truncation_mode`. If `None`, no truncation is applied. ftconfig's default is 2048 (TRL's is 1024)."),
        ]
        | None
    ) = 2048
    truncation_mode: (
        Annotated[
            Literal['keep_end', 'keep_start'],
            Meta(description="Truncation mode to use when the sequence exceeds `max_length`. The only supported value is `'keep_start'`. The `'keep_end'` value is deprecated and will be removed in v2.0.0."),
        ]
    ) = 'keep_start'
    padding_free: (
        Annotated[
            bool,
            Meta(
                description='Whether to perform forward passes without padding by flattening all sequences in the batch into a single continuous sequence. This reduces memory usage by eliminating padding overhead. Currently, this is only supported with the FlashAttention 2 or 3, which can efficiently handle the flattened batch structure. Temporarily unavailable: since the DPO refactor, setting it to True warns and falls back to standard padding. It is planned to return in a future update.'
            ),
        ]
    ) = False
    pad_to_multiple_of: (
        Annotated[
            int | str,
            Meta(description="If set, the sequences will be padded to a multiple of this value. `'auto'` pads to a multiple of 128 on Neuron (AWS Trainium), which compiles once per input shape, and does not pad elsewhere."),
        ]
        | None
    ) = 'auto'
    precompute_ref_log_probs: (
        Annotated[
            bool,
            Meta(
                description='Whether to precompute the reference model log probabilities for the entire training dataset before training. This allows to save memory during training, as the reference model does not need to be kept in memory.'
            ),
        ]
    ) = False
    precompute_ref_batch_size: (
        Annotated[
            int,
            Meta(
                description='Batch size to use when precomputing reference model log probabilities. This can be set higher than the training batch size to speed up preprocessing. If `None`, defaults to `per_device_train_batch_size` for training and `per_device_eval_batch_size` for evaluation.'
            ),
        ]
        | None
    ) = None
    loss_type: (
        Annotated[
            Literal['sigmoid', 'hinge', 'ipo', 'exo_pair', 'nca_pair', 'robust', 'bco_pair', 'sppo_hard', 'aot', 'aot_unpaired', 'apo_zero', 'apo_down', 'discopop', 'sft', 'sigmoid_norm'] | LossType,
            Meta(
                description="Type of loss to use. Possible values are: `'sigmoid'`, `'hinge'`, `'ipo'`, `'exo_pair'`, `'nca_pair'`, `'robust'`, `'bco_pair'`, `'sppo_hard'`, `'aot'`, `'aot_unpaired'`, `'apo_zero'`, `'apo_down'`, `'discopop'`, `'sft'`, `'sigmoid_norm'`. If multiple loss types are provided, they will be combined using the weights specified in `loss_weights`."
            ),
        ]
    ) = field(default_factory=lambda: ['sigmoid'])
    loss_weights: (
        Annotated[
            list[float],
            Meta(
                description='List of loss weights for multi-loss combinations. Used when combining multiple loss types. Example: `[0.8, 0.2, 1.0]` for MPO. If not provided, defaults to equal weights (`1.0`) for all loss types.'
            ),
        ]
        | None
    ) = None
    ld_alpha: (
        Annotated[
            float,
            Meta(
                description='α parameter from the LD-DPO paper, which controls the weighting of the verbose token log-probabilities in responses. If `None`, no weighting is applied to the verbose part, and the loss is equivalent to the standard DPO loss. Must be in [0.0, 1.0]: `ld_alpha=1.0` applies no weighting, and `ld_alpha=0.0` masks tokens beyond shared lengths.'
            ),
        ]
        | None
    ) = None
    f_divergence_type: (
        Annotated[
            str,
            Meta(description="f-divergence regularizer between policy and reference (f-DPO paper). Possible values are: `reverse_kl` (default), `forward_kl`, `js_divergence`, `alpha_divergence`. Only the loss types built on the chosen-rejected reward difference support a non-default value: `'sigmoid'`, `'sigmoid_norm'`, `'hinge'`, `'ipo'`, `'exo_pair'`, `'robust'`, `'discopop'`, `'sft'`. The other loss types have no valid f-divergence generalization and are rejected with a non-default value."),
        ]
    ) = 'reverse_kl'
    f_alpha_divergence_coef: (
        Annotated[
            float,
            Meta(
                description="α coefficient for the α-divergence u^-α regularizer, used only when `f_divergence_type='alpha_divergence'`."
            ),
        ]
    ) = 0.5
    label_smoothing: (
        Annotated[
            float,
            Meta(
                description='Label smoothing parameter used in Robust DPO and EXO. In Robust DPO, it is interpreted as the probability that a preference label is flipped and must lie in [0.0, 0.5); a typical value recommended by the Robust DPO paper is 0.1. In EXO, it corresponds to the ε label smoothing parameter, for which the paper recommends a typical value of 1e-3.'
            ),
        ]
    ) = 0.0
    beta: (
        Annotated[
            float,
            Meta(
                description="Parameter controlling the deviation from the reference model. Higher β means less deviation from the reference model. For the IPO loss (`loss_type='ipo'`), this value is the regularization parameter denoted by τ in the [paper](https://huggingface.co/papers/2310.12036)."
            ),
        ]
    ) = 0.1
    use_weighting: (
        Annotated[
            bool,
            Meta(
                description="Whether to apply [WPO](https://huggingface.co/papers/2406.11827)-style weighting to preference pairs using the policy's length-normalized sequence probabilities."
            ),
        ]
    ) = False
    discopop_tau: (
        Annotated[
            float,
            Meta(
                description="τ/temperature parameter from the DiscoPOP paper, which controls the shape of the log-ratio modulated loss when using `loss_type='discopop'`. The paper recommends the default value `discopop_tau=0.05`."
            ),
        ]
    ) = 0.05
    activation_offloading: (
        Annotated[
            bool, Meta(description='Whether to offload the activations to the CPU.')
        ]
    ) = False
    sync_ref_model: (
        Annotated[
            bool,
            Meta(
                description='Whether to synchronize the reference model with the active model every `ref_model_sync_steps` steps, using the `ref_model_mixup_alpha` parameter. This synchronization originates from the [TR-DPO](https://huggingface.co/papers/2404.09656) paper. `sync_ref_model=True` is not yet compatible with PEFT or `precompute_ref_log_probs=True`.'
            ),
        ]
    ) = False
    ref_model_mixup_alpha: (
        Annotated[
            float,
            Meta(
                description='α parameter from the TR-DPO paper, which controls the mix between the current policy and the previous reference policy during updates. The reference policy is updated according to the equation: `π_ref = α * π_θ + (1 - α) * π_ref_prev`. To use this parameter, you must set `sync_ref_model=True`.'
            ),
        ]
    ) = 0.6
    ref_model_sync_steps: (
        Annotated[
            int,
            Meta(
                description='τ parameter from the TR-DPO paper, which determines how frequently the current policy is synchronized with the reference policy. To use this parameter, you must set `sync_ref_model=True`.'
            ),
        ]
    ) = 512


class InferenceModelConfig(Struct, kw_only=True):
    """
    The model that generates: a base model, optionally with an adapter on top.
    """

    model: Annotated[
        str,
        Meta(
            description='A model folder or Hub id: the base model, a merged model, or an ftrun output_dir (its checkpoint-final with the base model the run recorded).',
            min_length=1,
        ),
    ]
    model_args: (
        Annotated[
            ModelArguments,
            Meta(
                description='Keyword arguments for AutoModelForCausalLM.from_pretrained.'
            ),
        ]
    ) = field(default_factory=lambda: convert({},  type=ModelArguments))
    adapter: (
        Annotated[
            str,
            Meta(
                description='A PEFT adapter folder to apply on top of model (e.g. an ftrun checkpoint-final).',
                min_length=1,
            ),
        ]
        | None
    ) = None
    tokenizer: (
        Annotated[
            str,
            Meta(
                description='Where the tokenizer comes from. Defaults to the adapter if given, else the model.',
                min_length=1,
            ),
        ]
        | None
    ) = None


class OpenInputPrompts(Struct, kw_only=True, tag_field='type', tag='open-input'):
    """
    One user message, answered num_samples times (useful with sampling).
    """

    input: Annotated[str, Meta(description='The user message.')] | UnsetType = ''
    num_samples: (
        Annotated[int, Meta(description='How many answers to generate for it.', ge=1)]
    ) = 1


class EvalDataPrompts(Struct, kw_only=True, tag_field='type', tag='eval-data'):
    """
    Prompts from a chat data file: each conversation up to its last user turn is a prompt, and the assistant turn after it (when there is one) is the reference answer.
    """

    data: Annotated[
        DatasetDefinition,
        Meta(description='The chat data file (JSONL, one conversation per line).'),
    ]


TrainingDataInput: TypeAlias = Annotated[
    ConcatenationDataInput | WeightedMixDataInput,
    Meta(
        description='Where the training examples come from, chosen by `type`.',
        title='TrainingDataInput',
    ),
]


ValidationDataInput: TypeAlias = Annotated[
    AutoSplitDataInput | ConcatenationDataInput | NoneDataInput,
    Meta(
        description='Where the validation examples come from, chosen by `type`.',
        title='ValidationDataInput',
    ),
]


PeftConfig: TypeAlias = Annotated[
    NoPeftConfig | PretrainedPeftConfig | PromptTuningPeftConfig | MultitaskPromptTuningPeftConfig | PTuningPeftConfig | PrefixTuningPeftConfig | LoraPeftConfig | AdaloraPeftConfig | BoftPeftConfig | AdaptionPromptPeftConfig | Ia3PeftConfig | LohaPeftConfig | LokrPeftConfig | OftPeftConfig | PolyPeftConfig | LnTuningPeftConfig | VeraPeftConfig | FourierftPeftConfig | XloraPeftConfig | HraPeftConfig | VbloraPeftConfig,
    Meta(
        description='Adapter configuration, chosen by `peft_type`: no adapter, a pretrained adapter, or a new adapter of any PEFT type.',
        title='PeftConfig',
    ),
]


class RunConfig(Struct, kw_only=True):
    """
    Experiment running configuration.
    """

    model: (
        Annotated[
            str,
            Meta(description='Local folder (as written by save_pretrained) or Hugging Face Hub ID of the model to fine-tune. The default, /local_resources/basemodel, is where the training containers of the system this config format comes from mount the base model; anywhere else, set your own folder or Hub ID.', min_length=1),
        ]
    ) = '/local_resources/basemodel'
    model_args: (
        Annotated[
            ModelArguments,
            Meta(
                description='Keyword arguments for AutoModelForCausalLM.from_pretrained.'
            ),
        ]
    ) = field(default_factory=lambda: convert({},  type=ModelArguments))
    tokenizer: (
        Annotated[
            str,
            Meta(
                description='Model HuggingFace ID, or path, or null to use the one associated with the model.'
            ),
        ]
        | None
    ) = None
    use_fast_tokenizer: (
        Annotated[
            bool,
            Meta(
                description="Use the Fast version of the tokenizer. The 'slow' version may be compatible with more features."
            ),
        ]
    ) = True
    resume_from_checkpoint: (
        Annotated[
            bool | str,
            Meta(
                description="Whether to continue from a checkpoint in output_dir: 'auto' continues from the newest checkpoint-<N> when there is one (the usual choice for jobs that may be restarted), true always continues (an error when there is none), false never does, and a path continues from that checkpoint."
            ),
        ]
    ) = False
    final_checkpoint_name: (
        Annotated[
            str,
            Meta(description='Name of final checkpoint (a folder inside output_dir). Should be left as default.', min_length=1, pattern='^[^/\\\\]+$'),
        ]
    ) = 'checkpoint-final'
    determinism: (
        Annotated[
            Literal['no', 'half', 'full'],
            Meta(description="How reproducible training is. no: seeded with training_args.seed. half: seeded, and PyTorch prefers deterministic algorithms (it warns where an operation has none). full: transformers' full determinism (seeded, deterministic algorithms only, cuDNN deterministic without benchmarking, CUDA_LAUNCH_BLOCKING and CUBLAS_WORKSPACE_CONFIG set): slower, but reruns on the same hardware give the same weights. training_args.full_determinism: true means full as well."),
        ]
    ) = 'no'


QuantizationConfig: TypeAlias = Annotated[
    BnBQuantizationConfig | NoQuantizationConfig,
    Meta(
        description='Quantization configuration, chosen by `quantization_type`.',
        title='QuantizationConfig',
    ),
]


PromptConfig: TypeAlias = Annotated[
    OpenInputPrompts | EvalDataPrompts,
    Meta(
        description='Where the prompts come from, chosen by `type`.',
        title='PromptConfig',
    ),
]


class ChatTrainValidConfig(Struct, kw_only=True):
    """
    Training time data configuration.

    Always defines some DataInput for training data and can include validation DataInput, though a trivial NoneDataInput is also allowed for the validation side. Additionally includes chat template and padding configurations, as those are part of the data input pipeline.
    """

    training_data: Annotated[
        TrainingDataInput,
        Meta(
            description='The training data: a concatenation or a weighted mix of chat datasets.'
        ),
    ]
    validation_data: Annotated[
        ValidationDataInput,
        Meta(
            description='The validation data: an automatic split of the training data, its own datasets, or none.'
        ),
    ]
    chat_template_name: (
        Annotated[
            ChatTemplateName,
            Meta(description="The chat template rendered around every conversation; keep-original uses the tokenizer's own template."),
        ]
    ) = 'mistral-with-system'
    padding_side: (
        Annotated[
            Literal['right', 'left'],
            Meta(description='Padding side, right is usually right.'),
        ]
    ) = 'right'
    missing_pad_token_strategy: (
        Annotated[
            MissingPadTokenStrategy,
            Meta(description='See the MissingPadTokenStrategys for descriptions of the options.'),
        ]
    ) = 'bos-repurpose'


class DPOFinetuningConfig(Struct, kw_only=True):
    """
    One direct preference optimisation (DPO) run: method dpo. The same sections as an SFT run except sft_args; training_args are TRL's DPOConfig. Additional properties are not allowed.
    """

    method: Annotated[
        Literal['dpo'],
        Meta(
            description="The training method: dpo trains with direct preference optimisation (TRL's DPOTrainer) on preference rows."
        ),
    ]
    data_conf: Annotated[
        ChatTrainValidConfig,
        Meta(
            description='The data input config. The files hold preference rows: each line is {"prompt_messages": [...], "chosen_messages": [...], "rejected_messages": [...]}.'
        ),
    ]
    training_args: Annotated[
        SilogenDPOConfig,
        Meta(
            description='TRL DPOConfig (transformers TrainingArguments plus the DPO fields) with some restrictions.'
        ),
    ]
    batchsize_conf: Annotated[
        BatchsizeConfig, Meta(description='Batch size configuration.')
    ]
    peft_conf: Annotated[PeftConfig, Meta(description='Adapter configuration.')]
    run_conf: Annotated[RunConfig, Meta(description='Model related configuration.')]
    field_schema: (
        Annotated[
            str,
            Meta(
                description='Path or URL of this JSON Schema, for editors. Ignored by ftrun.'
            ),
        ]
        | UnsetType
    ) = field(name='$schema', default=UNSET)
    overrides: (
        Annotated[
            Overrides,
            Meta(description='Override options to simplify the config interface.'),
        ]
    ) = (
        field(default_factory=lambda: convert({'num_train_epochs': None, 'lr_multiplier': 1.0, 'lr_batch_size_scaling': 'none'},  type=Overrides))
    )
    tracking: (
        Annotated[
            FinetuningTrackingConfig, Meta(description='MLFlow tracking configuration.')
        ]
        | None
    ) = None
    quant_conf: (
        Annotated[QuantizationConfig, Meta(description='Quantization configuration.')]
    ) = (
        field(default_factory=lambda: convert({'quantization_type': 'no-quantization'},  type=QuantizationConfig))
    )


class GenerationConfig(Struct, kw_only=True):
    """
    The structure of a generation config (`ftmodel generate CONFIG OUTPUT`): which model answers which prompts, with which generation settings. A document with a top-level `model_conf` is a generation config. Additional properties are not allowed.
    """

    model_conf: Annotated[
        InferenceModelConfig,
        Meta(
            description='The model to generate with: base model, optional adapter, tokenizer.'
        ),
    ]
    prompt_conf: Annotated[
        PromptConfig,
        Meta(
            description='Where the prompts come from: one open input repeated, or the user turns of a chat data file.'
        ),
    ]
    field_schema: (
        Annotated[
            str,
            Meta(
                description='Path or URL of this JSON Schema, for editors. Ignored by ftmodel.'
            ),
        ]
        | UnsetType
    ) = field(name='$schema', default=UNSET)
    hf_gen_params: (
        Annotated[
            dict[str, Any],
            Meta(
                description="Keyword arguments for transformers' GenerationConfig (max_new_tokens, do_sample, temperature, top_p, num_beams, ...). Checked against GenerationConfig before the model loads. Unset: greedy decoding, at most 512 new tokens, stopping at the end of the assistant turn."
            ),
        ]
    ) = field(default_factory=dict)
    quant_conf: (
        Annotated[
            QuantizationConfig,
            Meta(description='Quantization of the base model while generating.'),
        ]
    ) = (
        field(default_factory=lambda: convert({'quantization_type': 'no-quantization'},  type=QuantizationConfig))
    )


class FinetuningConfig(Struct, kw_only=True):
    """
    One supervised finetuning (SFT) run: method sft, or no method at all. Additional properties are not allowed.
    """

    data_conf: Annotated[
        ChatTrainValidConfig, Meta(description='The data input config.')
    ]
    training_args: Annotated[
        SilogenTrainingArguments,
        Meta(description='Transformer TrainingArguments with some restrictions.'),
    ]
    batchsize_conf: Annotated[
        BatchsizeConfig, Meta(description='Batch size configuration.')
    ]
    peft_conf: Annotated[PeftConfig, Meta(description='Adapter configuration.')]
    run_conf: Annotated[RunConfig, Meta(description='Model related configuration.')]
    sft_args: Annotated[SFTArguments, Meta(description='SFT specific arguments.')]
    field_schema: (
        Annotated[
            str,
            Meta(
                description='Path or URL of this JSON Schema, for editors. Ignored by ftrun.'
            ),
        ]
        | UnsetType
    ) = field(name='$schema', default=UNSET)
    method: (
        Annotated[
            Literal['sft'],
            Meta(description='The training method: sft (supervised finetuning, the default) or dpo (direct preference optimisation, see DPOFinetuningConfig).'),
        ]
    ) = 'sft'
    overrides: (
        Annotated[
            Overrides,
            Meta(description='Override options to simplify the config interface.'),
        ]
    ) = (
        field(default_factory=lambda: convert({'num_train_epochs': None, 'lr_multiplier': 1.0, 'lr_batch_size_scaling': 'none'},  type=Overrides))
    )
    tracking: (
        Annotated[
            FinetuningTrackingConfig, Meta(description='MLFlow tracking configuration.')
        ]
        | None
    ) = None
    quant_conf: (
        Annotated[QuantizationConfig, Meta(description='Quantization configuration.')]
    ) = (
        field(default_factory=lambda: convert({'quantization_type': 'no-quantization'},  type=QuantizationConfig))
    )


class FtconfigDocuments(Struct, kw_only=True):
    """
    The root documents ftconfig reads, side by side so that one generated module holds every struct.
    """

    finetuning: FinetuningConfig | UnsetType = UNSET
    dpo: DPOFinetuningConfig | UnsetType = UNSET
    generation: GenerationConfig | UnsetType = UNSET
