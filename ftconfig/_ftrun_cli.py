"""`ftrun`: train (or plan, with --dry-run) the finetuning run a config describes."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import click

from ftconfig._cli_output import configure_output
from ftconfig.runtime.config._errors import UserError, report_bug

__all__ = ["RunInterrupted", "TrainingStackMissing", "cli", "main"]

# What `pip install 'ftconfig[train]'` adds to the light install (import names).
TRAINING_STACK = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes", "mlflow")
_INSTALL_TRAIN = (
    "install them with: pip install 'ftconfig[train]' (install torch first, matching your accelerator)"
)


class TrainingStackMissing(Exception):
    """ftrun was installed without the training libraries (`pip install ftconfig`, without `[train]`)."""

    exit_code = 1


def _require_training_stack() -> None:
    """Say which training libraries are missing before anything else runs, instead of an import traceback."""
    import importlib.util

    # A name set to None in sys.modules was blocked on purpose by the program running us, not left uninstalled.
    missing = [
        name for name in TRAINING_STACK if name not in sys.modules and importlib.util.find_spec(name) is None
    ]
    if missing:
        raise TrainingStackMissing(
            f"training needs libraries that are not installed (missing: {', '.join(missing)}); {_INSTALL_TRAIN}"
        )


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same clean-up runs (MLflow run KILLED, no checkpoint-final)."""


class RunInterrupted(Exception):
    """A training run stopped by a signal; not a KeyboardInterrupt any more, so click passes it through."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def _install_sigterm_handler() -> None:
    """Turn SIGTERM (kill, docker stop, a scheduler's preemption) into a clean stop of this process.

    Forked children (data preparation workers) inherit the handler, but only the process that installed it
    raises; the others die of SIGTERM as they would have. A second SIGTERM kills at once.
    """
    owner = os.getpid()

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if os.getpid() != owner:
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise _Terminated()

    signal.signal(signal.SIGTERM, handler)


def _runs_as_the_program() -> bool:
    """Whether this process is `ftrun` / `python -m ftconfig` itself (it ends when the command ends), not a
    program that calls `main` and goes on (tests): only such a process may drop libraries for good."""
    program = sys.modules.get("__main__")
    spec = getattr(program, "__spec__", None)
    if spec is not None and spec.name == "ftconfig.__main__":
        return True
    return Path(getattr(program, "__file__", None) or "").name in {"ftrun", "ftrun.exe", "ftrun-script.py"}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("config_path", metavar="CONFIG", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="PATH=VALUE",
    help="Change one config value before validation (dotted PATH, YAML VALUE). Repeatable.",
)
@click.option("--dry-run", is_flag=True, help="Load tokenizer and data, print the plan, load no weights.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print the plan as one JSON object.")
@click.option("--world-size", type=click.IntRange(min=1), help="With --dry-run: plan for N processes.")
@click.option("--mlflow-server-uri", help="Track the run in this MLflow server (wins over the config).")
@click.option("--experiment-name", help="MLflow experiment name (wins over the config).")
@click.option(
    "--num-preprocess-workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes for data preparation.",
)
@click.option("--overwrite", is_flag=True, help="Replace an earlier run in output_dir instead of refusing.")
@click.version_option(package_name="ftconfig")
def cli(
    config_path: Path,
    sets: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
    world_size: int | None,
    mlflow_server_uri: str | None,
    experiment_name: str | None,
    num_preprocess_workers: int,
    overwrite: bool,
) -> None:
    """Train the supervised finetuning run described by CONFIG (YAML or JSON)."""
    _require_training_stack()
    from ftconfig.runtime.config._load import load_config_file
    from ftconfig.runtime.training._run import RunOptions, process_world

    if as_json and not dry_run:
        raise click.BadParameter("--json only goes with --dry-run", param_hint="--json")
    env_world, rank = process_world()
    if world_size is not None and not dry_run:
        raise click.BadParameter(
            "--world-size only goes with --dry-run; a launcher (torchrun, accelerate) "
            "sets the number of processes of a real run",
            param_hint="--world-size",
        )
    configure_output(rank)
    config = load_config_file(config_path, sets)
    options = RunOptions(
        num_preprocess_workers=num_preprocess_workers,
        overwrite=overwrite,
        mlflow_server_uri=mlflow_server_uri,
        experiment_name=experiment_name,
    )
    if dry_run:
        from ftconfig.runtime.training._plan import build_plan, keep_training_only_libraries_out, render_plan

        if _runs_as_the_program():
            keep_training_only_libraries_out()
        from ftconfig.runtime.training._run import prepare_run

        run = prepare_run(config, options, world_size=world_size or env_world)
        plan = build_plan(run)
        click.echo(json.dumps(plan, indent=2, ensure_ascii=False) if as_json else render_plan(run, plan))
        return
    from ftconfig.runtime.training._run import train

    _install_sigterm_handler()
    started = time.monotonic()
    try:
        result = train(config, options)
    except KeyboardInterrupt as interrupt:
        # Caught here, else click turns it into a bare Abort and prints an empty line.
        raise RunInterrupted(
            signal.SIGTERM if isinstance(interrupt, _Terminated) else signal.SIGINT
        ) from None
    prefix = "ftrun" if rank == 0 else f"ftrun[{rank}]"
    # Equal on every rank of a correct multi-process run (tests compare them); not what a user reads last.
    click.echo(f"{prefix}: final weights sha256 {result.weights_sha256}", err=True)
    if rank == 0:
        from ftconfig.runtime.training._summary import run_summary

        for line in run_summary(result, time.monotonic() - started):
            click.echo(line if line.startswith(" ") else f"ftrun: {line}")  # commands stay copyable


def main() -> None:
    """Console entry point: user mistakes exit 2 with a message and no traceback; anything else is a bug in
    ftconfig (traceback, a "please report" line, exit 1).

    A run stopped by Ctrl-C (SIGINT) or SIGTERM prints one line and exits 128 + the signal number (130, 143).
    """
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("ftrun: aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except UserError as error:
        click.echo(str(error), err=True)
        sys.exit(error.exit_code)
    except RunInterrupted as interrupted:
        click.echo(
            f"ftrun: stopped by {interrupted} before the run finished; continue it with "
            "run_conf.resume_from_checkpoint: auto",
            err=True,
        )
        sys.exit(128 + interrupted.signum)
    except KeyboardInterrupt:
        click.echo("ftrun: interrupted", err=True)
        sys.exit(130)
    except TrainingStackMissing as missing:
        click.echo(f"ftrun: {missing}", err=True)
        sys.exit(missing.exit_code)
    except ModuleNotFoundError as error:
        # A training library that is only partly installed (or broken) still gets the same advice.
        if (error.name or "").partition(".")[0] not in TRAINING_STACK:
            raise
        click.echo(f"ftrun: a training library cannot be imported ({error}); {_INSTALL_TRAIN}", err=True)
        sys.exit(1)
    except Exception as error:
        from ftconfig.runtime.training._output import StorageFailure, storage_failure

        problem = str(error) if isinstance(error, StorageFailure) else storage_failure(error)
        if problem is None:
            report_bug("ftrun")
        from ftconfig.runtime.config._secrets import redact_text

        click.echo(
            f"ftrun: stopped: {redact_text(problem)}. Free space (or fix the disk) and run again: with "
            "run_conf.resume_from_checkpoint: auto the run continues from its last complete checkpoint",
            err=True,
        )
        sys.exit(1)
