"""docs/config.md is generated, fresh, complete and readable; the guide's configs and snippets are valid."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest
from click.testing import CliRunner

from ftconfig.runtime.config._load import load_config, parse_document
from ftconfig.runtime.config._schema import METHOD_SCHEMA_NAMES, ROOT_SCHEMA_NAME, schema_documents
from ftconfig.tools._gen_docs import CONFIG_DOC, SHARED_LINK, method_heading, render_docs, write_docs
from ftconfig.tools._paths import DOCS_DIR, REPO_ROOT

GUIDE = DOCS_DIR / "guide.md"
JARGON = re.compile(r"\b(const|anyOf|oneOf|allOf)\b|\$ref")
YAML_BLOCK = re.compile(r"^```ya?ml\n(.*?)^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\]\(#([^)]+)\)")


@pytest.fixture(scope="module")
def doc() -> str:
    return CONFIG_DOC.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def sections(doc: str) -> dict[str, str]:
    """`## Heading` -> the text up to the next such heading."""
    parts = re.split(r"^## (.+)$", doc, flags=re.MULTILINE)
    return {parts[index].strip(): parts[index + 1] for index in range(1, len(parts), 2)}


def _documented_objects() -> list[tuple[str, dict[str, Any]]]:
    """(section heading, schema) for the root and every definition, as the generator should document them."""
    found = []
    methods = {file_name: method for method, file_name in METHOD_SCHEMA_NAMES.items()}
    for file_name, document in schema_documents().items():
        if file_name == ROOT_SCHEMA_NAME:
            continue  # its definitions only point at the method documents
        if file_name in methods:
            found.append((method_heading(methods[file_name]), document))
        elif "properties" in document:
            found.append((document["title"], document))
        found += [(node.get("title", key), node) for key, node in document.get("$defs", {}).items()]
    return found


def _section_with_shared(sections: dict[str, str], name: str) -> str:
    """A section, plus the union section its properties are listed under when it is one of a shared group."""
    text = sections[name]
    match = re.search(re.escape(SHARED_LINK) + r" \[([^\]]+)\]", text)
    return text + sections[match.group(1)] if match else text


def _row_cells(line: str) -> list[str]:
    """Split a table row on unescaped pipes, as GitHub-flavoured Markdown does."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def test_render_docs_is_deterministic_and_matches_the_committed_file(doc: str) -> None:
    first = render_docs()
    assert first == render_docs()
    assert first == doc, "docs/config.md is stale: run `ftschema gen-docs` and commit it"
    assert write_docs(check=True) is True


