"""A failure that is not the user's mistake is reported as a bug: traceback, one "please report" line, exit 1.

A real bug cannot be produced on demand, so these tests make one function of ours raise (monkeypatch) and check
what the console entry points do with it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ftconfig.runtime.config._errors import ConfigError
from ftconfig.runtime.data._tokenizer import tokenizer_load_error
from tests.helpers import EXAMPLES, make_config

BUG_LINE = "this is a bug in ftconfig, please report it with the traceback"


def run_main(main: Callable[[], None], argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys) -> tuple:
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return exited.value.code, captured.out + captured.err


def our_bug(*args: object, **kwargs: object) -> None:
    raise AttributeError("'NoneType' object has no attribute 'items'")


def test_ftschema_reports_a_bug_with_the_traceback_and_exit_1(monkeypatch, capsys) -> None:
    from ftconfig._ftschema_cli import main
    from ftconfig.runtime.config import _load

    monkeypatch.setattr(_load, "load_any_config_file", our_bug)
    code, output = run_main(
        main, ["ftschema", "validate", str(EXAMPLES / "minimal.yaml")], monkeypatch, capsys
    )
    assert code == 1
    assert "Traceback" in output and "AttributeError" in output
    assert output.rstrip().endswith(f"ftschema: {BUG_LINE}")


def test_ftrun_reports_a_bug_with_the_traceback_and_exit_1(monkeypatch, capsys, tmp_path: Path) -> None:
    from ftconfig._ftrun_cli import main
    from ftconfig.runtime.training import _run

    monkeypatch.setattr(_run, "prepare_run", our_bug)
    code, output = run_main(main, ["ftrun", str(EXAMPLES / "minimal.yaml"), "--dry-run"], monkeypatch, capsys)
    assert code == 1
    assert "Traceback" in output and "AttributeError" in output
    assert output.rstrip().endswith(f"ftrun: {BUG_LINE}")


@pytest.mark.parametrize(
    "raised",
    [OSError("not found"), ValueError("bad json"), KeyError("added_tokens"), Exception("untagged enum")],
    ids=["OSError", "ValueError", "KeyError", "tokenizers-Exception"],
)
def test_the_tokenizer_seam_maps_what_the_libraries_raise_for_bad_files(raised: Exception) -> None:
    config = make_config(tokenizer=EXAMPLES / "tiny-llama")
    expected = pytest.raises(ConfigError, match=r"\$\.run_conf\.tokenizer: cannot load a tokenizer")
    with expected, tokenizer_load_error(config.run_conf):
        raise raised


@pytest.mark.parametrize("raised", [TypeError("unexpected keyword"), AttributeError("no attribute")])
def test_the_tokenizer_seam_lets_other_errors_surface_as_bugs(raised: Exception) -> None:
    config = make_config(tokenizer=EXAMPLES / "tiny-llama")
    with pytest.raises(type(raised)), tokenizer_load_error(config.run_conf):
        raise raised
