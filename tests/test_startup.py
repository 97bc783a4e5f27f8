"""`ftrun --dry-run` stays near the import floor: no peft, bitsandbytes or torch.compile machinery is imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# Importing either costs seconds: peft imports bitsandbytes, whose import compiles kernels with torch.compile
# (torch._inductor.compile_fx). transformers' own modelling code imports a few light torch._inductor modules
# (config, utils) through torch._dynamo; those are not what this guards.
BLOCKED = ("peft", "bitsandbytes", "torch._inductor.compile_fx")

_SCRIPT = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # an import of any of them now fails loudly
from ftconfig._ftrun_cli import main
sys.argv = ["ftrun", *{args!r}]
try:
    main()
except SystemExit as exit:
    code = exit.code
else:
    code = 0
imported = sorted(name for name in {blocked!r} if sys.modules.get(name) is not None)
print("EXIT", code, "IMPORTED", imported, file=sys.stderr)
"""


def _dry_run(tmp_path: Path, *sets: str) -> subprocess.CompletedProcess[str]:
    args = [str(EXAMPLES / "quickstart.yaml"), "--dry-run", "--json"]
    args += ["--set", f"training_args.output_dir={tmp_path / 'out'}"]
    for change in sets:
        args += ["--set", change]
    script = _SCRIPT.format(blocked=BLOCKED, args=args)
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=EXAMPLES.parent,
        timeout=600,
    )


@pytest.mark.slow
def test_dry_run_plans_the_quickstart_without_peft_bitsandbytes_or_inductor_compile(tmp_path: Path) -> None:
    result = _dry_run(tmp_path)
    assert "EXIT 0 IMPORTED []" in result.stderr, result.stderr[-3000:]
    assert '"peft_type": "LORA"' in result.stdout
    assert '"train_examples": 400' in result.stdout


@pytest.mark.slow
def test_dry_run_still_reports_a_peft_kwargs_typo_without_importing_peft(tmp_path: Path) -> None:
    result = _dry_run(tmp_path, "peft_conf.peft_kwargs.lora_alpah=16")
    assert "EXIT 2 IMPORTED []" in result.stderr, result.stderr[-3000:]
    assert "$.peft_conf.peft_kwargs.lora_alpah" in result.stderr
    assert "Did you mean 'lora_alpha'" in result.stderr
