"""What the test files share: paths, base documents, config makers and writers, error unpacking, chat samples,
chat data files, real `ftrun` processes and entry points, MLflow run lookups.

Light on purpose (no torch at import time): schema-side tests import it too. Test files import shared things from
here (fixtures from tests/conftest.py), never from one another.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from ftconfig.generated.config import FinetuningConfig
    from ftconfig.runtime.config._errors import ConfigError

__all__ = [
    "DATA_DIR",
    "DELETE",
    "EXAMPLES",
    "FIRST_CHECKPOINT",
    "MAX_STEPS",
    "REPO_ROOT",
    "RUN_TIMEOUT_S",
    "SAVE_STEPS",
    "SYSTEM_USER_ASSISTANT",
    "TINY_MODEL",
    "TWO_EXCHANGES",
    "base_document",
    "concatenation",
    "conversation",
    "data_config",
    "fault_document",
    "load_for_inference",
    "make_config",
    "mlflow_runs",
    "only_error",
    "run_command",
    "run_entry_point",
    "run_ftrun",
    "signal_after_first_checkpoint",
    "start_ftrun",
    "tiny_run_document",
    "tree_snapshot",
    "with_change",
    "with_changes",
    "write_config",
    "write_jsonl",
    "write_source",
    "write_yaml_12",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples"
TINY_MODEL = EXAMPLES / "tiny-llama"
DATA_DIR = EXAMPLES / "data"

DELETE = object()  # a change value that removes the key

SYSTEM_USER_ASSISTANT = [
    {"role": "system", "content": "S"},
    {"role": "user", "content": "U"},
    {"role": "assistant", "content": "A"},
]
TWO_EXCHANGES = [
    {"role": "user", "content": "U1"},
    {"role": "assistant", "content": "A1"},
    {"role": "user", "content": "U2"},
    {"role": "assistant", "content": "A2"},
]


def base_document() -> dict[str, Any]:
    """examples/minimal.yaml as a fresh document (LoRA on the tiny model, AUTO_SPLIT validation)."""
    from ftconfig.runtime.config._load import read_document

    return read_document(EXAMPLES / "minimal.yaml")


def with_changes(document: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of `document` with each dotted path set to its value (a numeric part indexes a list; DELETE
    removes the key)."""
    result = copy.deepcopy(document)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node: Any = result
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return result


def with_change(path: str, value: Any) -> dict[str, Any]:
    """The base document with one dotted path changed (or removed with DELETE)."""
    return with_changes(base_document(), {path: value})


def make_config(
    model: Path | str = TINY_MODEL,
    *,
    tokenizer: Path | str | None = None,
    model_args: dict[str, Any] | None = None,
    data_conf: dict[str, Any] | None = None,
    **sections: Any,
) -> FinetuningConfig:
    """The base document pointed at `model` (and `tokenizer`), loaded into structs.

    `data_conf` fields are merged into the base data section; every other section given replaces the base one,
    and a section given as None is removed.
    """
    from ftconfig.runtime.config._load import load_config

    document = base_document()
    document["run_conf"]["model"] = str(model)
    if tokenizer is not None:
        document["run_conf"]["tokenizer"] = str(tokenizer)
    if model_args is not None:
        document["run_conf"]["model_args"] = model_args
    document["data_conf"].update(data_conf or {})
    for name, section in sections.items():
        if section is None:
            document.pop(name, None)
        else:
            document[name] = section
    return load_config(document)


def only_error(excinfo: pytest.ExceptionInfo[ConfigError]) -> tuple[str, str]:
    """The location and rendered message of the one error item a ConfigError carries."""
    (item,) = excinfo.value.items
    return item.location, item.render()


