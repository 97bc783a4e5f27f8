"""`ftmodel`: use a trained result: chat with it, generate from a config, merge, export for vLLM, evaluate."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from ftconfig.runtime.config._errors import UserError, report_bug

__all__ = ["cli", "main"]

_BASE_MODEL = click.option(
    "--base-model",
    metavar="PATH",
    help="Load the adapter on this base model instead of the one the run recorded.",
)


def _configure_logging() -> None:
    """ftconfig's own messages; libraries only when something failed."""
    logging.basicConfig(level=logging.ERROR, format="ftmodel: %(message)s")
    logging.getLogger("ftconfig").setLevel(logging.INFO)


def _quiet_libraries() -> None:
    """Library progress bars and advice go to stderr and would interleave with a streamed chat."""
    import warnings

    from transformers.utils import logging as hf_logging

    warnings.filterwarnings("ignore", category=FutureWarning)
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # unannotated in transformers
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # unannotated in transformers


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ftconfig")
def cli() -> None:
    """Use what ftrun trained: chat with it, generate, merge the adapter, export it for vLLM, evaluate it."""
    _configure_logging()


@cli.command()
@click.argument("reference", metavar="RUN_DIR_OR_MODEL")
@click.option("--prompt", metavar="TEXT", help="Answer this one message and exit (for scripts).")
@click.option("--system", metavar="TEXT", help="A system message at the start of the conversation.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option(
    "--temperature",
    type=click.FloatRange(min=0.0),
    default=0.0,
    show_default=True,
    help="0 answers greedily; above 0 samples.",
)
@_BASE_MODEL
def chat(
    reference: str,
    prompt: str | None,
    system: str | None,
    max_new_tokens: int,
    temperature: float,
    base_model: str | None,
) -> None:
    """Chat in the terminal with a trained model (a run directory, a checkpoint or a model folder).

    Type a message and press Enter; /reset starts a new conversation, /exit (or Ctrl-D) quits.
    """
    from ftconfig.runtime.inference._chat import ChatSettings, chat_loop, reply
    from ftconfig.runtime.inference._load import load_inference_model
    from ftconfig.runtime.inference._run_dir import read_model_source

    source = read_model_source(reference, base_model=base_model)
    _quiet_libraries()
    loaded = load_inference_model(source)
    settings = ChatSettings(max_new_tokens=max_new_tokens, temperature=temperature, system=system)
    if prompt is not None:
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}
        ]
        click.echo(reply(loaded, messages, settings))
        return

    def write(text: str) -> None:
        click.echo(text, nl=False)
        sys.stdout.flush()

    chat_loop(loaded, settings, read_line=input, write=write)


@cli.command()
@click.argument("config_path", metavar="CONFIG", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("output", metavar="OUTPUT", type=click.Path(path_type=Path))
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
def generate(config_path: Path, output: Path, batch_size: int) -> None:
    """Answer the prompts a generation config describes; write one record per answer to OUTPUT (JSON Lines,
    or YAML when OUTPUT ends in .yaml)."""
    from ftconfig.runtime.config._load import load_generation_config_file
    from ftconfig.runtime.inference._generate import check_output_file, generate_records, write_records

    config = load_generation_config_file(config_path)
    check_output_file(output)
    _quiet_libraries()
    records = generate_records(config, batch_size=batch_size, progress=sys.stderr.isatty())
    write_records(records, output)
    click.echo(f"ftmodel: {len(records)} answers in {output}")


@cli.command()
@click.argument("run_dir", metavar="RUN_DIR")
@click.argument("output", type=click.Path(path_type=Path, file_okay=False))
@_BASE_MODEL
def merge(run_dir: str, output: Path, base_model: str | None) -> None:
    """Merge the run's adapter into its base model and save model, tokenizer and generation config to OUTPUT."""
    from ftconfig.runtime.inference._merge import merge_model
    from ftconfig.runtime.inference._run_dir import read_model_source

    source = read_model_source(run_dir, base_model=base_model)
    _quiet_libraries()
    merge_model(source, output)
    click.echo(f"ftmodel: merged model in {output}")


@cli.command("export-vllm")
@click.argument("run_dir", metavar="RUN_DIR")
@click.argument("output", type=click.Path(path_type=Path, file_okay=False))
def export_vllm(run_dir: str, output: Path) -> None:
    """Write an adapter vLLM can load (LoRA tensors only) to OUTPUT; the run directory is left as it is."""
    from ftconfig.runtime.inference._export_vllm import export_vllm_adapter
    from ftconfig.runtime.inference._run_dir import read_model_source

    source = read_model_source(run_dir)
    export_vllm_adapter(source, output)
    click.echo(f"ftmodel: vLLM adapter in {output} (base model: {source.base_run_conf.model})")


@cli.command()
@click.argument("run_dir", metavar="RUN_DIR")
@click.argument("data", metavar="DATA.jsonl", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object.")
@_BASE_MODEL
def evaluate(run_dir: str, data: Path, batch_size: int, as_json: bool, base_model: str | None) -> None:
    """Loss, perplexity and token accuracy on held-out chat data, with the run's template and loss mask."""
    import json

    from ftconfig.runtime.inference._evaluate import evaluate_model, render_evaluation
    from ftconfig.runtime.inference._run_dir import read_model_source

    source = read_model_source(run_dir, base_model=base_model)
    _quiet_libraries()
    result = evaluate_model(source, data, batch_size=batch_size)
    click.echo(json.dumps(result.as_dict(), indent=2) if as_json else render_evaluation(result))


def main() -> None:
    """Console entry point: user mistakes exit 2 with one message and no traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("ftmodel: aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except UserError as error:
        click.echo(str(error), err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        click.echo("ftmodel: interrupted", err=True)
        sys.exit(130)
    except Exception:
        report_bug("ftmodel")


if __name__ == "__main__":
    main()
