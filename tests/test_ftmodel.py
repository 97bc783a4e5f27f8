"""ftmodel on real runs of the tiny model: the generation config of saved checkpoints, chat, merge, export,
evaluate and generate, through the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import EXAMPLES, REPO_ROOT, tiny_run_document

pytestmark = pytest.mark.slow

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
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    final = run_dir / "checkpoint-final"
    tokenizer = AutoTokenizer.from_pretrained(final)
    if not (final / "adapter_config.json").is_file():
        return AutoModelForCausalLM.from_pretrained(final).eval(), tokenizer
    grown = run_dir / "checkpoint-new-basemodel"
    base = AutoModelForCausalLM.from_pretrained(grown if grown.is_dir() else EXAMPLES / "tiny-llama")
    if len(tokenizer) > base.get_input_embeddings().num_embeddings:  # the adapter holds the new tokens' rows
        base.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    base.generation_config = GenerationConfig.from_pretrained(final)  # as the guide's loading lines do
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
    # Stops at the first end of turn: forced at step 3 at the latest (the trained model may close it sooner).
    assert new[-1] == end_of_turn and end_of_turn not in new[:-1] and len(new) <= 3, new


# --- the generation config every inference-ready checkpoint carries -----------------------------------------


def test_quickstart_result_stops_generating_at_the_end_of_a_turn(quickstart_run: Path) -> None:
    from transformers import GenerationConfig

    model, tokenizer = plain_peft_model(quickstart_run)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer.eos_token == "<|im_end|>"
    original = GenerationConfig.from_pretrained(EXAMPLES / "tiny-llama")
    assert im_end not in [original.eos_token_id]  # the base alone would run past the turn
    saved = GenerationConfig.from_pretrained(quickstart_run / "checkpoint-final")
    assert im_end in saved.eos_token_id
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


# --- merge ---------------------------------------------------------------------------------------------------


def prompt_batch(tokenizer: Any) -> Any:
    questions = [QUESTION, "What is the capital of Peru?", "Reverse the words: red green blue"]
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False
        )
        for q in questions
    ]
    tokenizer.padding_side = "left"
    return tokenizer(texts, return_tensors="pt", padding=True)


def logits_of(model: Any, batch: Any) -> Any:
    import torch

    with torch.no_grad():
        return model(**batch).logits


def assert_same_model(merged_dir: Path, reference: Any, tokenizer: Any) -> None:
    """The merged folder, loaded by plain transformers, computes what the adapter form computes."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    merged_tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    assert merged_tokenizer.eos_token == tokenizer.eos_token
    assert len(merged_tokenizer) == len(tokenizer)
    batch = prompt_batch(tokenizer)
    torch.testing.assert_close(logits_of(merged, batch), logits_of(reference, batch), atol=1e-4, rtol=1e-4)
    eos_ids = merged.generation_config.eos_token_id
    assert tokenizer.eos_token_id in (eos_ids if isinstance(eos_ids, list) else [eos_ids])


def test_merge_gives_a_model_that_computes_what_the_adapter_computes(
    quickstart_run: Path, tmp_path: Path
) -> None:
    result = ftmodel("merge", str(quickstart_run), str(tmp_path / "merged"))
    assert result.returncode == 0, result.stderr
    model, tokenizer = plain_peft_model(quickstart_run)
    assert_same_model(tmp_path / "merged", model, tokenizer)
    # The merged folder is a model folder ftmodel chat takes as well.
    chat = ftmodel("chat", str(tmp_path / "merged"), "--prompt", QUESTION, "--max-new-tokens", "8")
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout == greedy_answer(model, tokenizer, QUESTION, 8) + "\n"


