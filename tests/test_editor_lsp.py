"""The editor experience: yaml-language-server driven over LSP against the bundled schema.

Starts the real ``yaml-language-server --stdio`` (installed with
``npm install --prefix .lsp yaml-language-server``) once per module and checks completion,
hover and diagnostics on real config files that name the bundle with a
``# yaml-language-server: $schema=...`` modeline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

try:  # tests/ as a package, or as a rootdir-inserted folder (no __init__.py)
    from tests.lsp_client import LspClient
except ImportError:
    from lsp_client import LspClient  # type: ignore[no-redef]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "generated" / "ftconfig.schema.json"
MINIMAL = ROOT / "examples" / "minimal.yaml"
SERVER_BIN = ROOT / ".lsp" / "node_modules" / ".bin" / "yaml-language-server"
INSTALL_HINT = "npm install --prefix .lsp yaml-language-server"
CURSOR = "<CURSOR>"

TOP_LEVEL_KEYS = {
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
}


def _server_command() -> list[str]:
    """node + the server script, or skip (fail under CI) when either is missing."""
    node = shutil.which("node")
    missing = []
    if node is None:
        missing.append("node is not on PATH")
    if not SERVER_BIN.exists():
        missing.append(f"{SERVER_BIN} is missing (run `{INSTALL_HINT}` in {ROOT})")
    if missing:
        reason = "editor LSP test needs yaml-language-server: " + "; ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(f"{reason} -- CI is set, so this is a failure, not a skip")
        pytest.skip(reason)
    assert node is not None
    return [node, str(SERVER_BIN.resolve()), "--stdio"]


@pytest.fixture(scope="module")
def lsp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LspClient]:
    command = _server_command()
    workspace = tmp_path_factory.mktemp("lsp-workspace")
    client = LspClient(command, cwd=workspace, timeout=15.0)
    try:
        info = client.initialize(workspace)
        assert info["capabilities"].get("completionProvider"), info
        assert info["capabilities"].get("hoverProvider"), info
        yield client
    finally:
        client.close()
    assert client.returncode is not None, "yaml-language-server did not exit"


@pytest.fixture(scope="module")
def bundle() -> dict[str, Any]:
    return json.loads(SCHEMA.read_text(encoding="utf-8"))


def modeline(ref: str | None = None) -> str:
    """The schema modeline; the default reference is the bundle's absolute file path."""
    return f"# yaml-language-server: $schema={ref if ref is not None else SCHEMA}\n"


def minimal_body() -> str:
    """examples/minimal.yaml without its own (relative) modeline."""
    lines = MINIMAL.read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines[0].startswith("# yaml-language-server: $schema="), lines[0]
    return "".join(lines[1:])


class Doc:
    """A config written to disk and opened in the server; ``CURSOR`` marks one position."""

    def __init__(self, client: LspClient, path: Path, text: str) -> None:
        self.cursor: tuple[int, int] | None = None
        for number, line in enumerate(text.split("\n")):
            if CURSOR in line:
                self.cursor = (number, line.index(CURSOR))
        self.text = text.replace(CURSOR, "")
        self.lines = self.text.split("\n")
        path.write_text(self.text, encoding="utf-8")
        self.client = client
        self.uri = client.did_open(path, self.text)

    def line_of(self, prefix: str) -> int:
        matches = [n for n, line in enumerate(self.lines) if line.startswith(prefix)]
        assert len(matches) == 1, f"{prefix!r} should start exactly one line: {matches}"
        return matches[0]

    def completion_labels(self) -> set[str]:
        """Labels offered at the cursor; fails if the server hit an error while completing."""
        assert self.cursor is not None, "document has no cursor marker"
        before = self.client.notification_count
        labels = {item["label"] for item in self.client.completion(self.uri, *self.cursor)}
        # the server swallows exceptions in completion and answers with a partial list
        errors = self.client.server_errors(since=before)
        assert not errors, (
            f"completion failed inside the server (offered only {sorted(labels)}):\n" + "\n".join(errors)
        )
        return labels

    def hover_at_key(self, prefix: str) -> str:
        """Hover text over the key that starts the line beginning with ``prefix``."""
        line = self.line_of(prefix)
        column = len(prefix) - len(prefix.lstrip()) + 1
        return unescape_markdown(self.client.hover(self.uri, line, column))

    def diagnostics(self) -> list[dict[str, Any]]:
        return self.client.wait_for_diagnostics(self.uri, settle=0.3)


def unescape_markdown(text: str) -> str:
    return re.sub(r"\\([\\`*_{}\[\]()#+\-.!|<>~])", r"\1", text)


def diagnostic_lines(diagnostics: list[dict[str, Any]]) -> set[int]:
    return {d["range"]["start"]["line"] for d in diagnostics}


def describe(diagnostics: list[dict[str, Any]]) -> str:
    return (
        "\n".join(f"  line {d['range']['start']['line']}: {d['message']}" for d in diagnostics) or "  (none)"
    )


# ---------------------------------------------------------------------------------- completion