def test_ftschema_gen_docs_check_passes_on_the_committed_file() -> None:
    from ftconfig._ftschema_cli import cli

    result = CliRunner().invoke(cli, ["gen-docs", "--check"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("name", "schema"), _documented_objects(), ids=lambda value: str(value)[:40])
def test_every_definition_has_a_section_with_every_property(
    sections: dict[str, str], name: str, schema: dict[str, Any]
) -> None:
    assert name in sections, f"no `## {name}` section"
    text = _section_with_shared(sections, name)
    rows = {line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| `")}
    missing = [prop for prop in schema.get("properties", {}) if f"`{prop}`" not in rows]
    assert not missing, f"{name}: properties without a table row: {missing}"
    for value in schema.get("enum", []):
        assert f"`{value}`" in text, f"{name}: enum value {value!r} is not listed"


def test_every_training_args_field_is_listed_with_its_default(sections: dict[str, str]) -> None:
    schema = schema_documents()["training_args.schema.json"]
    rows = {
        cells[0].strip("`"): cells
        for line in sections[schema["title"]].splitlines()
        if line.startswith("| `") and len(cells := _row_cells(line)) == 6
    }
    assert set(rows) == set(schema["properties"])
    for name, node in schema["properties"].items():
        assert rows[name][4] == f"`{json.dumps(node['default'], ensure_ascii=False)}`", name
        assert rows[name][1], f"{name} has no type"
    for key in schema["x-ftconfig-forbidden"]:
        assert f"- `{key}`: " in sections[schema["title"]]


def test_tables_use_words_not_json_schema_jargon(doc: str) -> None:
    bad = [line for line in doc.splitlines() if line.startswith("|") and JARGON.search(line)]
    assert not bad, bad[:3]


def test_every_table_row_has_as_many_cells_as_its_header(doc: str) -> None:
    width = 0
    for line in doc.splitlines():
        if not line.startswith("|"):
            width = 0
            continue
        cells = _row_cells(line)
        if width == 0:
            width = len(cells)
        assert len(cells) == width, line[:120]


def test_tables_render_as_tables_in_commonmark(doc: str) -> None:
    markdown_it = pytest.importorskip("markdown_it")
    tokens = markdown_it.MarkdownIt("commonmark").enable("table").parse(doc)
    table_lines = sum(1 for line in doc.splitlines() if line.startswith("|") and not line.startswith("|---"))
    rows = sum(1 for token in tokens if token.type == "tr_open")
    assert rows == table_lines
    cells_per_row: list[int] = []
    for token in tokens:
        if token.type == "tr_open":
            cells_per_row.append(0)
        elif token.type in ("td_open", "th_open"):
            cells_per_row[-1] += 1
    assert set(cells_per_row) <= {2, 6}


def test_every_anchor_link_points_at_a_section(doc: str, sections: dict[str, str]) -> None:
    anchors = {heading.lower().replace(" ", "-") for heading in sections}
    targets = set(LINK.findall(doc))
    assert targets and targets <= anchors, sorted(targets - anchors)


def test_the_reference_says_how_to_use_the_schema_and_links_the_guide(doc: str) -> None:
    intro = doc.split("\n## ", 1)[0]
    assert "Additional properties are not allowed" in intro
    assert "yaml-language-server: $schema=" in intro
    assert "](guide.md)" in intro
    assert "](guide.md#point-your-editor-at-the-schema)" in intro
    assert "## Point your editor at the schema" in GUIDE.read_text(encoding="utf-8")


def _guide_configs() -> list[str]:
    blocks = YAML_BLOCK.findall(GUIDE.read_text(encoding="utf-8"))
    return [block for block in blocks if re.search(r"^data_conf:", block, re.MULTILINE)]


def test_the_guide_has_a_config_example() -> None:
    assert _guide_configs()


@pytest.mark.parametrize("number", range(len(_guide_configs())))
def test_every_config_in_the_guide_validates(number: int) -> None:
    text = _guide_configs()[number]
    config = load_config(parse_document(text, name=f"guide.md (yaml block {number + 1})"))
    for dataset in config.data_conf.training_data.datasets:
        assert (REPO_ROOT / dataset.path).is_file(), dataset.path


def test_the_guide_data_example_has_a_list_of_messages() -> None:
    lines = [
        line for line in GUIDE.read_text(encoding="utf-8").splitlines() if line.startswith('{"messages"')
    ]
    assert lines
    for line in lines:
        messages = json.loads(line)["messages"]
        assert isinstance(messages, list)
        assert all(set(message) == {"role", "content"} for message in messages)


def test_the_pre_commit_hook_validates_configs_named_like_ftconfig() -> None:
    from ruamel.yaml import YAML

    hooks = YAML(typ="safe", pure=True).load(
        (REPO_ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    )
    assert [hook["id"] for hook in hooks] == ["ftschema-validate"]
    hook = hooks[0]
    assert hook["entry"] == "ftschema validate"
    assert hook["language"] == "python"
    files = re.compile(hook["files"])
    assert files.search("ftconfig.yaml") and files.search("configs/finetuning-llama.yml")
    assert not files.search("generated/ftconfig.schema.json")
    assert not files.search(".pre-commit-config.yaml")


def test_generating_docs_imports_no_training_libraries() -> None:
    code = (
        "import sys\n"
        "for name in ('torch', 'transformers', 'peft', 'trl', 'bitsandbytes', 'mlflow'):\n"
        "    sys.modules[name] = None\n"
        "from ftconfig.tools._gen_docs import render_docs\n"
        "render_docs()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_guide_minimal_config_logs_its_loss_and_evaluates_its_validation_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The plan of the guide's first config has no warning: its run logs a loss and uses its validation data."""
    from ftconfig.runtime.training._plan import build_plan
    from ftconfig.runtime.training._run import RunOptions, prepare_run

    monkeypatch.chdir(REPO_ROOT)
    config = load_config(parse_document(_guide_configs()[0], name="guide.md (yaml block 1)"))
    plan = build_plan(prepare_run(config, RunOptions(), world_size=1))
    assert plan["validation_examples"] > 0
    assert plan["warnings"] == []


def test_the_guide_names_every_ftrun_option() -> None:
    from ftconfig._ftrun_cli import cli as ftrun

    guide = GUIDE.read_text(encoding="utf-8")
    options = [option for param in ftrun.params for option in param.opts if option.startswith("--")]
    missing = [
        option
        for option in options
        if not re.search(rf"(?<![\w-]){option}(?![\w-])", guide) and option not in ("--help", "--version")
    ]
    assert not missing, f"docs/guide.md does not mention {missing}"


def test_the_reference_lists_sections_in_the_order_a_config_reads(doc: str) -> None:
    """Top-level properties in their order, each section followed by its own types (not by class name)."""
    headings = re.findall(r"^## (\S+)", doc, re.MULTILINE)
    order = [
        "ChatTrainValidConfig",  # data_conf, then its own types
        "TrainingDataInput",
        "DatasetDefinition",
        "ValidationDataInput",
        "SilogenTrainingArguments",  # training_args
        "BatchsizeConfig",
        "PeftConfig",  # peft_conf, then its variants
        "LoraPeftConfig",
        "RunConfig",
        "ModelArguments",
        "SFTArguments",
    ]
    positions = [headings.index(name) for name in order]
    assert positions == sorted(positions), list(zip(order, positions, strict=True))
    sections = [heading for heading in headings if heading != "Top-level"]  # one top-level table per method
    assert headings[0] == "Top-level" and sections[0] == "ChatTrainValidConfig"


def test_every_definition_description_appears_whole_in_the_reference(doc: str) -> None:
    for name, schema in _documented_objects():
        description = str(schema.get("description", "")).strip()
        assert description in doc, f"{name}: description cut or missing"


def test_the_guide_pre_commit_snippet_names_no_release_that_does_not_exist() -> None:
    """ftconfig has published no release tags; a `rev: vX.Y.Z` in the snippet would fail for everyone."""
    tags = subprocess.run(
        ["git", "tag"], capture_output=True, text=True, cwd=REPO_ROOT, check=False
    ).stdout.split()
    for rev in re.findall(r"^\s*rev:\s*(\S+)", GUIDE.read_text(encoding="utf-8"), re.MULTILINE):
        assert rev == "main" or rev in tags, rev


def test_site_specific_seed_defaults_are_explained() -> None:
    """The seed's defaults stay, but a description never just says 'normally this should be ...'."""
    model = schema_documents()["run.schema.json"]["$defs"]["RunConfig"]["properties"]["model"]
    assert model["default"] == "/local_resources/basemodel"
    assert "anywhere else, set your own folder or Hub ID" in model["description"]
    text = json.dumps(schema_documents())
    assert "Normally" not in text


def test_mlflow_local_runs_folder_is_ignored_by_git() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "mlruns/0/meta.yaml"], cwd=REPO_ROOT, check=False
    ).returncode
    assert ignored == 0
