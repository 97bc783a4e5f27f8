"""The generation config (`ftmodel generate`): schema, validation through ftschema, hf_gen_params checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ftconfig.runtime import ConfigError
from ftconfig.runtime.config._load import load_any_config_file, load_generation_config
from tests.helpers import EXAMPLES


def ftschema(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from ftconfig._ftschema_cli import main; main()", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


def locations(error: ConfigError) -> list[str]:
    return [item.location for item in error.items]


def test_shipped_generation_example_is_a_valid_generation_config() -> None:
    from ftconfig.generated.config import EvalDataPrompts, GenerationConfig

    config = load_any_config_file(EXAMPLES / "generate.yaml")
    assert isinstance(config, GenerationConfig)
    assert isinstance(config.prompt_conf, EvalDataPrompts)
    assert config.model_conf.tokenizer is None and config.model_conf.model_args.torch_dtype == "auto"


def test_open_input_defaults_come_from_the_schema() -> None:
    from ftconfig.generated.config import NoQuantizationConfig, OpenInputPrompts

    config = load_generation_config({"model_conf": {"model": "m"}, "prompt_conf": {"type": "open-input"}})
    assert isinstance(config.prompt_conf, OpenInputPrompts)
    assert (config.prompt_conf.input, config.prompt_conf.num_samples) == ("", 1)
    assert config.hf_gen_params == {} and isinstance(config.quant_conf, NoQuantizationConfig)


def test_generation_config_errors_name_their_paths_all_at_once() -> None:
    document = {
        "model_conf": {"model": "m", "adaptor": "a"},
        "prompt_conf": {"type": "eval-data", "data": {}},
        "hf_gen_params": [],
    }
    with pytest.raises(ConfigError) as caught:
        load_generation_config(document)
    found = locations(caught.value)
    assert "$.model_conf.adaptor" in found
    assert any(location.startswith("$.prompt_conf") for location in found)
    assert "$.hf_gen_params" in found
    assert "Did you mean 'adapter'?" in str(caught.value)


def test_ftschema_validate_tells_generation_and_finetuning_configs_apart(tmp_path: Path) -> None:
    bad = tmp_path / "gen.yaml"
    bad.write_text(
        yaml.safe_dump(
            {"model_conf": {"model": "m"}, "prompt_conf": {"type": "open-input", "num_samples": 0}}
        )
    )
    result = ftschema(
        "validate", str(EXAMPLES / "generate.yaml"), str(EXAMPLES / "quickstart.yaml"), str(bad)
    )
    assert result.returncode == 2
    assert "generate.yaml: valid" in result.stdout and "quickstart.yaml: valid" in result.stdout
    assert "$.prompt_conf.num_samples" in result.stderr and "Traceback" not in result.stderr


def test_hf_gen_params_are_checked_against_transformers_generation_config() -> None:
    from ftconfig.runtime.inference._gen_params import DEFAULT_MAX_NEW_TOKENS, check_gen_params

    assert check_gen_params({}) == {"max_new_tokens": DEFAULT_MAX_NEW_TOKENS}
    assert check_gen_params({"do_sample": True, "temperature": 0.7, "max_length": 40}) == {
        "do_sample": True,
        "temperature": 0.7,
        "max_length": 40,
    }
    with pytest.raises(ConfigError) as caught:
        check_gen_params({"max_new_token": 5, "output_scores": True})
    assert locations(caught.value) == ["$.hf_gen_params.max_new_token", "$.hf_gen_params.output_scores"]
    assert "Did you mean 'max_new_tokens'" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        check_gen_params({"temperature": 0.5})  # only used when sampling
    assert locations(caught.value) == ["$.hf_gen_params.temperature"]
    with pytest.raises(ConfigError) as caught:
        check_gen_params({"max_new_tokens": 0})
    assert locations(caught.value) == ["$.hf_gen_params.max_new_tokens"]