def tiny_run_document(output_dir: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A small, fast run config for the shipped tiny model (see tools/build_tiny_model.tiny_run_document)."""
    from ftconfig.tools.build_tiny_model import tiny_run_document as build

    return build(output_dir, EXAMPLES, **sections)


def load_for_inference(base_path: Path | str, adapter_path: Path) -> Any:
    """Run the guide's loading snippet ("New tokens and serving") with its two paths replaced, so the documented
    lines are the tested ones."""
    section = (
        (REPO_ROOT / "docs" / "guide.md")
        .read_text(encoding="utf-8")
        .split("### New tokens and serving", 1)[1]
    )
    match = re.search(r"^```python\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert match is not None, "the guide lost its loading snippet"
    code = match.group(1)
    for placeholder, path in (
        ("outputs/run/checkpoint-final", adapter_path),
        ("/local_resources/basemodel", base_path),
    ):
        assert f'"{placeholder}"' in code
        code = code.replace(f'"{placeholder}"', repr(str(path)))
    if not (
        Path(adapter_path) / "generation_config.json"
    ).is_file():  # ftrun writes one; a hand-saved adapter not
        from transformers import GenerationConfig

        GenerationConfig.from_pretrained(base_path).save_pretrained(adapter_path)
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    return namespace["model"]


# --- config files and in-process entry points ----------------------------------------------------------------


def write_config(path: Path, document: dict[str, Any]) -> Path:
    """Write `document` as YAML to `path`; returns the path."""
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def write_yaml_12(path: Path, document: dict[str, Any]) -> None:
    """Write YAML 1.2 (so a string such as '1e-4' stays a string, as ftconfig reads it)."""
    from ruamel.yaml import YAML

    writer = YAML(typ="safe", pure=True)
    writer.version = (1, 2)
    writer.default_flow_style = False
    with path.open("w", encoding="utf-8") as stream:
        writer.dump(document, stream)


def tree_snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` with its bytes (None for a folder or a FIFO): equal snapshots mean nothing was written."""
    return {
        str(path.relative_to(root)): path.read_bytes() if path.is_file() else None
        for path in sorted(root.rglob("*"))
    }


def run_entry_point(
    main: Callable[[], None],
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int | str | None, str]:
    """Call a console entry point in-process; (its exit code, stdout + stderr). An escaping exception fails."""
    monkeypatch.setattr(sys, "argv", argv)
    capsys.readouterr()
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# --- chat data files --------------------------------------------------------------------------------------------


def conversation(label: str, words: int = 1) -> list[dict[str, str]]:
    """A conversation whose tokens identify it (`label`), `words` long on the assistant side."""
    return [
        {"role": "user", "content": f"Say {label}."},
        {"role": "assistant", "content": " ".join([label] * words)},
    ]


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_source(directory: Path, prefix: str, count: int, words: int = 1) -> tuple[Path, dict[str, Any]]:
    """A JSONL file of `count` conversations labelled prefix0, prefix1, ...; returns it and the rows."""
    rows = {f"{prefix}{i}": conversation(f"{prefix}{i}", words) for i in range(count)}
    path = write_jsonl(directory / f"{prefix}.jsonl", [{"messages": messages} for messages in rows.values()])
    return path, rows


def data_config(
    model_dir: Path,
    training: dict[str, Any],
    validation: dict[str, Any] | None = None,
    *,
    max_seq_length: int = 512,
    completions_only: bool = False,
) -> Any:
    """The base config with these training and validation data sections and sequence settings."""
    return make_config(
        model_dir,
        data_conf={"training_data": training, "validation_data": validation or {"type": "NONE"}},
        sft_args={"max_seq_length": max_seq_length, "train_on_completions_only": completions_only},
    )


def concatenation(*paths: Path) -> dict[str, Any]:
    return {"type": "CONCATENATION", "datasets": [{"path": str(p)} for p in paths]}


# --- real ftrun processes -----------------------------------------------------------------------------------------

MAX_STEPS = 12
SAVE_STEPS = 4
FIRST_CHECKPOINT = f"checkpoint-{SAVE_STEPS}"
RUN_TIMEOUT_S = 300


def fault_document(output_dir: Path) -> dict[str, Any]:
    """A deterministic CPU run that checkpoints three times and resumes automatically."""
    return tiny_run_document(
        output_dir,
        peft_conf={"peft_type": "NO_PEFT"},
        data_conf={"chat_template_name": "mistral-with-system"},  # adds no tokens: no new base model
        training_args={
            "max_steps": MAX_STEPS,
            "save_strategy": "steps",
            "save_steps": SAVE_STEPS,
            "logging_steps": 1,
            "learning_rate": 1e-3,
            "seed": 11,
            "full_determinism": True,
            "dataloader_num_workers": 0,
        },
        run_conf={"model": str(EXAMPLES / "tiny-llama"), "resume_from_checkpoint": "auto"},
    )


def _default_sigint() -> None:
    # A background job of a non-interactive shell (as in CI) inherits SIGINT ignored; Python then never raises
    # KeyboardInterrupt. Give the child the default disposition a terminal user's ftrun has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_ftrun(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ftconfig", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def run_ftrun(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    process = start_ftrun(config, *args)
    stdout, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def signal_after_first_checkpoint(
    process: subprocess.Popen[str], output_dir: Path, signum: int
) -> tuple[int, str, str]:
    """Send `signum` as soon as the first checkpoint's trainer_state.json (written last) is complete."""
    state = output_dir / FIRST_CHECKPOINT / "trainer_state.json"
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        assert process.poll() is None, f"ftrun ended before {FIRST_CHECKPOINT}:\n{process.communicate()[1]}"
        assert time.monotonic() < deadline, f"no {FIRST_CHECKPOINT} after {RUN_TIMEOUT_S} s"
        try:
            json.loads(state.read_text(encoding="utf-8"))
            break
        except (OSError, ValueError):
            time.sleep(0.005)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
    return process.returncode, stdout, stderr


def run_command(command: list[str], cache_dir: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """Run `command` with MLflow integration enabled (no inherited MLFLOW_* settings) and its own data cache."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    env.pop("DISABLE_MLFLOW_INTEGRATION", None)
    env["FTCONFIG_CACHE_DIR"] = str(cache_dir)
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)


def mlflow_runs(uri: str, experiment: str) -> list[Any]:
    """The runs of `experiment` on the MLflow server at `uri` (none when the experiment does not exist)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []
