"""Tokenizer setup: loading, template tokens, pad strategies, inference-mode saves and the load-error seam."""

from __future__ import annotations

import copy
import json
import pickle
import shutil
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from ftconfig.generated.config import MissingPadTokenStrategy
from ftconfig.runtime.config._errors import ConfigError
from ftconfig.runtime.config._structs import literal_values
from ftconfig.runtime.data._templates import chat_template_for
from ftconfig.runtime.data._tokenizer import (
    _PAD_SOURCE,
    TokenizerSetup,
    build_tokenizer,
    check_completions_only,
    check_pad_strategy,
    completions_only_supported,
    install_chat_template,
    install_inference_save,
)
from tests.helpers import make_config

# The pad token each strategy gives the tiny tokenizer (it has no pad token of its own).
PAD_TOKEN_BY_STRATEGY = {
    "eos-repurpose": "</s>",
    "bos-repurpose": "<s>",
    "unk-repurpose": "<unk>",
    "unk-convert-to-eos": "<unk>",
}


def build(model: Path | str, *, tokenizer: Path | None = None, **data_conf):
    config = make_config(model, tokenizer=tokenizer, data_conf=data_conf)
    return build_tokenizer(config.run_conf, config.data_conf)


def tokenizer_variant(source: Path, target: Path, *, drop=(), template: str | None = None, **config) -> Path:
    """A copy of the tiny tokenizer: tokenizer_config.json keys dropped or changed, maybe another template."""
    target.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(source / name, target / name)
    settings = json.loads((target / "tokenizer_config.json").read_text())
    for key in drop:
        settings.pop(key)
    settings.update(config)
    (target / "tokenizer_config.json").write_text(json.dumps(settings))
    if template is not None:
        (target / "chat_template.jinja").write_text(template)
    return target


# --- loading ------------------------------------------------------------------------------------------------


def test_tokenizer_adds_bos_and_eos_and_uses_the_padding_side(tiny_model_dir):
    tokenizer, _ = build(tiny_model_dir, padding_side="left")
    ids = tokenizer("hi")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.padding_side == "left"


def test_tokenizer_keeps_its_own_eos_instead_of_forcing_the_llama2_one(tiny_model_dir, tmp_path):
    variant = tokenizer_variant(tiny_model_dir, tmp_path / "tok", eos_token="<|end|>")
    tokenizer, setup = build(tiny_model_dir, tokenizer=variant, chat_template_name="keep-original")
    assert tokenizer.eos_token == "<|end|>"
    assert tokenizer("hi")["input_ids"][-1] == tokenizer.convert_tokens_to_ids("<|end|>")
    assert setup.inference_eos == "<|end|>"


def test_tokenizer_path_takes_precedence_over_the_model_path(tiny_model_dir, tmp_path):
    config = make_config(tmp_path / "no-model-here", tokenizer=tiny_model_dir)
    tokenizer, _ = build_tokenizer(config.run_conf, config.data_conf)
    assert tokenizer.bos_token == "<s>"


@pytest.mark.parametrize(
    ("tokenizer_set", "location"), [(False, "$.run_conf.model"), (True, "$.run_conf.tokenizer")]
)
def test_missing_tokenizer_path_is_a_config_error_at_the_field_that_names_it(
    tmp_path, tokenizer_set, location
):
    missing = tmp_path / "missing"
    config = make_config(missing, tokenizer=missing if tokenizer_set else None)
    with pytest.raises(ConfigError) as info:
        build_tokenizer(config.run_conf, config.data_conf)
    (item,) = info.value.items
    assert item.location == location
    assert str(missing) in item.message
    assert isinstance(info.value.__cause__, OSError)


@pytest.mark.parametrize("content", ["{not json", "{}"])
def test_broken_tokenizer_files_are_a_config_error(tiny_model_dir, tmp_path, content):
    variant = tokenizer_variant(tiny_model_dir, tmp_path / "tok")
    (variant / "tokenizer.json").write_text(content)
    config = make_config(tiny_model_dir, tokenizer=variant)
    with pytest.raises(ConfigError, match=r"\$\.run_conf\.tokenizer: cannot load a tokenizer"):
        build_tokenizer(config.run_conf, config.data_conf)


def test_folder_without_tokenizer_files_is_a_config_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"\$\.run_conf\.model: cannot load a tokenizer"):
        build(tmp_path / "empty")


def test_keep_original_without_a_chat_template_is_a_config_error(tiny_model_dir, tmp_path):
    variant = tokenizer_variant(tiny_model_dir, tmp_path / "tok")
    (variant / "chat_template.jinja").unlink()
    with pytest.raises(ConfigError, match=r"\$\.data_conf\.chat_template_name: 'keep-original' needs"):
        build(variant, chat_template_name="keep-original")


