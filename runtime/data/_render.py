"""Chat templates compiled once and rendered over whole batches, with the spans of `{% generation %}` output.

The Jinja environment is the one transformers renders chat templates in (sandboxed, `trim_blocks`, `lstrip_blocks`,
loop controls, `tojson`, `raise_exception`, `strftime_now`, `dict`, `namespace`), so the text is the same as
`apply_chat_template`'s. What is left out is transformers' per-conversation work that ftconfig's rows never need:
its rows are validated `{"role": str, "content": str}` messages, already plain data, with no reasoning fields to
alias, no tools and no documents.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.utils
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["CompiledTemplate", "RenderedBatch", "compile_template"]

Span = tuple[int, int]


@dataclass
class _Tracker:
    """Where rendering is: characters yielded so far, and the generation spans found up to there."""

    position: int = 0
    spans: list[Span] = field(default_factory=list)


class _GenerationTracker(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}`: renders its body unchanged and records its character span."""

    tags = {"generation"}  # noqa: RUF012 - jinja reads this class attribute

    def __init__(self, environment: jinja2.Environment) -> None:
        super().__init__(environment)
        # Per thread (and task): one compiled template may render in several at once.
        self._active: ContextVar[_Tracker | None] = ContextVar("generation_tracker", default=None)

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_generation"), [], [], body).set_lineno(lineno)

    def _generation(self, caller: Callable[[], str]) -> str:
        text = caller()
        tracker = self._active.get()
        if tracker is not None:
            # Everything before this block was yielded already: the span starts at the running length.
            tracker.spans.append((tracker.position, tracker.position + len(text)))
        return text

    @contextmanager
    def tracking(self) -> Iterator[_Tracker]:
        tracker = _Tracker()
        token = self._active.set(tracker)
        try:
            yield tracker
        finally:
            self._active.reset(token)