def test_merge_refuses_an_existing_output_or_one_inside_the_run(quickstart_run: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    assert_user_error(ftmodel("merge", str(quickstart_run), str(tmp_path / "taken")), "already exists")
    inside = quickstart_run / "merged"
    assert_user_error(ftmodel("merge", str(quickstart_run), str(inside)), "inside")
    assert not inside.exists()


@pytest.fixture(scope="module")
def trainable_tokens_run(quickstart_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A run directory as a run whose template adds tokens writes it when the adapter carries only the new
    tokens' rows (PEFT trainable tokens) and no grown base model is saved: the base is the original model with
    its embeddings resized to the tokenizer. Built by hand from the quickstart's tokenizer and config, with
    random adapter weights, so that every part of the adapter changes the outputs."""
    import shutil

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir = tmp_path_factory.mktemp("trainable-tokens") / "run"
    final = run_dir / "checkpoint-final"
    final.mkdir(parents=True)
    shutil.copy(quickstart_run / "resolved_config.json", run_dir)
    tokenizer = AutoTokenizer.from_pretrained(quickstart_run / "checkpoint-final")
    tokenizer.save_pretrained(final)
    base = AutoModelForCausalLM.from_pretrained(EXAMPLES / "tiny-llama")
    new_ids = list(range(base.get_input_embeddings().weight.shape[0], len(tokenizer)))
    assert new_ids  # chat-ml adds <|im_start|> and <|im_end|>
    base.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    config = LoraConfig(
        r=4, target_modules=["q_proj", "v_proj"], trainable_token_indices={"embed_tokens": new_ids}
    )
    model = get_peft_model(base, config)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.3)
    model.save_pretrained(final)
    return run_dir, model.eval()


def test_merge_reads_an_adapter_that_carries_only_the_new_token_rows(
    trainable_tokens_run: tuple[Path, Any], tmp_path: Path
) -> None:
    run_dir, adapter_model = trainable_tokens_run
    assert not (run_dir / "checkpoint-new-basemodel").exists()
    result = ftmodel(
        "merge", str(run_dir), str(tmp_path / "merged")
    )  # from the repository: the base is there
    assert result.returncode == 0, result.stderr
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run_dir / "checkpoint-final")
    assert_same_model(tmp_path / "merged", adapter_model, tokenizer)


def test_a_run_whose_relative_base_is_not_reachable_says_so(
    trainable_tokens_run: tuple[Path, Any], tmp_path: Path
) -> None:
    run_dir, _ = trainable_tokens_run
    result = ftmodel("merge", str(run_dir), str(tmp_path / "merged"), cwd=tmp_path)
    assert_user_error(result, "examples/tiny-llama", "--base-model")
    assert not (tmp_path / "merged").exists()


# --- export-vllm ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain_lora_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA run whose template adds no tokens, evaluated at its last step on valid.jsonl in one batch."""
    return train_tiny(
        tmp_path_factory.mktemp("plain-lora") / "run",
        data_conf={
            "chat_template_name": "mistral-with-system",
            "validation_data": {
                "type": "CONCATENATION",
                "datasets": [{"path": str(EXAMPLES / "data/valid.jsonl")}],
            },
        },
        training_args={"max_steps": 10, "eval_strategy": "steps", "eval_steps": 10},
        batchsize_conf={"per_device_eval_batch_size": 64},
        sft_args={"train_on_completions_only": True},
    )


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file()
    }


def test_export_vllm_writes_lora_tensors_only_and_leaves_the_run_alone(
    plain_lora_run: Path, tmp_path: Path
) -> None:
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    before = snapshot(plain_lora_run)
    result = ftmodel("export-vllm", str(plain_lora_run), str(tmp_path / "vllm"))
    assert result.returncode == 0, result.stderr
    assert snapshot(plain_lora_run) == before
    exported = tmp_path / "vllm"
    with safe_open(str(exported / "adapter_model.safetensors"), framework="pt") as handle:
        names = list(handle.keys())
    assert names and all(".lora_" in name for name in names)
    config = json.loads((exported / "adapter_config.json").read_text())
    assert config["modules_to_save"] is None and config["trainable_token_indices"] is None
    assert Path(config["base_model_name_or_path"]) == (EXAMPLES / "tiny-llama").resolve()
    assert (exported / "tokenizer.json").is_file()
    model, tokenizer = plain_peft_model(plain_lora_run)
    base = AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"])
    reloaded = PeftModel.from_pretrained(base, exported).eval()
    batch = prompt_batch(tokenizer)
    import torch

    torch.testing.assert_close(logits_of(reloaded, batch), logits_of(model, batch))


def test_export_vllm_refuses_adapters_with_embeddings_and_points_at_merge(
    quickstart_run: Path, trainable_tokens_run: tuple[Path, Any], tmp_path: Path
) -> None:
    before = snapshot(quickstart_run)
    result = ftmodel("export-vllm", str(quickstart_run), str(tmp_path / "a"))
    assert_user_error(result, "embed_tokens", "ftmodel merge")
    assert snapshot(quickstart_run) == before
    result = ftmodel("export-vllm", str(trainable_tokens_run[0]), str(tmp_path / "b"))
    assert_user_error(result, "rows", "ftmodel merge")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_export_vllm_refuses_a_full_model_run(tmp_path: Path) -> None:
    run_dir = train_tiny(
        tmp_path / "full", peft_conf={"peft_type": "NO_PEFT"}, training_args={"max_steps": 1}
    )
    assert_user_error(ftmodel("export-vllm", str(run_dir), str(tmp_path / "out")), "NO_PEFT", "ftmodel merge")
    merged = ftmodel("merge", str(run_dir), str(tmp_path / "merged"))
    assert merged.returncode == 0, merged.stderr
    model, tokenizer = plain_peft_model(run_dir)
    assert_same_model(tmp_path / "merged", model, tokenizer)


# --- evaluate ------------------------------------------------------------------------------------------------


def test_evaluate_reproduces_the_runs_own_eval_metrics(plain_lora_run: Path) -> None:
    import math

    state = json.loads((plain_lora_run / "trainer_state.json").read_text())
    final_eval = [entry for entry in state["log_history"] if "eval_loss" in entry][-1]
    data = str(EXAMPLES / "data/valid.jsonl")
    result = ftmodel("evaluate", str(plain_lora_run), data, "--json", "--batch-size", "64")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["examples"] == 40 and metrics["completions_only"] is True
    assert metrics["loss"] == pytest.approx(final_eval["eval_loss"], rel=1e-5)
    assert metrics["token_accuracy"] == pytest.approx(final_eval["eval_mean_token_accuracy"], rel=1e-5)
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["loss"]))
    table = ftmodel("evaluate", str(plain_lora_run), data)
    assert table.returncode == 0, table.stderr
    assert "perplexity" in table.stdout and f"{metrics['loss']:.4f}" in table.stdout