# --- template tokens ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "added"),
    [
        ("chat-ml", 2),
        ("poro", 3),
        ("simplified-llama31", 3),
        ("mistral-with-system", 0),
        ("keep-original", 0),
    ],
)
def test_added_token_count_is_the_vocabulary_growth(tiny_model_dir, name, added):
    tokenizer, setup = build(tiny_model_dir, chat_template_name=name)
    assert setup.added_tokens == added
    assert len(tokenizer) == 512 + added


@pytest.mark.parametrize("name", ["chat-ml", "poro", "simplified-llama31"])
def test_template_tokens_are_special_and_encode_as_one_token(tiny_model_dir, name):
    tokenizer, setup = build(tiny_model_dir, chat_template_name=name)
    for token in setup.template.special_tokens:
        assert token in tokenizer.all_special_tokens
        assert tokenizer(token, add_special_tokens=False)["input_ids"] == [
            tokenizer.convert_tokens_to_ids(token)
        ]


def test_installing_a_template_twice_adds_nothing_the_second_time(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    template = chat_template_for("chat-ml", tokenizer)
    assert install_chat_template(tokenizer, template) == 2
    assert install_chat_template(tokenizer, template) == 0


def test_rebuilding_from_a_saved_tokenizer_adds_no_tokens(tiny_model_dir, tmp_path):
    tokenizer, _ = build(tiny_model_dir, chat_template_name="chat-ml")
    tokenizer.save_pretrained(tmp_path / "saved")
    again, setup = build(tmp_path / "saved", chat_template_name="chat-ml")
    assert setup.added_tokens == 0
    assert len(again) == len(tokenizer)


def test_registering_template_tokens_keeps_earlier_extra_special_tokens(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    install_chat_template(tokenizer, chat_template_for("chat-ml", tokenizer))
    install_chat_template(tokenizer, chat_template_for("poro", tokenizer))
    assert set(tokenizer.extra_special_tokens) == {
        "<|im_start|>",
        "<|im_end|>",
        "<|user|>",
        "<|assistant|>",
        "<|system|>",
    }


# --- pad strategies -----------------------------------------------------------------------------------------


def test_every_schema_pad_strategy_has_a_pad_source_and_a_test() -> None:
    schema_strategies = set(literal_values(MissingPadTokenStrategy))
    assert set(_PAD_SOURCE) == schema_strategies
    assert set(PAD_TOKEN_BY_STRATEGY) == schema_strategies


@pytest.mark.parametrize(("strategy", "pad"), PAD_TOKEN_BY_STRATEGY.items())
def test_each_pad_strategy_gives_the_tokenizer_its_pad_token(tiny_model_dir, strategy, pad):
    tokenizer, setup = build(tiny_model_dir, missing_pad_token_strategy=strategy)
    assert tokenizer.pad_token == pad
    assert tokenizer.pad_token_id == tokenizer.convert_tokens_to_ids(pad)
    assert setup.pad_strategy == strategy


@pytest.mark.parametrize("strategy", ["unk-repurpose", "unk-convert-to-eos"])
def test_a_strategy_whose_token_is_missing_is_a_config_error_naming_it(tiny_model_dir, tmp_path, strategy):
    variant = tokenizer_variant(tiny_model_dir, tmp_path / "tok", drop=["unk_token"])
    with pytest.raises(ConfigError) as info:
        build(variant, missing_pad_token_strategy=strategy)
    (item,) = info.value.items
    assert item.location == "$.data_conf.missing_pad_token_strategy"
    assert "no UNK token" in item.message and repr(strategy) in item.message
    assert "'bos-repurpose'" in item.hint and "'unk-repurpose'" not in item.hint


def test_a_repurpose_strategy_whose_token_exists_works_without_unk(tiny_model_dir, tmp_path):
    variant = tokenizer_variant(tiny_model_dir, tmp_path / "tok", drop=["unk_token"])
    tokenizer, _ = build(variant, missing_pad_token_strategy="bos-repurpose")
    assert tokenizer.unk_token is None and tokenizer.pad_token == "<s>"


def test_an_existing_pad_token_is_kept_by_repurpose_strategies(tiny_model_dir, tmp_path):
    variant = tokenizer_variant(tiny_model_dir, tmp_path / "tok", pad_token="<pad>")
    tokenizer, _ = build(variant, missing_pad_token_strategy="eos-repurpose")
    assert tokenizer.pad_token == "<pad>"


def test_unk_convert_to_eos_with_an_existing_pad_token_is_a_config_error_naming_the_strategy(
    tiny_model_dir, tmp_path
):
    variant = tokenizer_variant(tiny_model_dir, tmp_path / "tok", pad_token="<pad>")
    tokenizer = AutoTokenizer.from_pretrained(variant)
    with pytest.raises(ConfigError) as info:
        check_pad_strategy(tokenizer, "unk-convert-to-eos")
    (item,) = info.value.items
    assert item.location == "$.data_conf.missing_pad_token_strategy"
    assert "'unk-convert-to-eos'" in item.message and "'<pad>'" in item.message
    assert "{strategy}" not in str(info.value)


# --- inference-mode save ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "eos"),
    [
        ("chat-ml", "<|im_end|>"),
        ("simplified-llama31", "<|eot_id|>"),
        ("poro", "</s>"),
        ("mistral-with-system", "</s>"),
        ("keep-original", "</s>"),
    ],
)
def test_saved_tokenizer_reloads_for_inference(tiny_model_dir, tmp_path, name, eos):
    tokenizer, setup = build(tiny_model_dir, chat_template_name=name)
    assert setup.inference_eos == eos
    tokenizer.save_pretrained(tmp_path / "saved")
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "saved")
    ids = reloaded("hi")["input_ids"]
    assert ids == [reloaded.bos_token_id, *reloaded("hi", add_special_tokens=False)["input_ids"]]
    assert reloaded.eos_token == eos and reloaded.eos_token_id not in ids
    assert reloaded.bos_token == "<s>"
    assert reloaded.chat_template == tokenizer.chat_template
    settings = json.loads((tmp_path / "saved" / "tokenizer_config.json").read_text())
    assert (settings["add_bos_token"], settings["add_eos_token"], settings["eos_token"]) == (True, False, eos)