class _TemplateNamespace(jinja2.utils.Namespace):
    """Jinja's namespace without underscore attributes (no way to CPython internals)."""

    def __init__(
        *args: Any, **kwargs: Any
    ) -> None:  # Jinja's own signature trick: `namespace(self=...)` works
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check_name(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(
                f"chat templates cannot store underscore-prefixed attributes on a namespace, got {name!r}"
            )


class _TemplateDict:
    """`dict(...)` and `dict.fromkeys(...)` in templates, without the dict type's attributes."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict.fromkeys(*args, **kwargs)


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: Any = None,
    sort_keys: bool = False,
) -> str:
    """Jinja's own tojson escapes HTML characters; chat templates want the JSON as written."""
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


@dataclass(frozen=True)
class RenderedBatch:
    """Rendered texts and, per text, the character spans of its `{% generation %}` output."""

    texts: list[str]
    spans: list[list[Span]]


@dataclass(frozen=True)
class CompiledTemplate:
    """A chat template compiled once; `render` renders a batch of conversations with it."""

    template: jinja2.Template
    batch_template: jinja2.Template | None  # the template in a loop over conversations, where that is exact
    tracker: _GenerationTracker
    variables: dict[str, Any]
    cut_prefix: str  # rendered text that starts with this loses it (a BOS the tokenizer adds itself)

    def render(self, conversations: Sequence[Sequence[dict[str, str]]], *, with_spans: bool) -> RenderedBatch:
        """Each conversation rendered (no generation prompt); spans only `with_spans` (else empty lists)."""
        if self.batch_template is not None:
            texts, spans = self._render_in_one_call(self.batch_template, conversations)
        else:
            texts, spans = self._render_one_by_one(conversations, with_spans=with_spans)
        if not with_spans:
            spans = [[] for _ in texts]
        cut = len(self.cut_prefix)
        if cut:
            for i, text in enumerate(texts):
                if text.startswith(self.cut_prefix):
                    texts[i] = text[cut:]
                    spans[i] = [(max(start - cut, 0), max(end - cut, 0)) for start, end in spans[i]]
        return RenderedBatch(texts, spans)

    def _render_in_one_call(
        self, template: jinja2.Template, conversations: Sequence[Sequence[dict[str, str]]]
    ) -> tuple[list[str], list[list[Span]]]:
        """One template call for the batch; each conversation's start (and its first span) is recorded as the
        loop reaches it, so the text and the spans are cut apart exactly."""
        marks: list[tuple[int, int]] = []  # (text position, spans so far) where each conversation starts
        with self.tracker.tracking() as tracker:

            def conversation_starts() -> str:
                marks.append((tracker.position, len(tracker.spans)))
                return ""

            context = template.new_context(
                {**self.variables, _CONVERSATIONS: conversations, _STARTS: conversation_starts}
            )
            pieces = []
            for piece in template.root_render_func(context):
                pieces.append(piece)
                tracker.position += len(piece)
        text = "".join(pieces)
        marks.append((len(text), len(tracker.spans)))
        texts, spans = [], []
        for (start, first_span), (end, end_span) in itertools.pairwise(marks):
            texts.append(text[start:end])
            spans.append([(a - start, b - start) for a, b in tracker.spans[first_span:end_span]])
        return texts, spans

    def _render_one_by_one(
        self, conversations: Sequence[Sequence[dict[str, str]]], *, with_spans: bool
    ) -> tuple[list[str], list[list[Span]]]:
        template, variables = self.template, self.variables
        new_context, render_function = template.new_context, template.root_render_func
        texts: list[str] = []
        spans: list[list[Span]] = []
        for messages in conversations:
            context = new_context({**variables, "messages": messages})
            if with_spans:
                with self.tracker.tracking() as tracker:
                    pieces = []
                    for piece in render_function(context):
                        pieces.append(piece)
                        tracker.position += len(piece)
                text, found = "".join(pieces), tracker.spans
            else:
                text, found = "".join(render_function(context)), []
            texts.append(text)
            spans.append(found)
        return texts, spans


# Context names of the batch loop (templates cannot reach underscore names through attributes, and have no reason
# to name these).
_CONVERSATIONS = "_ftconfig_conversations"
_STARTS = "_ftconfig_conversation_starts"
# Statements whose meaning changes inside a loop (assignments and macros become loop-local, loop controls and
# `loop` would reach the batch loop, blocks and imports have their own rules): a template with any of them is
# rendered one conversation per call.
_LOOP_SENSITIVE = (
    jinja2.nodes.Assign,
    jinja2.nodes.AssignBlock,
    jinja2.nodes.Macro,
    jinja2.nodes.Block,
    jinja2.nodes.Extends,
    jinja2.nodes.Include,
    jinja2.nodes.Import,
    jinja2.nodes.FromImport,
    jinja2.nodes.Scope,
    jinja2.nodes.With,
    jinja2.nodes.Continue,
    jinja2.nodes.Break,
)


def _batch_template(environment: jinja2.Environment, jinja: str) -> jinja2.Template | None:
    """The template's body inside `{% for messages in conversations %}`, when that renders each conversation
    exactly as a call of its own would; None otherwise."""
    tree = environment.parse(jinja)
    if next(tree.find_all(_LOOP_SENSITIVE), None) is not None:
        return None
    names = {node.name for node in tree.find_all(jinja2.nodes.Name)}
    if names & {"loop", _CONVERSATIONS, _STARTS}:
        return None
    starts = jinja2.nodes.Output([jinja2.nodes.Call(jinja2.nodes.Name(_STARTS, "load"), [], [], None, None)])
    loop = jinja2.nodes.For(
        jinja2.nodes.Name("messages", "store"),
        jinja2.nodes.Name(_CONVERSATIONS, "load"),
        [starts, *tree.body],
        [],
        None,
        False,
    )
    return environment.from_string(jinja2.nodes.Template([loop]))


@functools.lru_cache(maxsize=16)
def _compile(jinja: str) -> tuple[jinja2.Template, jinja2.Template | None, _GenerationTracker]:
    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationTracker, jinja2.ext.loopcontrols]
    )
    environment.filters["tojson"] = _tojson
    environment.globals["raise_exception"] = _raise_exception
    environment.globals["strftime_now"] = _strftime_now
    environment.globals["dict"] = _TemplateDict()
    environment.globals["namespace"] = _TemplateNamespace
    tracker = environment.extensions[_GenerationTracker.identifier]
    assert isinstance(tracker, _GenerationTracker)
    return environment.from_string(jinja), _batch_template(environment, jinja), tracker


def compile_template(jinja: str, special_tokens: dict[str, Any], *, cut_prefix: str = "") -> CompiledTemplate:
    """Compile `jinja` (cached per template text) with the variables every rendering gets: the special tokens
    (`bos_token`, `eos_token`, ...), no tools, no documents, no generation prompt.

    `cut_prefix` (the BOS text, when the tokenizer adds BOS itself) is removed from the start of each rendering,
    and the spans move with it, so that a template that writes `{{ bos_token }}` never yields a double BOS.
    """
    template, batch_template, tracker = _compile(jinja)
    variables = {
        **special_tokens,
        "tools": None,
        "documents": None,
        "add_generation_prompt": False,
    }
    return CompiledTemplate(template, batch_template, tracker, variables, cut_prefix)
