"""Structured output and tool calling wired into the engine's ``prepare`` hook.

Two calls, both made by ``generate.prepare``:

* :func:`plan` (before the prompt is encoded) validates ``response_format`` / ``tools`` /
  ``tool_choice`` (ValidationError -> 400 before anything streams) and returns a
  :class:`StructuredPlan` whose ``request`` is what the prompt encoder should render:
  tools left for a template that handles them (tool-call arguments as objects), or
  described in a fallback system turn (``tools.fallback_system_prompt``), or dropped for
  ``tool_choice: none``.
* :func:`attach` (after) adds a fresh grammar logits processor per sequence and wraps the
  decoder in :class:`ToolCallDecoder`, which turns tool-call text into ``Chunk.tool_calls``
  and the finish reason into ``"tool_calls"`` (but a token limit stays ``"length"``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mlxk.engine.structured import custom
from mlxk.engine.structured import tools as T
from mlxk.engine.types import Chunk, GenerationRequest, LoadedModel
from mlxk.errors import ValidationError


@dataclass
class StructuredPlan:
    request: GenerationRequest        # to encode (messages/tools rewritten)
    grammar_lark: str | None = None   # Lark text (tool calls, possibly + JSON answer)
    grammar: str | None = None        # serialized llguidance grammar (response_format)
    tool_format: str | None = None    # parse tool calls from the output in this format
    parallel: bool = True
    subgrammars: dict[str, str] = dataclasses.field(default_factory=dict)  # @name -> Lark
    raw_tools: frozenset[str] = frozenset()   # forced custom tools whose input is raw (custom.py)

    @property
    def active(self) -> bool:
        return bool(self.grammar or self.grammar_lark or self.tool_format)


def response_format_from_file(path: str) -> dict[str, Any]:
    """``run --json-schema FILE``: a bare JSON schema, or OpenAI's ``{"name", "schema"}``
    wrapper, or a whole ``response_format`` object; ``-`` reads stdin."""
    import json
    import sys
    from pathlib import Path

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(f"cannot read JSON schema file {path}: {exc.strerror}",
                              param="json_schema") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"JSON schema file {path} is not valid JSON: {exc}",
                              param="json_schema") from exc
    if not isinstance(data, dict):
        raise ValidationError(f"JSON schema file {path} must hold a JSON object",
                              param="json_schema")
    if data.get("type") in ("json_schema", "json_object") and "properties" not in data:
        return data
    if isinstance(data.get("schema"), dict) and "properties" not in data:
        return {"type": "json_schema", "json_schema": data}
    return {"type": "json_schema", "json_schema": {"name": Path(path).stem or "schema",
                                                   "schema": data}}


def chat_template_text(lm: LoadedModel) -> str | None:
    tok = lm.tokenizer
    template = getattr(tok, "chat_template", None)
    return template if isinstance(template, str) else None


def model_tool_format(lm: LoadedModel) -> tuple[bool, str]:
    """(template renders tools, tool-call format the model emits)."""
    template = chat_template_text(lm)
    supports = T.template_supports_tools(template)
    start = getattr(lm.tokenizer, "tool_call_start", None)
    fmt = T.format_for_tokenizer(start)
    if not supports:
        return False, T.HERMES        # our fallback prompt asks for the hermes format
    return True, fmt or T.detect_format(template)


def plan(lm: LoadedModel, request: GenerationRequest) -> StructuredPlan:
    """Validate the structured parts of ``request`` and decide how to honour them."""
    from mlxk.engine.structured import grammar as C

    grammar = C.grammar_for_response_format(request.response_format)
    tools = T.normalize_tools(request.tools)
    choice = T.resolve_tool_choice(request.tool_choice, tools)
    parallel = request.parallel_tool_calls
    has_tool_history = any(m.get("role") == "tool" or m.get("tool_calls")
                           for m in request.messages or [])
    if not tools and not has_tool_history:
        return StructuredPlan(request=request, grammar=grammar)
    if request.messages is None or not request.use_chat_template:
        raise ValidationError("tools need chat messages and a chat template", param="tools")

    supports, fmt = model_tool_format(lm)
    if choice.mode == "none":
        msgs = (T.messages_for_template(request.messages) if supports
                else T.strip_tool_messages(request.messages))
        new = dataclasses.replace(request, messages=msgs, tools=None)
        return StructuredPlan(request=new, grammar=grammar)

    if supports:
        new = dataclasses.replace(request, messages=T.messages_for_template(request.messages),
                                  tools=tools)
    else:
        new = dataclasses.replace(
            request, messages=T.messages_for_fallback(request.messages, tools, choice),
            tools=None)
    # A named choice's grammar holds exactly one call: the answer ends with it, also when the
    # token limit leaves no room for the end token the grammar would force next.
    out = StructuredPlan(request=new, tool_format=fmt,
                         parallel=parallel and choice.mode != "named")
    raw = custom.lark_tools(request.tools)
    if choice.mode in ("required", "named"):
        out.grammar_lark, out.subgrammars = T.call_grammar_lark(
            fmt, tools, choice, parallel and choice.mode == "required", C.json_schema_lark, raw)
    else:
        # auto: a grammar only to keep response_format or custom-tool grammars; Lark inputs
        # only where calls are wrapped in tags (elsewhere they stay plain JSON strings).
        raw = raw if T.format_of(fmt).close_tag is not None else {}
        if grammar is not None:
            # either tool call(s) or the JSON answer.
            calls, out.subgrammars = T.call_grammar_lark(fmt, tools, T.ToolChoice("required"),
                                                         parallel, C.json_schema_lark, raw)
            answer = _response_format_lark(request.response_format, C)
            out.grammar_lark = (calls.replace("start:", "calls:", 1)
                                + f"start: calls | answer\nanswer: {answer}\n")
        elif custom.has_grammar(request.tools):
            auto = T.auto_grammar_lark(fmt, tools, C.json_schema_lark, raw)
            if auto is not None:
                out.grammar_lark, out.subgrammars = auto
    out.raw_tools = frozenset(raw) if out.subgrammars else frozenset()
    return out


def _response_format_lark(response_format: dict[str, Any], C: Any) -> str:
    if response_format.get("type") == "json_object":
        return C.json_schema_lark({"type": "object"})
    schema = (response_format.get("json_schema") or {}).get("schema", {"type": "object"})
    return C.json_schema_lark(schema)


def check(lm: LoadedModel, p: StructuredPlan) -> None:
    """Compile the plan's grammar for the model's tokenizer now (400 before streaming)."""
    if p.grammar or p.grammar_lark:
        make_processor(lm, p)


def make_processor(lm: LoadedModel, p: StructuredPlan, prompt_text: str = "") -> Any | None:
    """A fresh per-sequence grammar processor for ``p`` (None when unconstrained).

    When the prompt pre-opens a ``<think>`` block (Qwen3, DeepSeek-R1 templates), the model
    first thinks unconstrained; the grammar applies to the answer after ``</think>``.
    """
    from mlxk.engine.structured import grammar as C

    if p.grammar_lark is not None:
        param = "tools"
        grammar = C.lark_grammar(p.grammar_lark, p.subgrammars)
    elif p.grammar is not None:
        param = "response_format"
        grammar = p.grammar
    else:
        return None
    from mlxk.engine.prompt import ends_in_open_think

    # think_end_token is None unless the model is a <think> reasoning model.
    start_after = C.think_end_token(lm) if ends_in_open_think(prompt_text) else None
    try:
        return C.processor_for_model(lm, grammar, start_after)
    except ValidationError as exc:
        raise ValidationError(exc.message, param=param) from exc


def attach(lm: LoadedModel, p: StructuredPlan, prepared: Any) -> Any:
    """Add the grammar processor and the tool-call decoder to an engine ``Prepared``."""
    proc = make_processor(lm, p, getattr(prepared, "prompt_text", "") or "")
    if proc is not None:
        prepared.logits_processors = [*list(prepared.logits_processors or []), proc]
    if p.tool_format is not None:
        prepared.decoder = ToolCallDecoder(prepared.decoder,
                                           T.ToolCallParser(p.tool_format, p.parallel,
                                                            p.raw_tools))
    return prepared


class ToolCallDecoder:
    """Wraps a ``SequenceDecoder``: tool-call text becomes ``Chunk.tool_calls``."""

    def __init__(self, inner: Any, parser: T.ToolCallParser) -> None:
        self.inner = inner
        self.parser = parser

    def __getattr__(self, name: str) -> Any:   # token counts etc. of the inner decoder
        return getattr(self.inner, name)

    @property
    def finished(self) -> bool:
        return bool(self.inner.finished) or self.parser.done

    def _convert(self, chunks: list[Chunk]) -> list[Chunk]:
        out = []
        for ch in chunks:
            res = self.parser.feed(ch.text) if ch.text else T.ParseResult()
            if res.text or res.calls or ch.reasoning or ch.finish_reason:
                out.append(dataclasses.replace(ch, text=res.text,
                                               tool_calls=res.calls or None))
        return out

    def feed(self, token_id: int) -> list[Chunk]:
        return self._convert(self.inner.feed(token_id))

    def finish(self, reason: str) -> Chunk:
        last = self.inner.finish(reason)
        head = self.parser.feed(last.text) if last.text else T.ParseResult()
        tail = self.parser.finish()
        calls = head.calls + tail.calls
        return dataclasses.replace(last, text=head.text + tail.text,
                                   tool_calls=calls or None,
                                   finish_reason=self.reason(last.finish_reason))

    def reason(self, inner: str | None) -> str | None:
        """The answer's finish reason once its calls are known.

        ``tool_calls`` only when the answer ended on its own after complete calls: the model
        stopped (end token, stop string, the forced-call grammar's end) or the parser ended it
        (the one call of a named choice or without parallel calls, or a call repeated). A token limit stays ``length``
        even after complete calls, so a client can tell the output was cut: the complete calls
        are still delivered, a call the limit cut in half is not a call (the parser gives its
        text back as content).
        """
        if self.parser.calls and (inner in ("stop", None) or self.parser.done):
            return "tool_calls"
        return inner