def test_saving_leaves_the_in_memory_tokenizer_in_training_mode(tiny_model_dir, tmp_path):
    tokenizer, _ = build(tiny_model_dir, chat_template_name="chat-ml")
    before = (
        tokenizer("hi")["input_ids"],
        tokenizer.eos_token,
        tokenizer.add_bos_token,
        tokenizer.add_eos_token,
    )
    tokenizer.save_pretrained(tmp_path / "first")
    tokenizer.save_pretrained(tmp_path / "second")
    after = (
        tokenizer("hi")["input_ids"],
        tokenizer.eos_token,
        tokenizer.add_bos_token,
        tokenizer.add_eos_token,
    )
    assert after == before == ([1, 316, 2], "</s>", True, True)
    assert (tmp_path / "second" / "tokenizer.json").read_bytes() == (
        tmp_path / "first" / "tokenizer.json"
    ).read_bytes()


def test_wrapping_save_twice_raises(tiny_model_dir):
    tokenizer, setup = build(tiny_model_dir)
    with pytest.raises(RuntimeError, match="already wrapped"):
        install_inference_save(tokenizer, setup.inference_eos)


@pytest.mark.parametrize(
    "clone", [lambda tok: pickle.loads(pickle.dumps(tok)), copy.deepcopy], ids=["pickle", "deepcopy"]
)
def test_a_copied_tokenizer_still_saves_for_inference(tiny_model_dir, tmp_path, clone):
    """datasets.map(num_proc=N) and dataloader workers pickle the tokenizer; copies keep the wrapper."""
    tokenizer, _ = build(tiny_model_dir, chat_template_name="chat-ml")
    copied = clone(tokenizer)
    copied.save_pretrained(tmp_path / "saved")
    assert AutoTokenizer.from_pretrained(tmp_path / "saved").eos_token == "<|im_end|>"
    assert copied("hi")["input_ids"][-1] == copied.eos_token_id


# --- completions-only support -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["mistral-with-system", "chat-ml", "poro", "simplified-llama31", "keep-original"]
)
def test_completions_only_works_with_named_templates_and_a_marked_original(tiny_model_dir, name):
    tokenizer, setup = build(tiny_model_dir, chat_template_name=name)
    assert completions_only_supported(tokenizer, setup)
    check_completions_only(tokenizer, setup)


def test_completions_only_with_an_unmarked_original_template_is_a_config_error(tiny_model_dir, tmp_path):
    unmarked = (
        "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}"
    )
    variant = tokenizer_variant(tiny_model_dir, tmp_path / "tok", template=unmarked)
    tokenizer, setup = build(variant, chat_template_name="keep-original")
    assert setup == TokenizerSetup(None, 0, "</s>", "bos-repurpose")
    assert not completions_only_supported(tokenizer, setup)
    with pytest.raises(ConfigError, match=r"\$\.sft_args\.train_on_completions_only: .*\{% generation %\}"):
        check_completions_only(tokenizer, setup)
