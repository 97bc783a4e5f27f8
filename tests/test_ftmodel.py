"""ftmodel on real runs of the tiny model: the generation config of saved checkpoints, chat, merge, export,
evaluate and generate, through the real command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, REPO_ROOT, tiny_run_document

pytestmark = [pytest.mark.slow, pytest.mark.integration]

QUESTION = "What is 2 plus 3?"


def ftmodel(*args: str, stdin: str | None = None, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ftconfig._ftmodel_cli", *args]
    return subprocess.run(
        command, input=stdin, capture_output=True, text=True, check=False, timeout=600, cwd=cwd
    )


def assert_user_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def train_tiny(output_dir: Path, **sections: Any) -> Path:
    from ftconfig.runtime import load_config
    from ftconfig.runtime.training._run import RunOptions, train

    document = tiny_run_document(output_dir, **sections)
    train(load_config(document), RunOptions())
    return output_dir


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/quickstart.yaml trained by the real ftrun, into a temporary output_dir."""
    output_dir = tmp_path_factory.mktemp("quickstart") / "run"
    command = [
        sys.executable,
        "-m",
        "ftconfig",
        "examples/quickstart.yaml",
        "--set",
        f"training_args.output_dir={output_dir}",
        "--set",
        "training_args.disable_tqdm=true",
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return output_dir


def plain_peft_model(run_dir: Path) -> tuple[Any, Any]:
    """The run loaded the way a user of transformers + PEFT would, without ftconfig."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final = run_dir / "checkpoint-final"
    tokenizer = AutoTokenizer.from_pretrained(final)
    if not (final / "adapter_config.json").is_file():
        return AutoModelForCausalLM.from_pretrained(final).eval(), tokenizer
    grown = run_dir / "checkpoint-new-basemodel"
    base = AutoModelForCausalLM.from_pretrained(grown if grown.is_dir() else EXAMPLES / "tiny-llama")
    return PeftModel.from_pretrained(base, final).eval(), tokenizer


def chat_prompt_ids(tokenizer: Any, question: str) -> Any:
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
    )
    return tokenizer(text, return_tensors="pt")


class ForceTokenAt:
    """A logits processor that makes the model emit `token_id` as its `step`-th new token."""

    def __init__(self, prompt_length: int, step: int, token_id: int) -> None:
        self.position = prompt_length + step - 1
        self.token_id = token_id

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if input_ids.shape[1] == self.position:
            scores[:, :] = -float("inf")
            scores[:, self.token_id] = 0.0
        return scores


def assert_generate_stops_at_end_of_turn(model: Any, tokenizer: Any) -> None:
    """Plain model.generate(): once the end-of-turn token is produced, generation stops there."""
    from transformers import LogitsProcessorList

    end_of_turn = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    inputs = chat_prompt_ids(tokenizer, QUESTION)
    length = inputs["input_ids"].shape[1]
    force = LogitsProcessorList([ForceTokenAt(length, 3, end_of_turn)])
    output = model.generate(**inputs, max_new_tokens=20, do_sample=False, logits_processor=force)
    new = output[0, length:].tolist()
    assert new[-1] == end_of_turn and len(new) == 3, new


# --- the generation config every inference-ready checkpoint carries -----------------------------------------


def test_quickstart_result_stops_generating_at_the_end_of_a_turn(quickstart_run: Path) -> None:
    from transformers import GenerationConfig

    model, tokenizer = plain_peft_model(quickstart_run)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer.eos_token == "<|im_end|>"
    original = GenerationConfig.from_pretrained(EXAMPLES / "tiny-llama")
    assert im_end not in [original.eos_token_id]  # the base alone would run past the turn
    for folder in ("checkpoint-final", "checkpoint-new-basemodel"):
        saved = GenerationConfig.from_pretrained(quickstart_run / folder)
        assert im_end in saved.eos_token_id, folder
    assert_generate_stops_at_end_of_turn(model, tokenizer)


@pytest.mark.parametrize(
    ("template", "peft_type", "end_of_turn"),
    [
        ("mistral-with-system", "NO_PEFT", "</s>"),
        ("poro", "LORA", "</s>"),
        ("simplified-llama31", "NO_PEFT", "<|eot_id|>"),
        ("keep-original", "LORA", "</s>"),
    ],
)
def test_every_named_template_saves_a_checkpoint_that_stops_at_its_end_of_turn(
    tmp_path: Path, template: str, peft_type: str, end_of_turn: str
) -> None:
    from transformers import GenerationConfig

    peft_conf = {"peft_type": peft_type}
    if peft_type == "LORA":
        peft_conf["peft_kwargs"] = {"r": 4, "target_modules": "all-linear"}
    run_dir = train_tiny(
        tmp_path / template,
        data_conf={"chat_template_name": template},
        peft_conf=peft_conf,
        training_args={"max_steps": 2},
    )
    model, tokenizer = plain_peft_model(run_dir)
    assert tokenizer.eos_token == end_of_turn
    eos_ids = GenerationConfig.from_pretrained(run_dir / "checkpoint-final").eos_token_id
    eos_ids = eos_ids if isinstance(eos_ids, list) else [eos_ids]
    assert tokenizer.convert_tokens_to_ids(end_of_turn) in eos_ids
    assert_generate_stops_at_end_of_turn(model, tokenizer)


# --- chat ----------------------------------------------------------------------------------------------------


def greedy_answer(model: Any, tokenizer: Any, question: str, max_new_tokens: int) -> str:
    import torch

    inputs = chat_prompt_ids(tokenizer, question)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return str(tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))


def test_chat_prompt_answers_like_the_adapter_loaded_by_hand(quickstart_run: Path) -> None:
    result = ftmodel("chat", str(quickstart_run), "--prompt", QUESTION, "--max-new-tokens", "12")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    model, tokenizer = plain_peft_model(quickstart_run)
    expected = greedy_answer(model, tokenizer, QUESTION, 12)
    assert expected.strip()
    assert result.stdout == expected + "\n"


def test_interactive_chat_streams_replies_resets_and_exits(quickstart_run: Path) -> None:
    stdin = f"{QUESTION}\n/reset\n{QUESTION}\nAnd 4 plus 4?\n/exit\nnever read\n"
    result = ftmodel("chat", str(quickstart_run), "--max-new-tokens", "12", stdin=stdin)
    assert result.returncode == 0, result.stderr
    model, tokenizer = plain_peft_model(quickstart_run)
    first = greedy_answer(model, tokenizer, QUESTION, 12)
    transcript = result.stdout
    assert transcript.count("you> ") == 5  # three messages, /reset and /exit
    assert "(conversation reset)" in transcript
    replies = [part.split("\nyou> ")[0] for part in transcript.split("model> ")[1:]]
    assert len(replies) == 3
    # After /reset the same question gets the same greedy reply; the third turn sees the second one.
    assert replies[0] == replies[1] == first
    assert "never read" not in transcript


def test_chat_ends_cleanly_at_end_of_input(quickstart_run: Path) -> None:
    result = ftmodel("chat", str(quickstart_run / "checkpoint-final"), "--max-new-tokens", "4", stdin="")
    assert result.returncode == 0, result.stderr
    assert "you> " in result.stdout


def test_chat_with_something_that_is_no_model_exits_2_without_traceback(tmp_path: Path) -> None:
    assert_user_error(ftmodel("chat", str(tmp_path / "missing")), "not a run directory")
    (tmp_path / "empty").mkdir()
    assert_user_error(ftmodel("chat", str(tmp_path / "empty")), "neither a model")


def test_chat_names_a_base_model_that_moved(quickstart_run: Path, tmp_path: Path) -> None:
    # The run recorded examples/tiny-llama relative to the repository; from elsewhere it is not there.
    result = ftmodel("chat", str(quickstart_run), "--prompt", "hi", "--base-model", "no/such/folder")
    assert_user_error(result, "--base-model", "no/such/folder")
