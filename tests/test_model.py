"""The model side of the runtime: load arguments, loading, quantization, embedding growth, new-base save."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

from ftconfig.runtime.config._errors import ConfigError
from ftconfig.runtime.model._embeddings import grow_embeddings, save_new_basemodel
from ftconfig.runtime.model._loading import check_model_reference, load_model, model_load_kwargs
from ftconfig.runtime.model._new_tokens import NewTokenRows
from ftconfig.runtime.model._quantization import build_quantization_config, quant_storage_for_fsdp
from tests.helpers import make_config, only_error

NF4 = {"quantization_type": "bits-and-bytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}
INT8 = {"quantization_type": "bits-and-bytes", "load_in_8bit": True}
NEW_TOKENS = ["<|im_start|>", "<|im_end|>"]


# --- from_pretrained arguments ------------------------------------------------------------------------------


def test_default_model_args_pass_dtype_auto_and_nothing_else(tiny_model_dir: Path) -> None:
    config = make_config(tiny_model_dir)
    kwargs = model_load_kwargs(config.run_conf, config.quant_conf, use_cache=False)
    assert kwargs == {"dtype": "auto", "use_cache": False}


def test_dtype_names_become_torch_dtypes(tiny_model_dir: Path) -> None:
    config = make_config(tiny_model_dir, model_args={"torch_dtype": "bfloat16"})
    assert model_load_kwargs(config.run_conf, config.quant_conf, use_cache=True)["dtype"] is torch.bfloat16


def test_changed_model_args_are_passed_and_ones_transformers_5_dropped_warn_once(
    tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    args = {
        "attn_implementation": "eager",
        "revision": "v2",
        "low_cpu_mem_usage": True,
        "resume_download": True,
    }
    config = make_config(tiny_model_dir, model_args=args)
    with caplog.at_level(logging.WARNING, logger="ftconfig.runtime.model._loading"):
        kwargs = model_load_kwargs(config.run_conf, config.quant_conf, use_cache=True)
        model_load_kwargs(config.run_conf, config.quant_conf, use_cache=True)
    assert kwargs == {"dtype": "auto", "use_cache": True, "attn_implementation": "eager", "revision": "v2"}
    dropped = [record.getMessage() for record in caplog.records]
    assert len([m for m in dropped if "low_cpu_mem_usage" in m]) == 1
    assert len([m for m in dropped if "resume_download" in m]) == 1


def test_trust_remote_code_is_only_passed_when_true_and_then_warns(
    tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    off = make_config(tiny_model_dir)
    assert "trust_remote_code" not in model_load_kwargs(off.run_conf, off.quant_conf, use_cache=True)
    on = make_config(tiny_model_dir, model_args={"trust_remote_code": True})
    with caplog.at_level(logging.WARNING, logger="ftconfig.runtime.model._loading"):
        assert model_load_kwargs(on.run_conf, on.quant_conf, use_cache=True)["trust_remote_code"] is True
    assert "executes Python code from the model repository" in caplog.text


def test_device_map_auto_in_a_multi_process_run_is_a_config_error(tiny_model_dir: Path) -> None:
    config = make_config(tiny_model_dir, model_args={"device_map": "auto"})
    assert model_load_kwargs(config.run_conf, config.quant_conf, use_cache=True)["device_map"] == "auto"
    with pytest.raises(ConfigError) as excinfo:
        model_load_kwargs(config.run_conf, config.quant_conf, use_cache=True, world_size=2, local_rank=1)
    assert only_error(excinfo)[0] == "$.run_conf.model_args.device_map"


def test_quantized_kwargs_carry_a_bitsandbytes_config(tiny_model_dir: Path) -> None:
    config = make_config(tiny_model_dir, quant_conf=NF4)
    kwargs = model_load_kwargs(config.run_conf, config.quant_conf, use_cache=True)
    assert isinstance(kwargs["quantization_config"], BitsAndBytesConfig)
    assert kwargs["quantization_config"].load_in_4bit


# --- quantization config ------------------------------------------------------------------------------------


def test_no_quantization_builds_nothing(tiny_model_dir: Path) -> None:
    assert build_quantization_config(make_config(tiny_model_dir).quant_conf) is None


def test_bnb_fields_reach_bitsandbytes_config_with_torch_dtypes(tiny_model_dir: Path) -> None:
    quant = {
        **NF4,
        "bnb_4bit_compute_dtype": "bfloat16",
        "bnb_4bit_use_double_quant": True,
        "llm_int8_threshold": 5.0,
    }
    built = build_quantization_config(make_config(tiny_model_dir, quant_conf=quant).quant_conf)
    assert built is not None
    assert (built.bnb_4bit_quant_type, built.bnb_4bit_use_double_quant, built.llm_int8_threshold) == (
        "nf4",
        True,
        5.0,
    )
    assert built.bnb_4bit_compute_dtype is torch.bfloat16
    assert built.bnb_4bit_quant_storage is torch.uint8  # null storage is left to transformers' default


def test_quant_storage_is_filled_only_when_fsdp_is_really_on(tiny_model_dir: Path) -> None:
    plain = make_config(tiny_model_dir, quant_conf=NF4)
    assert (
        quant_storage_for_fsdp(plain.quant_conf, plain.training_args) is plain.quant_conf
    )  # not filled in without FSDP
    fsdp = make_config(
        tiny_model_dir, quant_conf=NF4, training_args={"fsdp": "full_shard auto_wrap", "bf16": True}
    )
    filled = quant_storage_for_fsdp(fsdp.quant_conf, fsdp.training_args)
    assert filled.bnb_4bit_quant_storage == "bfloat16"  # type: ignore[union-attr]
    assert fsdp.quant_conf.bnb_4bit_quant_storage is None  # type: ignore[union-attr]  # input untouched


# --- loading ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_dtype_auto_really_reaches_from_pretrained(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    original = AutoModelForCausalLM.from_pretrained

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    config = make_config(tiny_model_dir)
    model = load_model(config.run_conf, config.quant_conf, use_cache=False)
    assert seen["dtype"] == "auto"
    assert model.dtype == torch.float32  # the checkpoint's own dtype
    assert model.config.use_cache is False


@pytest.mark.slow
def test_bfloat16_loads_bfloat16_parameters(tiny_model_dir: Path) -> None:
    config = make_config(tiny_model_dir, model_args={"torch_dtype": "bfloat16"})
    model = load_model(config.run_conf, config.quant_conf, use_cache=True)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


@pytest.mark.slow
def test_fields_transformers_5_dropped_do_not_break_loading(tiny_model_dir: Path) -> None:
    args = {
        "resume_download": True,
        "low_cpu_mem_usage": True,
        "offload_state_dict": True,
        "attn_implementation": "eager",
    }
    config = make_config(tiny_model_dir, model_args=args)
    model = load_model(config.run_conf, config.quant_conf, use_cache=True)
    assert model.config._attn_implementation == "eager"
    assert not any(hasattr(model.config, name) for name in ("resume_download", "low_cpu_mem_usage"))


@pytest.mark.slow
def test_4bit_nf4_loads_linear4bit_modules(tiny_model_dir: Path) -> None:
    config = make_config(tiny_model_dir, quant_conf=NF4)
    model = load_model(config.run_conf, config.quant_conf, use_cache=True)
    kinds = {type(module).__name__ for module in model.modules()}
    assert "Linear4bit" in kinds
    assert model.is_loaded_in_4bit


@pytest.mark.slow
def test_8bit_loads_and_runs_a_forward_pass(tiny_model_dir: Path, quiet_int8_matmul: None) -> None:
    config = make_config(tiny_model_dir, quant_conf=INT8)
    model = load_model(config.run_conf, config.quant_conf, use_cache=True)
    assert "Linear8bitLt" in {type(module).__name__ for module in model.modules()}
    logits = model(input_ids=torch.tensor([[1, 40, 41, 42]])).logits
    assert logits.shape == (1, 4, 512)
    assert torch.isfinite(logits).all()


# --- user mistakes in run_conf.model ------------------------------------------------------------------------


def test_check_model_reference_accepts_the_tiny_model(tiny_model_dir: Path) -> None:
    check_model_reference(make_config(tiny_model_dir).run_conf)


@pytest.mark.parametrize("loader", ["check", "load"])
def test_missing_model_path_is_a_config_error_at_run_conf_model(tmp_path: Path, loader: str) -> None:
    config = make_config(tmp_path / "no-such-model")
    with pytest.raises(ConfigError) as excinfo:
        if loader == "check":
            check_model_reference(config.run_conf)
        else:
            load_model(config.run_conf, config.quant_conf, use_cache=True)
    location, text = only_error(excinfo)
    assert location == "$.run_conf.model"
    assert "no model folder at" in text


def test_path_typo_suggests_the_existing_folder(tiny_model_dir: Path) -> None:
    config = make_config(tiny_model_dir.parent / "tiny-lama")
    with pytest.raises(ConfigError) as excinfo:
        check_model_reference(config.run_conf)
    assert "Did you mean 'tiny-llama'?" in only_error(excinfo)[1]


def test_folder_without_config_json_is_not_a_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        check_model_reference(make_config(tmp_path).run_conf)
    location, text = only_error(excinfo)
    assert location == "$.run_conf.model"
    assert "no config.json" in text


def test_hub_id_that_is_not_cached_is_a_config_error_mentioning_offline_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    config = make_config("example-org/model-that-is-not-cached")
    with pytest.raises(ConfigError) as excinfo:
        check_model_reference(config.run_conf)
    location, text = only_error(excinfo)
    assert location == "$.run_conf.model"
    assert "Offline mode is on" in text
    assert isinstance(excinfo.value.__cause__, OSError)


@pytest.mark.slow
def test_model_folder_without_weights_is_a_config_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    config = make_config(tmp_path)
    check_model_reference(config.run_conf)  # the config alone looks fine
    with pytest.raises(ConfigError) as excinfo:
        load_model(config.run_conf, config.quant_conf, use_cache=True)
    location, text = only_error(excinfo)
    assert location == "$.run_conf.model"
    assert "model.safetensors" in text


# --- embedding growth ---------------------------------------------------------------------------------------


@pytest.fixture
def tiny_model(tiny_model_dir: Path) -> Any:
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir)


@pytest.fixture
def tokenizer_with_new_tokens(tiny_model_dir: Path) -> Any:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert tokenizer.add_special_tokens({"additional_special_tokens": NEW_TOKENS}) == 2
    return tokenizer


@pytest.mark.slow
def test_grow_embeddings_adds_rows_at_the_old_mean_and_says_where_they_are(
    tiny_model: Any, tokenizer_with_new_tokens: Any
) -> None:
    old = tiny_model.get_input_embeddings().weight.detach().clone()
    rows = grow_embeddings(tiny_model, tokenizer_with_new_tokens, [512, 513])
    new = tiny_model.get_input_embeddings().weight.detach()
    assert rows == NewTokenRows((512, 513), "embed_tokens", "lm_head", tied=True, grown=True)
    assert new.shape == (514, 64)
    assert tiny_model.config.vocab_size == 514
    torch.testing.assert_close(new[:512], old)
    # mean_resizing samples around the old mean with the old covariance: far closer than one row's spread
    distance = (new[512:] - old.mean(dim=0)).norm(dim=1)
    assert (distance < 0.1 * old.norm(dim=1).mean()).all()
    assert tiny_model.get_output_embeddings().weight.shape == (514, 64)


@pytest.mark.slow
def test_grow_embeddings_does_nothing_when_the_new_tokens_fit(
    tiny_model: Any, tokenizer_with_new_tokens: Any
) -> None:
    tiny_model.resize_token_embeddings(520)  # a checkpoint with spare rows
    rows = grow_embeddings(tiny_model, tokenizer_with_new_tokens, [512, 513])
    assert rows is not None and not rows.grown and rows.token_ids == (512, 513)
    assert tiny_model.get_input_embeddings().weight.shape[0] == 520
    assert grow_embeddings(tiny_model, tokenizer_with_new_tokens, []) is None


@pytest.mark.slow
@pytest.mark.parametrize("quant_conf", [NF4, INT8], ids=["4bit", "8bit"])
def test_a_quantized_model_grows_its_unquantized_embeddings(
    tiny_model_dir: Path, tokenizer_with_new_tokens: Any, quant_conf: dict[str, Any]
) -> None:
    config = make_config(tiny_model_dir, quant_conf=quant_conf)
    model = load_model(config.run_conf, config.quant_conf, use_cache=True)
    rows = grow_embeddings(model, tokenizer_with_new_tokens, [512, 513])
    assert rows is not None and rows.grown
    assert model.get_input_embeddings().weight.shape == (514, 64)
    assert model.get_input_embeddings().weight.dtype == torch.float32  # embeddings are never quantized


# --- new base model -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_save_new_basemodel_writes_a_loadable_grown_model_and_tokenizer(
    tiny_model: Any, tokenizer_with_new_tokens: Any, tmp_path: Path
) -> None:
    grow_embeddings(tiny_model, tokenizer_with_new_tokens, [512, 513])
    target = tmp_path / "out" / "checkpoint-new-basemodel"
    (target).mkdir(parents=True)
    (target / "stale.txt").write_text("from an earlier run")
    assert save_new_basemodel(tiny_model, tokenizer_with_new_tokens, target) == target
    reloaded = AutoModelForCausalLM.from_pretrained(target)
    assert reloaded.get_input_embeddings().weight.shape == (514, 64)
    assert len(AutoTokenizer.from_pretrained(target)) == 514
    assert not (target / "stale.txt").exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["checkpoint-new-basemodel"]  # no temp folders


@pytest.mark.slow
def test_save_new_basemodel_leaves_nothing_behind_when_saving_fails(
    tiny_model: Any, tokenizer_with_new_tokens: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_save(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(tokenizer_with_new_tokens, "save_pretrained", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_new_basemodel(tiny_model, tokenizer_with_new_tokens, tmp_path / "checkpoint-new-basemodel")
    assert list(tmp_path.iterdir()) == []