# yaml-language-server 2.0.0 crashed in completion on `type: [string, null]` + `default: null`; the bundle lists
# "null" first for those (tools/_bundle.py), and these two tests keep that workaround honest.
def test_completion_top_level_offers_every_section(lsp: LspClient, tmp_path: Path) -> None:
    doc = Doc(lsp, tmp_path / "new.yaml", modeline() + "# a fresh config\n" + CURSOR + "\n")
    labels = doc.completion_labels()
    assert labels >= TOP_LEVEL_KEYS, f"missing: {sorted(TOP_LEVEL_KEYS - labels)}; offered: {sorted(labels)}"


def test_completion_top_level_in_valid_config_offers_the_missing_sections(
    lsp: LspClient, tmp_path: Path
) -> None:
    # An empty line in a valid config: the server offers the sections not yet written (and
    # only those; keys already present are left out, as in any editor).
    body = minimal_body()
    doc = Doc(lsp, tmp_path / "cfg.yaml", modeline() + body + CURSOR + "\n")
    present = {line.split(":")[0] for line in body.splitlines() if line[:1].isalpha()}
    labels = doc.completion_labels()
    assert present, body
    assert labels >= TOP_LEVEL_KEYS - present, f"offered: {sorted(labels)}"
    assert not labels & present, f"already present but offered again: {sorted(labels & present)}"


def test_completion_in_lora_peft_conf_offers_lora_keys(lsp: LspClient, tmp_path: Path) -> None:
    doc = Doc(lsp, tmp_path / "cfg.yaml", modeline() + f"peft_conf:\n  peft_type: LORA\n  {CURSOR}\n")
    labels = doc.completion_labels()
    assert {"peft_kwargs", "task_type"} <= labels, f"offered: {sorted(labels)}"
    # the discriminator picked the LORA branch: keys of other branches are not offered
    assert "name_or_path" not in labels, f"offered: {sorted(labels)}"


def test_completion_in_training_args_offers_learning_rate(lsp: LspClient, tmp_path: Path) -> None:
    doc = Doc(lsp, tmp_path / "cfg.yaml", modeline() + f"training_args:\n  {CURSOR}\n")
    labels = doc.completion_labels()
    assert "learning_rate" in labels, f"offered {len(labels)}: {sorted(labels)[:20]}..."


def test_completion_in_dpo_training_args_offers_the_dpo_fields(lsp: LspClient, tmp_path: Path) -> None:
    doc = Doc(lsp, tmp_path / "dpo.yaml", modeline() + f"method: dpo\ntraining_args:\n  {CURSOR}\n")
    labels = doc.completion_labels()
    assert {"beta", "loss_type", "max_length", "learning_rate"} <= labels, (
        f"offered: {sorted(labels)[:30]}..."
    )


def test_completion_top_level_of_a_dpo_config_leaves_out_sft_args(lsp: LspClient, tmp_path: Path) -> None:
    doc = Doc(lsp, tmp_path / "dpo.yaml", modeline() + f"method: dpo\n{CURSOR}\n")
    labels = doc.completion_labels()
    assert {"data_conf", "training_args", "peft_conf"} <= labels, f"offered: {sorted(labels)}"
    assert "sft_args" not in labels, f"offered: {sorted(labels)}"


def test_completion_in_sft_training_args_leaves_out_the_dpo_fields(lsp: LspClient, tmp_path: Path) -> None:
    doc = Doc(lsp, tmp_path / "cfg.yaml", modeline() + f"training_args:\n  {CURSOR}\n")
    labels = doc.completion_labels()
    assert "learning_rate" in labels and "beta" not in labels, f"offered: {sorted(labels)[:30]}..."


# ---------------------------------------------------------------------------------- hover


@pytest.mark.parametrize(
    ("key_line", "definition", "prop"),
    [
        ("  max_seq_length:", "SFTArguments", "max_seq_length"),
        ("  learning_rate:", "SilogenTrainingArguments", "learning_rate"),
    ],
)
def test_hover_shows_schema_description(
    lsp: LspClient, tmp_path: Path, bundle: dict[str, Any], key_line: str, definition: str, prop: str
) -> None:
    description = bundle["$defs"][definition]["properties"][prop]["description"]
    doc = Doc(lsp, tmp_path / "cfg.yaml", modeline() + minimal_body())
    hover = doc.hover_at_key(key_line)
    assert description in hover, f"hover over {prop}:\n{hover}"


@pytest.mark.parametrize(
    ("key_line", "title"),
    [
        ("training_args:", "training_args"),
        ("  learning_rate:", "training_args"),
        ("data_conf:", "data_conf"),
        ("peft_conf:", "peft_conf (peft_type: LORA)"),
        ("  max_seq_length:", "sft_args"),
    ],
)
def test_hover_titles_say_where_in_the_config_not_the_internal_class(
    lsp: LspClient, tmp_path: Path, bundle: dict[str, Any], key_line: str, title: str
) -> None:
    doc = Doc(lsp, tmp_path / "cfg.yaml", modeline() + minimal_body())
    hover = doc.hover_at_key(key_line)
    assert f"#### {title}\n" in hover, hover
    assert not any(name in hover.split("\n", 1)[0] for name in bundle["$defs"]), hover


