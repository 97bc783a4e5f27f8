"""Chat with a trained model: one reply for a conversation, streamed, and the interactive terminal loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import TextStreamer

from ftconfig.runtime.inference._load import LoadedModel
from ftconfig.runtime.inference._prompts import render_prompt

__all__ = ["EXIT_COMMAND", "RESET_COMMAND", "ChatSettings", "chat_loop", "generation_kwargs", "reply"]

RESET_COMMAND = "/reset"
EXIT_COMMAND = "/exit"
USER_PROMPT = "you> "
MODEL_PROMPT = "model> "


@dataclass(frozen=True)
class ChatSettings:
    """How replies are generated: greedy at temperature 0, sampled above it."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    system: str | None = None


class _CallbackStreamer(TextStreamer):
    """Hands each finished piece of text to a callback instead of printing it."""

    def __init__(self, tokenizer: Any, on_text: Callable[[str], None]) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self._on_text = on_text

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self._on_text(text)


def generation_kwargs(settings: ChatSettings) -> dict[str, Any]:
    if settings.temperature > 0:
        return {
            "do_sample": True,
            "temperature": settings.temperature,
            "max_new_tokens": settings.max_new_tokens,
        }
    return {"do_sample": False, "max_new_tokens": settings.max_new_tokens}


def reply(
    loaded: LoadedModel,
    messages: list[dict[str, str]],
    settings: ChatSettings,
    *,
    on_text: Callable[[str], None] | None = None,
) -> str:
    """The model's answer to the conversation so far; generation stops at the end of the assistant turn."""
    tokenizer = loaded.tokenizer
    text = render_prompt(tokenizer, messages)
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=True).to(loaded.device)
    streamer = _CallbackStreamer(tokenizer, on_text) if on_text is not None else None
    with torch.no_grad():
        output = loaded.model.generate(**inputs, **generation_kwargs(settings), streamer=streamer)
    new_tokens = output[0, inputs["input_ids"].shape[1] :]
    return str(tokenizer.decode(new_tokens, skip_special_tokens=True))


def _start(settings: ChatSettings) -> list[dict[str, str]]:
    return [{"role": "system", "content": settings.system}] if settings.system else []


def chat_loop(
    loaded: LoadedModel,
    settings: ChatSettings,
    *,
    read_line: Callable[[str], str],
    write: Callable[[str], None],
) -> None:
    """Read a user turn, stream the model's reply, repeat; `/reset` forgets the conversation, `/exit` or
    end of input (Ctrl-D) ends it. `read_line` raises EOFError at end of input, like `input()`."""
    messages = _start(settings)
    write(f"Chatting with {loaded.source.describe}. {RESET_COMMAND} starts over, {EXIT_COMMAND} quits.\n")
    while True:
        try:
            line = read_line(USER_PROMPT).strip()
        except EOFError:
            write("\n")
            return
        if not line:
            continue
        if line == EXIT_COMMAND:
            return
        if line == RESET_COMMAND:
            messages = _start(settings)
            write("(conversation reset)\n")
            continue
        messages.append({"role": "user", "content": line})
        write(MODEL_PROMPT)
        answer = reply(loaded, messages, settings, on_text=write)
        write("\n")
        messages.append({"role": "assistant", "content": answer})
