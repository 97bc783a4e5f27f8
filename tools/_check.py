"""`ftschema check`: every generated artifact fresh, every schema valid, every shipped config valid."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from ftconfig.runtime.config._errors import UserError
from ftconfig.tools._paths import DOCS_DIR, EXAMPLES_DIR, SCHEMA_DIR

__all__ = ["YAML_BLOCK", "run_all_checks", "shipped_configs"]

YAML_BLOCK = re.compile(r"^```ya?ml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def shipped_configs() -> Iterator[tuple[str, str]]:
    """(name, text) of every config under examples/ and docs/: YAML files and ```yaml blocks with data_conf
    (finetuning configs) or model_conf (generation configs)."""
    for folder in (EXAMPLES_DIR, DOCS_DIR):
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix in (".yaml", ".yml"):
                yield str(path), path.read_text(encoding="utf-8")
            elif path.suffix == ".md":
                text = path.read_text(encoding="utf-8")
                for number, match in enumerate(YAML_BLOCK.finditer(text), start=1):
                    block = match.group(1)
                    if re.search(r"^(data_conf|model_conf):", block, re.MULTILINE):
                        yield f"{path} (yaml block {number})", block


def run_all_checks(echo: Callable[[str], None]) -> int:
    """Run the checks, echo one line each, and return the number of problems."""
    from jsonschema.exceptions import SchemaError

    from ftconfig.runtime.config._load import (
        is_generation_document,
        load_config,
        load_generation_config,
        parse_document,
    )
    from ftconfig.runtime.config._schema import check_schemas
    from ftconfig.tools._bundle import write_bundle
    from ftconfig.tools._gen_code import gen_code
    from ftconfig.tools._gen_docs import write_docs
    from ftconfig.tools._import_training_args import import_training_args

    problems = 0

    def report(ok: bool, what: str) -> None:
        nonlocal problems
        problems += not ok
        echo(f"{'ok  ' if ok else 'FAIL'} {what}")

    try:
        check_schemas()
        report(True, "schema files are valid draft 2020-12")
    except SchemaError as exc:
        report(False, f"schema files: {exc.message}")
    report(
        import_training_args(SCHEMA_DIR, check=True), "training_args schema matches installed transformers"
    )
    report(gen_code(check=True), "generated/config.py is fresh")
    report(
        write_bundle(check=True),
        "generated/ftconfig.schema.json and ftconfig-generation.schema.json are fresh",
    )
    report(write_docs(check=True), "docs/config.md is fresh")
    for name, text in shipped_configs():
        try:
            document = parse_document(text, name=name)
            if is_generation_document(document):
                load_generation_config(document)
            else:
                load_config(document)
            report(True, f"config {name}")
        except UserError as error:
            report(False, f"config {name}: {error}")
    return problems