# ---------------------------------------------------------------------------------- diagnostics


def test_unknown_training_arg_is_flagged_on_its_line(lsp: LspClient, tmp_path: Path) -> None:
    body = minimal_body()
    assert "  learning_rate: " in body
    doc = Doc(lsp, tmp_path / "cfg.yaml", modeline() + body.replace("  learning_rate: ", "  learnin_rate: "))
    line = doc.line_of("  learnin_rate:")
    diagnostics = doc.diagnostics()
    assert diagnostic_lines(diagnostics) == {line}, f"expected one at line {line}:\n{describe(diagnostics)}"
    assert any("learnin_rate" in d["message"] for d in diagnostics), describe(diagnostics)


def test_wrong_enum_value_is_flagged_on_its_line(lsp: LspClient, tmp_path: Path) -> None:
    body = minimal_body()
    assert body.startswith("data_conf:\n")
    text = body.replace("data_conf:\n", "data_conf:\n  chat_template_name: chat-mll\n", 1)
    doc = Doc(lsp, tmp_path / "cfg.yaml", modeline() + text)
    line = doc.line_of("  chat_template_name:")
    diagnostics = doc.diagnostics()
    assert diagnostic_lines(diagnostics) == {line}, f"expected one at line {line}:\n{describe(diagnostics)}"
    assert any("chat-ml" in d["message"] for d in diagnostics), describe(diagnostics)  # lists valid values


@pytest.mark.parametrize("ref_form", ["absolute-path", "file-uri"])
def test_valid_config_has_no_diagnostics(
    lsp: LspClient, tmp_path: Path, bundle: dict[str, Any], ref_form: str
) -> None:
    ref = str(SCHEMA) if ref_form == "absolute-path" else SCHEMA.as_uri()
    doc = Doc(lsp, tmp_path / "cfg.yaml", modeline(ref) + minimal_body())
    diagnostics = doc.diagnostics()
    assert diagnostics == [], describe(diagnostics)
    # ... and not because no schema was applied: the schema's descriptions reach this document
    description = bundle["$defs"]["SilogenTrainingArguments"]["properties"]["learning_rate"]["description"]
    assert description in doc.hover_at_key("  learning_rate:")


def test_shipped_example_with_relative_modeline_has_no_diagnostics(
    lsp: LspClient, bundle: dict[str, Any]
) -> None:
    # examples/minimal.yaml as shipped, with its modeline relative to the file
    uri = lsp.did_open(MINIMAL)
    diagnostics = lsp.wait_for_diagnostics(uri, settle=0.3)
    assert diagnostics == [], describe(diagnostics)
    lines = MINIMAL.read_text(encoding="utf-8").split("\n")
    line = next(n for n, text in enumerate(lines) if text.startswith("  max_seq_length:"))
    description = bundle["$defs"]["SFTArguments"]["properties"]["max_seq_length"]["description"]
    assert description in unescape_markdown(lsp.hover(uri, line, 3))


# ---------------------------------------------------------------------------------- generation configs

GENERATION_SCHEMA = ROOT / "generated" / "ftconfig-generation.schema.json"
GENERATE_EXAMPLE = ROOT / "examples" / "generate.yaml"


def generation_modeline() -> str:
    return f"# yaml-language-server: $schema={GENERATION_SCHEMA}\n"


def test_generation_config_completion_offers_its_sections_and_model_keys(
    lsp: LspClient, tmp_path: Path
) -> None:
    doc = Doc(lsp, tmp_path / "gen.yaml", generation_modeline() + CURSOR + "\n")
    labels = doc.completion_labels()
    assert {"model_conf", "prompt_conf", "hf_gen_params", "quant_conf"} <= labels, sorted(labels)
    assert "data_conf" not in labels
    doc = Doc(lsp, tmp_path / "gen2.yaml", generation_modeline() + f"model_conf:\n  model: m\n  {CURSOR}\n")
    assert {"adapter", "tokenizer", "model_args"} <= doc.completion_labels()


def test_generation_config_prompt_source_is_chosen_by_type(lsp: LspClient, tmp_path: Path) -> None:
    text = generation_modeline() + f"model_conf:\n  model: m\nprompt_conf:\n  type: open-input\n  {CURSOR}\n"
    labels = Doc(lsp, tmp_path / "gen.yaml", text).completion_labels()
    assert {"input", "num_samples"} <= labels and "data" not in labels, sorted(labels)


def test_shipped_generation_example_has_no_diagnostics_and_a_typo_is_flagged(
    lsp: LspClient, tmp_path: Path
) -> None:
    uri = lsp.did_open(GENERATE_EXAMPLE)
    diagnostics = lsp.wait_for_diagnostics(uri, settle=0.3)
    assert diagnostics == [], describe(diagnostics)
    body = "".join(GENERATE_EXAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[1:])
    doc = Doc(
        lsp,
        tmp_path / "gen.yaml",
        generation_modeline() + body.replace("  type: eval-data", "  type: eval-dat"),
    )
    line = doc.line_of("  type:")
    assert line in diagnostic_lines(doc.diagnostics())
