"""`ftschema`: validate configs and keep everything generated from the schema fresh. Never imports torch."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path

import click

from ftconfig.runtime.config._errors import UserError, report_bug

__all__ = ["cli", "main"]


def _echo_error(error: UserError) -> None:
    click.echo(str(error), err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ftconfig")
def cli() -> None:
    """Schema tooling for ftconfig finetuning configs."""


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--quiet", "-q", is_flag=True, help="Print nothing for valid files.")
def validate(files: tuple[Path, ...], quiet: bool) -> None:
    """Validate config FILES (YAML 1.2 or JSON); exit 2 if any is invalid.

    A file with a top-level `model_conf` is checked as a generation config (ftmodel generate), any other as a
    finetuning config (ftrun).
    """
    from ftconfig.runtime.config._load import load_any_config_file

    exit_code = 0
    for path in files:
        try:
            load_any_config_file(path)
        except UserError as error:
            _echo_error(error)
            exit_code |= error.exit_code
        else:
            if not quiet:
                click.echo(f"{path}: valid")
    sys.exit(exit_code)


def _in_checkout() -> bool:
    from ftconfig.tools._paths import is_source_checkout

    return is_source_checkout()


# Commands that regenerate or check the repository's own files. In an installed ftconfig they would write into
# site-packages (or compare the package with itself), so they are hidden there and refuse to run.
_IN_CHECKOUT = _in_checkout()


def _developer_command(name: str) -> Callable[[Callable[..., None]], click.Command]:
    """A command for ftconfig's developers: shown and usable only in a source checkout."""

    def decorate(function: Callable[..., None]) -> click.Command:
        @functools.wraps(function)  # keeps the docstring and the options the decorators below attached
        def guarded(**kwargs: object) -> None:
            if not _in_checkout():
                raise click.UsageError(
                    f"`ftschema {name}` is a developer command: it regenerates or checks files of a source "
                    "checkout of ftconfig, and this ftconfig is installed as a package. Run it in a clone of "
                    "the repository (pip install -e '.[dev]')"
                )
            function(**kwargs)

        return cli.command(name, hidden=not _IN_CHECKOUT)(guarded)

    return decorate


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 if any file would change (2 if one cannot be migrated).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the migrated config here instead of over FILE (one FILE only).",
)
def migrate(files: tuple[Path, ...], check: bool, output: Path | None) -> None:
    """Rewrite config FILES from older and newer dialects to the current schema, in place.

    Keys transformers 5 or TRL 1 renamed or removed (warmup_ratio, evaluation_strategy, rpo_alpha, ...) and
    loading keys of the newer model_args dialect are rewritten; comments, key order and layout are kept. Each
    change is printed with its JSON path. Running it again changes nothing. Exit codes: 0 done (or nothing to
    do), 1 with --check when a file would change, 2 when a key cannot be migrated (that file is left as it was).
    """
    from ftconfig.tools._migrate import migrate_file

    if output is not None and len(files) != 1:
        raise click.BadParameter("--output takes exactly one FILE", param_hint="--output")
    exit_code = 0
    for path in files:
        try:
            result = migrate_file(path, output=output, check=check)
        except UserError as error:
            _echo_error(error)
            exit_code = max(exit_code, error.exit_code)
            continue
        for change in result.changes:
            click.echo(f"{path}: {change.render()}")
        if not result.changes:
            click.echo(f"{path}: nothing to migrate")
        elif check:
            exit_code = max(exit_code, 1)
            click.echo(f"{path}: {len(result.changes)} change(s) needed; run `ftschema migrate {path}`")
        elif result.written is not None:
            click.echo(f"{path}: migrated into {result.written}; next: `ftschema validate {result.written}`")
        if output is not None and not result.changes and result.written is not None:
            click.echo(f"{path}: copied unchanged into {result.written}")
    sys.exit(exit_code)


def _run_generator(name: str, action: Callable[..., bool], check: bool) -> None:
    fresh = action(check=check)
    if check and not fresh:
        click.echo(f"{name}: out of date; run `ftschema {name}` and commit the result", err=True)
        sys.exit(1)
    click.echo(f"{name}: {'up to date' if check else 'written'}")


@_developer_command("gen-code")
@click.option("--check", is_flag=True, help="Fail if generated/config.py is not what the schema gives.")
def gen_code(check: bool) -> None:
    """Generate the msgspec structs (generated/config.py) with datamodel-code-generator."""
    from ftconfig.tools._gen_code import gen_code as action

    _run_generator("gen-code", action, check)


@_developer_command("bundle")
@click.option("--check", is_flag=True, help="Fail if generated/ftconfig.schema.json is stale.")
def bundle(check: bool) -> None:
    """Write the single-file schema for editors (generated/ftconfig.schema.json)."""
    from ftconfig.tools._bundle import write_bundle

    _run_generator("bundle", write_bundle, check)


@_developer_command("gen-docs")
@click.option("--check", is_flag=True, help="Fail if docs/config.md is stale.")
def gen_docs(check: bool) -> None:
    """Write the config reference (docs/config.md) from the schema."""
    from ftconfig.tools._gen_docs import write_docs

    _run_generator("gen-docs", write_docs, check)


@_developer_command("import-training-args")
@click.option(
    "--check", is_flag=True, help="Fail if the schemas differ from the installed transformers and TRL."
)
def import_training_args(check: bool) -> None:
    """Regenerate the training_args schemas from transformers (SFT) and TRL's DPOConfig (DPO)."""
    from ftconfig.tools._import_training_args import import_training_args as action
    from ftconfig.tools._paths import SCHEMA_DIR

    _run_generator("import-training-args", lambda check: action(SCHEMA_DIR, check=check), check)


@_developer_command("check")
def check() -> None:
    """Run every freshness check and validate every config under examples/ and docs/."""
    from ftconfig.tools._check import run_all_checks

    problems = run_all_checks(echo=click.echo)
    if problems:
        click.echo(f"check: {problems} problem{'s' if problems != 1 else ''}", err=True)
        sys.exit(1)
    click.echo("check: all good")


@cli.command()
@click.argument(
    "path", required=False, default="ftconfig.yaml", type=click.Path(path_type=Path, dir_okay=False)
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option(
    "--schema-ref", help="Path or URL of the schema to name in the modeline (default: the installed bundle)."
)
def init(path: Path, force: bool, schema_ref: str | None) -> None:
    """Write a commented starter config (default ftconfig.yaml) that names the schema."""
    from ftconfig.tools._starter import render_starter

    if path.exists() and not force:
        raise click.UsageError(f"{path} already exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_starter(path, schema_ref), encoding="utf-8")
    click.echo(f"wrote {path}; next: edit it, then `ftschema validate {path}`")


def main() -> None:
    """Console entry point: user mistakes exit 2 with a message, never a traceback; anything else is a bug in
    ftconfig (traceback, a "please report" line, exit 1)."""
    try:
        cli.main(standalone_mode=True)
    except UserError as error:
        _echo_error(error)
        sys.exit(error.exit_code)
    except Exception:
        report_bug("ftschema")
