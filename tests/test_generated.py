"""Generated artifacts are fresh and faithful: structs, bundle and training_args schema match their sources."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import ftconfig.runtime
from ftconfig.generated import config as generated
from ftconfig.runtime.config._schema import check_schemas, schema_documents
from ftconfig.tools._bundle import build_bundle, write_bundle
from ftconfig.tools._gen_code import gen_code
from ftconfig.tools._import_training_args import import_training_args
from ftconfig.tools._paths import SCHEMA_DIR

HEAVY_MODULES = ("torch", "transformers", "peft", "trl", "bitsandbytes", "mlflow", "datasets", "accelerate")


def test_schema_files_are_valid_draft_2020_12_with_an_id_each() -> None:
    check_schemas()
    documents = schema_documents()
    assert len(documents) >= 8
    for name, document in documents.items():
        assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema", name
        assert document["$id"].endswith("/" + name)


def test_every_definition_and_user_property_is_described() -> None:
    for name, document in schema_documents().items():
        for def_name, definition in document.get("$defs", {}).items():
            assert definition.get("title") and definition.get("description"), f"{name}#{def_name}"
            for prop, spec in definition.get("properties", {}).items():
                assert spec.get("description"), f"{name}#{def_name}.{prop}"


def test_generated_structs_are_fresh() -> None:
    assert gen_code(check=True), "run: ftschema gen-code"


def test_bundle_is_fresh_and_self_contained() -> None:
    assert write_bundle(check=True), "run: ftschema bundle"
    refs = [ref for ref in _all_refs(build_bundle())]
    assert refs and all(ref.startswith("#/$defs/") for ref in refs)


def test_training_args_schema_matches_installed_transformers() -> None:
    assert import_training_args(SCHEMA_DIR, check=True), "run: ftschema import-training-args"


def test_training_args_schema_has_every_transformers_field_but_the_batch_fields() -> None:
    import dataclasses

    from transformers import TrainingArguments

    properties = schema_documents()["training_args.schema.json"]["properties"]
    expected = {
        f.name for f in dataclasses.fields(TrainingArguments) if f.init and not f.name.startswith("_")
    }
    expected -= {
        "per_device_train_batch_size",
        "per_device_eval_batch_size",
        "gradient_accumulation_steps",
        "resume_from_checkpoint",
    }
    assert set(properties) == expected
    assert properties["learning_rate"]["default"] == 5e-05
    assert "cosine" in properties["lr_scheduler_type"]["enum"]


def _all_refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _all_refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _all_refs(value)]
    return []


def test_unions_are_tagged_structs() -> None:
    for alias in (
        generated.PeftConfig,
        generated.QuantizationConfig,
        generated.TrainingDataInput,
        generated.ValidationDataInput,
    ):
        members = alias.__origin__.__args__ if hasattr(alias, "__origin__") else alias.__args__
        for member in getattr(members[0], "__args__", members):
            assert member.__struct_config__.tag is not None, member


def test_validator_path_imports_no_heavy_library(tmp_path: Path) -> None:
    blocker = "; ".join(f"sys.modules[{name!r}] = None" for name in HEAVY_MODULES)
    script = (
        f"import sys; {blocker}\n"
        "from ftconfig._ftschema_cli import cli\n"
        "from click.testing import CliRunner\n"
        f"result = CliRunner().invoke(cli, ['validate', {str(Path('examples/minimal.yaml').resolve())!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_runtime_exports_only_the_light_public_surface() -> None:
    assert set(ftconfig.runtime.__all__) == {
        "ConfigError",
        "DataError",
        "ErrorItem",
        "UserError",
        "load_config",
        "load_config_file",
        "parse_document",
        "validate_document",
    }


def test_generated_bundle_is_valid_json_with_the_seed_top_level_order() -> None:
    bundle = json.loads(Path(generated.__file__).with_name("ftconfig.schema.json").read_text())
    keys = [key for key in bundle["$defs"]["FinetuningConfig"]["properties"] if key != "$schema"]
    assert keys == [
        "method",
        "data_conf",
        "training_args",
        "overrides",
        "batchsize_conf",
        "peft_conf",
        "run_conf",
        "tracking",
        "quant_conf",
        "sft_args",
    ]
