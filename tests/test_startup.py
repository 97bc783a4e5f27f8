"""`ftrun --dry-run` stays near the import floor: no peft, bitsandbytes or torch.compile machinery is imported."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# Importing either costs seconds: peft imports bitsandbytes, whose import compiles kernels with torch.compile
# (torch._inductor.compile_fx). transformers' own modelling code imports a few light torch._inductor modules
# (config, utils) through torch._dynamo; those are not what this guards.
BLOCKED = ("bitsandbytes", "torch._inductor.compile_fx")
NOT_IMPORTED = ("peft", *BLOCKED)

# The program as `python -m ftconfig` runs it (a process that ends with the command), with bitsandbytes and
# torch's compiler blocked: importing either fails loudly.
_SCRIPT = """
import runpy, sys
for name in {blocked!r}:
    sys.modules[name] = None
sys.argv = ["ftrun", *{args!r}]
runpy.run_module("ftconfig", run_name="__main__", alter_sys=True)
"""


def _dry_run(tmp_path: Path, *sets: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run the dry run; return the process and the modules it imported (from `python -X importtime`)."""
    args = [str(EXAMPLES / "quickstart.yaml"), "--dry-run", "--json"]
    args += ["--set", f"training_args.output_dir={tmp_path / 'out'}"]
    for change in sets:
        args += ["--set", change]
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _SCRIPT.format(blocked=BLOCKED, args=args)],
        capture_output=True,
        text=True,
        check=False,
        cwd=EXAMPLES.parent,
        timeout=600,
    )
    imported = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", result.stderr, re.MULTILINE))
    return result, imported


def _messages(result: subprocess.CompletedProcess[str]) -> str:
    return "\n".join(line for line in result.stderr.splitlines() if not line.startswith("import time:"))


@pytest.mark.slow
def test_dry_run_plans_the_quickstart_without_peft_bitsandbytes_or_inductor_compile(tmp_path: Path) -> None:
    result, imported = _dry_run(tmp_path)
    assert result.returncode == 0, _messages(result)[-3000:]
    # trainer_utils is the module that imports peft when it can: it was imported, without peft.
    assert "transformers.trainer_utils" in imported and "datasets" in imported
    assert not {name for name in imported if name.split(".")[0] == "peft"}
    assert not imported & set(NOT_IMPORTED)
    assert '"peft_type": "LORA"' in result.stdout
    assert '"train_examples": 400' in result.stdout


@pytest.mark.slow
def test_dry_run_still_reports_a_peft_kwargs_typo_without_importing_peft(tmp_path: Path) -> None:
    result, imported = _dry_run(tmp_path, "peft_conf.peft_kwargs.lora_alpah=16")
    messages = _messages(result)
    assert result.returncode == 2, messages[-3000:]
    assert "$.peft_conf.peft_kwargs.lora_alpah" in messages
    assert "Did you mean 'lora_alpha'" in messages
    assert not imported & set(NOT_IMPORTED)