def test_evaluate_names_the_bad_row_of_the_data(plain_lora_run: Path, tmp_path: Path) -> None:
    data = tmp_path / "held-out.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": {}}\n')
    assert_user_error(ftmodel("evaluate", str(plain_lora_run), str(data)), f"{data}:2")
    assert_user_error(
        ftmodel("evaluate", str(plain_lora_run), str(tmp_path / "none.jsonl")), "file not found"
    )


# --- generate ------------------------------------------------------------------------------------------------


def write_yaml(path: Path, document: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_generate_answers_held_out_prompts_in_batches_like_one_at_a_time(
    quickstart_run: Path, tmp_path: Path
) -> None:
    config = write_yaml(
        tmp_path / "gen.yaml",
        {
            "model_conf": {"model": str(quickstart_run)},
            "prompt_conf": {"type": "eval-data", "data": {"path": str(EXAMPLES / "data/valid.jsonl")}},
            "hf_gen_params": {"max_new_tokens": 8},
        },
    )
    result = ftmodel("generate", str(config), str(tmp_path / "answers.jsonl"), "--batch-size", "16")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    rows = [json.loads(line) for line in (EXAMPLES / "data/valid.jsonl").read_text().splitlines()]
    assert len(records) == len(rows) == 40
    assert [r["id"] for r in records] == [str(i) for i in range(40)]
    assert records[0]["reference_answers"] == [rows[0]["messages"][-1]["content"]]
    assert records[0]["prompt"] == rows[0]["messages"][-2]["content"]
    assert all(r["truncated"] is False for r in records)
    assert records[0]["gen_params"]["max_new_tokens"] == 8
    model, tokenizer = plain_peft_model(quickstart_run)
    for record in records[:4]:
        text = tokenizer.apply_chat_template(record["messages"], add_generation_prompt=True, tokenize=False)
        inputs = tokenizer(text, return_tensors="pt")
        output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
        expected = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        assert record["answer"] == expected


def test_generate_open_input_with_an_adapter_writes_yaml(quickstart_run: Path, tmp_path: Path) -> None:
    import yaml

    config = write_yaml(
        tmp_path / "gen.yaml",
        {
            "model_conf": {
                "model": str(EXAMPLES / "tiny-llama"),  # the original base: the adapter holds the new rows
                "adapter": str(quickstart_run / "checkpoint-final"),
            },
            "prompt_conf": {"type": "open-input", "input": QUESTION, "num_samples": 3},
            "hf_gen_params": {"max_new_tokens": 6},
        },
    )
    result = ftmodel("generate", str(config), str(tmp_path / "answers.yaml"))
    assert result.returncode == 0, result.stderr
    records = yaml.safe_load((tmp_path / "answers.yaml").read_text())
    assert [r["id"] for r in records] == ["0", "1", "2"]
    assert len({r["answer"] for r in records}) == 1  # greedy: the same answer three times
    assert records[0]["reference_answers"] == [] and records[0]["dataset"] == "_open_prompt_data_"


def test_generate_rejects_bad_gen_params_and_paths_before_loading_anything(tmp_path: Path) -> None:
    config = write_yaml(
        tmp_path / "gen.yaml",
        {
            "model_conf": {"model": str(EXAMPLES / "tiny-llama")},
            "prompt_conf": {"type": "open-input", "input": "hi"},
            "hf_gen_params": {"max_new_token": 8},
        },
    )
    result = ftmodel("generate", str(config), str(tmp_path / "out.jsonl"))
    assert_user_error(result, "$.hf_gen_params.max_new_token", "max_new_tokens")
    config = write_yaml(
        tmp_path / "gen.yaml",
        {
            "model_conf": {"model": str(EXAMPLES / "tiny-llama"), "adapter": str(tmp_path)},
            "prompt_conf": {"type": "eval-data", "data": {"path": str(tmp_path / "missing.jsonl")}},
        },
    )
    assert_user_error(
        ftmodel("generate", str(config), str(tmp_path / "out.jsonl")), "$.prompt_conf.data.path"
    )
    config = write_yaml(
        tmp_path / "gen.yaml",
        {
            "model_conf": {"model": str(EXAMPLES / "tiny-llama"), "adapter": str(tmp_path)},
            "prompt_conf": {"type": "open-input"},
        },
    )
    assert_user_error(ftmodel("generate", str(config), str(tmp_path / "out.jsonl")), "$.model_conf.adapter")
    assert not (tmp_path / "out.jsonl").exists()


# --- the documented commands ---------------------------------------------------------------------------------


def after_training_commands(document: Path) -> list[str]:
    """The `ftmodel ...` lines of the shell blocks in a document's "After training" section."""
    import re

    text = document.read_text(encoding="utf-8")
    section = text.split("## After training\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```(?:sh|bash)\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.startswith("ftmodel ")]


@pytest.mark.parametrize("document", ["README.md", "docs/guide.md"])
def test_every_after_training_command_in_the_docs_works_on_the_quickstart_result(
    quickstart_run: Path, tmp_path: Path, document: str
) -> None:
    import shlex

    commands = after_training_commands(REPO_ROOT / document)
    assert {shlex.split(line)[1] for line in commands} >= {
        "chat",
        "evaluate",
        "generate",
        "merge",
        "export-vllm",
    }
    # A workspace laid out like the repository after `make quickstart`.
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "quickstart").symlink_to(quickstart_run)
    (tmp_path / "examples").symlink_to(EXAMPLES)
    for line in commands:
        command, _, comment = line.partition("#")
        args = shlex.split(command)[1:]
        interactive = args[0] == "chat" and "--prompt" not in args
        result = ftmodel(*args, cwd=tmp_path, stdin=f"{QUESTION}\n/exit\n" if interactive else None)
        if "refused" in comment:
            assert_user_error(result, "ftmodel merge")
        else:
            assert result.returncode == 0, f"{line}\n{result.stderr}"
            assert result.stdout.strip(), line
    assert (tmp_path / "outputs" / "quickstart-merged" / "model.safetensors").is_file()
    assert len((tmp_path / "outputs" / "answers.jsonl").read_text().splitlines()) == 40


def test_interactive_chat_in_a_real_terminal(quickstart_run: Path) -> None:
    """Through a pty, as a person would use it: prompts appear, the reply streams, /exit ends with code 0."""
    import os
    import pty
    import select
    import time

    controller, terminal = pty.openpty()
    command = [
        sys.executable,
        "-m",
        "ftconfig._ftmodel_cli",
        "chat",
        str(quickstart_run),
        "--max-new-tokens",
        "6",
    ]
    process = subprocess.Popen(command, stdin=terminal, stdout=terminal, stderr=terminal, cwd=REPO_ROOT)
    os.close(terminal)
    seen = b""

    def read_until(marker: bytes, count: int = 1, timeout: float = 300.0) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while seen.count(marker) < count:
            assert time.monotonic() < deadline, seen.decode(errors="replace")
            ready, _, _ = select.select([controller], [], [], 1.0)
            if ready:
                seen += os.read(controller, 4096)

    try:
        read_until(b"you> ")
        os.write(controller, f"{QUESTION}\r".encode())
        read_until(b"model> ")
        read_until(b"you> ", count=2, timeout=120)
        os.write(controller, b"/exit\r")
        assert process.wait(timeout=60) == 0, seen.decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)
    assert b"Traceback" not in seen
    assert seen.count(b"you> ") == 2


def test_generate_with_a_4bit_quantized_base(quickstart_run: Path, tmp_path: Path) -> None:
    config = write_yaml(
        tmp_path / "gen.yaml",
        {
            "model_conf": {"model": str(quickstart_run)},
            "prompt_conf": {"type": "open-input", "input": QUESTION, "num_samples": 2},
            "hf_gen_params": {"max_new_tokens": 4},
            "quant_conf": {
                "quantization_type": "bits-and-bytes",
                "load_in_4bit": True,
                "bnb_4bit_quant_type": "nf4",
                "bnb_4bit_compute_dtype": "float32",
            },
        },
    )
    result = ftmodel("generate", str(config), str(tmp_path / "answers.jsonl"))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(isinstance(r["answer"], str) for r in records)
