"""OpenAI Responses (``POST /v1/responses``) <-> the core.

Request: ``input`` (a string, or items: ``message`` with ``input_text``/``output_text``
parts, ``function_call``, ``function_call_output``, ``custom_tool_call``,
``custom_tool_call_output``; ``reasoning`` items are dropped; ``input_image`` parts go to
vision models (a data URI; an http(s) URL only with ``serve --allow-image-urls``), files are a 400),
``instructions`` (a system turn; not carried over by ``previous_response_id``, as with
OpenAI), ``tools`` of type ``function`` and ``custom`` (free text, passed to the model as
one ``input`` string; a custom tool's ``format`` grammar, ``regex`` or ``lark``, is checked
(an invalid one is a 400 naming the tool) and enforced on its calls: see
``engine/structured/custom.py``),
``tool_choice``, ``parallel_tool_calls``, ``text.format`` (``text``, ``json_object``,
``json_schema``: enforced), ``max_output_tokens``, ``temperature``, ``top_p``, ``reasoning.effort`` (``none``/``minimal``
turn the chat template's thinking switch off, other levels on, where it has one),
``store`` and ``previous_response_id`` (``ResponseStore``), ``include:
["message.output_text.logprobs"]`` with ``top_logprobs`` (0-20; either one turns logprobs on:
``logprobs`` on each ``output_text`` part and ``response.output_text.delta``/``.done`` event,
the model's log-softmax after any grammar mask). Hosted tools the server
cannot run (``web_search``, ``file_search``, ``computer_use``, ``code_interpreter``,
``mcp`` ...) are a 400 naming the type. Other fields are accepted and ignored.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlxk.engine.structured import custom as custom_grammar
from mlxk.engine.types import GenerationRequest
from mlxk.errors import ModelNotFound, ValidationError
from mlxk.server import core, images, responses
from mlxk.server.dialects import RESPONSES
from mlxk.server.dialects import common as wire

STORE_MAX_ITEMS = 256
STORE_TTL_S = 3600.0
TEXT_PARTS = ("input_text", "output_text", "text")
LOGPROBS = "message.output_text.logprobs"     # the ``include`` value that asks for logprobs


class ResponsesRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = Field(default=None, max_length=512)
    input: str | list[dict[str, Any]] = ""
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    reasoning: dict[str, Any] | None = None
    store: bool = True
    previous_response_id: str | None = Field(default=None, max_length=200)
    stream: bool = False
    background: bool | None = None
    metadata: dict[str, Any] | None = None
    user: str | None = None
    include: list[str] | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)

    @property
    def logprobs(self) -> int | None:
        """Top-k alternatives per output token, or None: no logprobs."""
        if LOGPROBS in (self.include or ()) or self.top_logprobs is not None:
            return self.top_logprobs or 0
        return None


@dataclass
class Stored:
    response: dict[str, Any]
    history: list[dict[str, Any]]         # internal messages (without instructions)
    expires: float


class ResponseStore:
    """Stored responses for ``previous_response_id`` and ``GET``: in memory, LRU of
    ``STORE_MAX_ITEMS``, each kept ``STORE_TTL_S`` seconds; lost on restart."""

    def __init__(self, max_items: int = STORE_MAX_ITEMS, ttl_s: float = STORE_TTL_S) -> None:
        self.max_items, self.ttl_s = max_items, ttl_s
        self._items: OrderedDict[str, Stored] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, response: dict[str, Any], history: list[dict[str, Any]]) -> None:
        with self._lock:
            self._items[response["id"]] = Stored(response, history, time.monotonic() + self.ttl_s)
            self._items.move_to_end(response["id"])
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def get(self, response_id: str) -> Stored:
        with self._lock:
            item = self._items.get(response_id)
            if item is not None and item.expires < time.monotonic():
                del self._items[response_id]
                item = None
            if item is None:
                raise ModelNotFound(f"No response found with id '{response_id}' (responses are kept "
                                    f"in memory for {int(self.ttl_s)} s, the last {self.max_items})",
                                    param="previous_response_id", code="response_not_found")
            self._items.move_to_end(response_id)
            return item

    def delete(self, response_id: str) -> None:
        self.get(response_id)
        with self._lock:
            self._items.pop(response_id, None)


# --- request -----------------------------------------------------------------------------------

def _output_text(output: Any, where: str) -> str:
    return output if isinstance(output, str) else wire.text_of(output, where, TEXT_PARTS)


def _add_call(out: list[dict[str, Any]], call: dict[str, Any]) -> None:
    """A call joins the assistant turn right before it (text and calls are one turn)."""
    if out and out[-1]["role"] == "assistant":
        out[-1].setdefault("tool_calls", []).append(call)
    else:
        out.append({"role": "assistant", "content": "", "tool_calls": [call]})


def _message_content(content: Any, where: str) -> Any:
    """Text, or (with ``input_image`` parts) text and image parts in order."""
    if not isinstance(content, list) or not any(
            isinstance(p, dict) and p.get("type") == "input_image" for p in content):
        return wire.text_of(content, "input", TEXT_PARTS)
    parts: list[dict[str, Any]] = []
    for j, p in enumerate(content):
        if isinstance(p, dict) and p.get("type") == "input_image":
            parts.append(images.responses_image(p, f"{where}.content[{j}]"))
        else:
            parts.append({"type": "text", "text": wire.text_of([p], "input", TEXT_PARTS)})
    return parts


def input_messages(items: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(items, str):
        return [{"role": "user", "content": items}] if items else []
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise ValidationError(f"{where}.role must be user, assistant, system or developer",
                                      param="input")
            out.append({"role": "system" if role == "developer" else role,
                        "content": _message_content(item.get("content"), where)})
        elif kind in ("function_call", "custom_tool_call"):
            if not isinstance(item.get("call_id"), str) or not isinstance(item.get("name"), str):
                raise ValidationError(f"{where}: {kind} needs call_id and name", param="input")
            args = item.get("arguments") if kind == "function_call" \
                else json.dumps({"input": str(item.get("input", ""))})
            _add_call(out, {"id": item["call_id"], "type": "function",
                            "function": {"name": item["name"], "arguments": str(args or "{}")}})
        elif kind in ("function_call_output", "custom_tool_call_output"):
            if not isinstance(item.get("call_id"), str):
                raise ValidationError(f"{where}: {kind} needs call_id", param="input")
            out.append({"role": "tool", "tool_call_id": item["call_id"],
                        "content": _output_text(item.get("output"), "input")})
        elif kind != "reasoning":
            raise wire.refuse("input", f"{where}: input item type {kind!r} is not supported")
    return out


def _tools(tools: list[dict[str, Any]] | None) -> tuple[list[dict[str, Any]] | None, frozenset[str]]:
    if not tools:
        return None, frozenset()
    out, custom = [], set()
    for i, t in enumerate(tools):
        kind = t.get("type")
        if kind == "function":
            out.append(wire.function_tool(t.get("name"), t.get("description"), t.get("parameters"),
                                     "tools"))
        elif kind == "custom":
            out.append(custom_tool(t, f"tools[{i}]"))
            custom.add(str(t.get("name")))
        else:
            raise wire.refuse("tools", f"tools[{i}]: tool type {kind!r} is a hosted tool this server "
                                  "cannot run (only 'function' and 'custom' tools)")
    return out, frozenset(custom)


def custom_tool(tool: dict[str, Any], where: str) -> dict[str, Any]:
    """A ``custom`` tool as a function tool with one string ``input``; its grammar checked
    here (400 naming the tool) and carried for the engine (``structured/custom.py``)."""
    name, fmt = tool.get("name"), tool.get("format")
    if fmt is None or (isinstance(fmt, dict) and fmt.get("type") == "text"):
        return wire.function_tool(name, tool.get("description"), custom_grammar.input_schema(),
                                  "tools")
    if not isinstance(fmt, dict) or fmt.get("type") != "grammar":
        raise ValidationError(f"{where}.format must be {{'type': 'text'}} or {{'type': 'grammar', "
                              "'syntax': 'lark'|'regex', 'definition': ...}", param="tools")
    from mlxk.engine.structured.grammar import check_custom_grammar

    syntax, definition = fmt.get("syntax"), fmt.get("definition")
    check_custom_grammar(str(name), str(syntax), definition)
    pattern = definition if syntax == "regex" else None
    out = wire.function_tool(name, tool.get("description"), custom_grammar.input_schema(pattern),
                             "tools")
    out[custom_grammar.GRAMMAR_KEY] = {"syntax": syntax, "definition": definition}
    return out


def tool_choice(choice: str | dict[str, Any] | None) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if choice.get("type") in ("function", "custom") and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise wire.refuse("tool_choice", f"tool_choice type {choice.get('type')!r} is not supported "
                                "(auto, required, none, or a function/custom tool by name)")


def response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    fmt = (text or {}).get("format")
    if fmt is None or fmt.get("type") == "text":
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        return {"type": "json_schema", "json_schema": {
            "name": str(fmt.get("name") or "output"), "schema": fmt["schema"],
            "strict": bool(fmt.get("strict", False))}}
    raise ValidationError("text.format must be text, json_object, or json_schema with a schema",
                          param="text.format")


def reasoning(options: dict[str, Any] | None) -> bool | None:
    """``reasoning.effort`` -> the template's switch: none/minimal off, low/medium/high on."""
    effort = (options or {}).get("effort")
    if effort is None:
        return None
    if effort not in ("none", "minimal", "low", "medium", "high", "xhigh"):
        raise ValidationError(f"reasoning.effort {effort!r} is not supported", param="reasoning.effort")
    return effort not in ("none", "minimal")


@dataclass
class Translated:
    core: core.CoreRequest
    history: list[dict[str, Any]]         # prior turns + this input (no instructions)
    custom_tools: frozenset[str]


def to_core(req: ResponsesRequest, store: ResponseStore) -> Translated:
    if req.background:
        raise wire.refuse("background", "background responses are not supported")
    if getattr(req, "conversation", None):
        raise wire.refuse("conversation", "conversations are not supported; use previous_response_id")
    history = store.get(req.previous_response_id).history if req.previous_response_id else []
    history = [*history, *input_messages(req.input)]
    if not history:
        raise ValidationError("input must not be empty", param="input")
    messages = [{"role": "system", "content": req.instructions}] if req.instructions else []
    tools, custom = _tools(req.tools)
    choice = tool_choice(req.tool_choice)
    if choice not in (None, "none") and not tools:
        raise ValidationError("tool_choice requires tools", param="tool_choice")
    if tools:
        wire.checked_tools(tools, choice, "tool_choice")
    use = tools if choice != "none" else None
    gen = GenerationRequest(
        messages=messages + history, sampling=wire.sampling(req.temperature, req.top_p),
        max_tokens=req.max_output_tokens, tools=use, tool_choice=choice if use else None,
        response_format=response_format(req.text),
        parallel_tool_calls=req.parallel_tool_calls is not False, reasoning=reasoning(req.reasoning),
        logprobs=req.logprobs)
    creq = core.CoreRequest(model=req.model, gen=gen, dialect=RESPONSES, prompt_param="input",
                            max_param="max_output_tokens")
    return Translated(creq, history, custom)


# --- response ----------------------------------------------------------------------------------

def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass
class Builder:
    """Builds the response object and its output items (shared by whole and streamed answers)."""

    req: ResponsesRequest
    model: str
    custom_tools: frozenset[str]
    count_tokens: Callable[[str], int]
    id: str = field(default_factory=lambda: _id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))
    tokenizer: Any = None                 # renders logprob tokens (with include logprobs)

    def response(self, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None = None,
                 incomplete: str | None = None, error: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self.req
        text_out = "".join(p["text"] for o in output if o["type"] == "message"
                           for p in o["content"] if p["type"] == "output_text")
        return {"id": self.id, "object": "response", "created_at": self.created_at,
                "status": status, "error": error,
                "incomplete_details": {"reason": incomplete} if incomplete else None,
                "instructions": r.instructions, "max_output_tokens": r.max_output_tokens,
                "model": self.model, "output": output, "output_text": text_out,
                "parallel_tool_calls": r.parallel_tool_calls is not False,
                "previous_response_id": r.previous_response_id,
                "reasoning": {"effort": (r.reasoning or {}).get("effort"), "summary": None},
                "store": r.store, "temperature": r.temperature, "top_p": r.top_p,
                "text": r.text or {"format": {"type": "text"}},
                "tool_choice": r.tool_choice or "auto", "tools": r.tools or [],
                "top_logprobs": r.top_logprobs,
                "truncation": "disabled", "usage": usage, "user": r.user,
                "metadata": r.metadata or {}}

    def usage(self, done: core.Finished, reasoning: str) -> dict[str, Any]:
        return {"input_tokens": done.prompt_tokens,
                "input_tokens_details": {"cached_tokens": done.cached_tokens},
                "output_tokens": done.completion_tokens,
                "output_tokens_details": {"reasoning_tokens": self.count_tokens(reasoning)
                                          if reasoning else 0},
                "total_tokens": done.prompt_tokens + done.completion_tokens}

    def final(self, done: core.Finished, output: list[dict[str, Any]], reasoning: str) -> dict[str, Any]:
        incomplete = "max_output_tokens" if done.reason == "length" else None
        return self.response("incomplete" if incomplete else "completed", output,
                             self.usage(done, reasoning), incomplete)

    @staticmethod
    def reasoning_item(item_id: str, text: str) -> dict[str, Any]:
        return {"type": "reasoning", "id": item_id, "summary": [],
                "content": [{"type": "reasoning_text", "text": text}]}

    def logprobs(self, entries: list[core.LogprobEntry] | tuple[core.LogprobEntry, ...]) \
            -> list[dict[str, Any]]:
        """Entries in OpenAI's shape (token, logprob, bytes, top_logprobs); [] when not asked for."""
        if self.req.logprobs is None or not entries:
            return []
        return responses.chat_logprobs(list(entries), self.tokenizer)["content"]

    @staticmethod
    def text_part(text: str, logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}

    def message_item(self, item_id: str, text: str, status: str = "completed",
                     logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {"type": "message", "id": item_id, "status": status, "role": "assistant",
                "content": [self.text_part(text, logprobs)] if status == "completed" else []}

    def call_item(self, item_id: str, call: core.ToolCall, done: bool = True) -> dict[str, Any]:
        if call.name in self.custom_tools:
            args = wire.arguments_obj(call.arguments)
            text = args.get("input", "") if isinstance(args, dict) else str(args)
            return {"type": "custom_tool_call", "id": item_id, "call_id": call.id,
                    "name": call.name, "input": text if done else "",
                    "status": "completed" if done else "in_progress"}
        return {"type": "function_call", "id": item_id, "call_id": call.id, "name": call.name,
                "arguments": call.arguments if done else "",
                "status": "completed" if done else "in_progress"}

    def output(self, result: core.Result) -> list[dict[str, Any]]:
        out = []
        if result.reasoning:
            out.append(self.reasoning_item(_id("rs"), result.reasoning))
        if result.text or not result.tool_calls:
            out.append(self.message_item(_id("msg"), result.text,
                                         logprobs=self.logprobs(result.logprobs)))
        out += [self.call_item(_id("fc"), c) for c in result.tool_calls]
        return out


def assistant_message(output: list[dict[str, Any]]) -> dict[str, Any]:
    """The output as one internal assistant turn (what ``previous_response_id`` replays)."""
    msg: dict[str, Any] = {"role": "assistant", "content": ""}
    for item in output:
        if item["type"] == "message":
            msg["content"] += "".join(p["text"] for p in item["content"])
        elif item["type"] == "function_call":
            msg.setdefault("tool_calls", []).append(
                {"id": item["call_id"], "type": "function",
                 "function": {"name": item["name"], "arguments": item["arguments"]}})
        elif item["type"] == "custom_tool_call":
            msg.setdefault("tool_calls", []).append(
                {"id": item["call_id"], "type": "function",
                 "function": {"name": item["name"], "arguments": json.dumps({"input": item["input"]})}})
    return msg


class StreamWriter:
    """Core events -> the Responses SSE sequence; every event has a ``sequence_number`` and the
    stream always ends with ``response.completed``, ``response.incomplete`` or ``response.failed``."""

    def __init__(self, builder: Builder, on_final: Callable[[dict[str, Any]], None]) -> None:
        self.b = builder
        self.on_final = on_final
        self.seq = 0
        self.output: list[dict[str, Any]] = []
        self.open: str | None = None       # "reasoning" | "message"
        self.item_id = ""
        self.buf: list[str] = []
        self.lp: list[dict[str, Any]] = []        # logprobs of the open message
        self.pending: list[core.LogprobEntry] = []  # of tokens that released no text yet
        self.reasoning = ""
        self.ended = False

    def _ev(self, kind: str, **body: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.seq, **body}
        self.seq += 1
        return wire.named_event(kind, data)

    def start(self) -> bytes:
        r = self.b.response("in_progress", [])
        return self._ev("response.created", response=r) + self._ev("response.in_progress", response=r)

    def _idx(self) -> int:
        return len(self.output)

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        text, idx, iid, lp = "".join(self.buf), self._idx(), self.item_id, self.lp
        kind, self.open, self.buf, self.lp = self.open, None, [], []
        if kind == "message":
            lp += self.b.logprobs(self.pending)   # tokens after the last text (end of text)
            self.pending = []
        if kind == "reasoning":
            self.reasoning += text
            item = self.b.reasoning_item(iid, text)
            out = self._ev("response.reasoning_text.done", item_id=iid, output_index=idx,
                           content_index=0, text=text)
        else:
            item = self.b.message_item(iid, text, logprobs=lp)
            part = self.b.text_part(text, lp)
            out = (self._ev("response.output_text.done", item_id=iid, output_index=idx,
                            content_index=0, text=text, logprobs=lp)
                   + self._ev("response.content_part.done", item_id=iid, output_index=idx,
                              content_index=0, part=part))
        self.output.append(item)
        return out + self._ev("response.output_item.done", output_index=idx, item=item)

    def _open(self, kind: str) -> bytes:
        out = self._close()
        self.open, idx = kind, self._idx()
        if kind == "reasoning":
            self.item_id = _id("rs")
            item = {"type": "reasoning", "id": self.item_id, "summary": [], "content": []}
            return out + self._ev("response.output_item.added", output_index=idx, item=item)
        self.item_id = _id("msg")
        item = self.b.message_item(self.item_id, "", "in_progress")
        return (out + self._ev("response.output_item.added", output_index=idx, item=item)
                + self._ev("response.content_part.added", item_id=self.item_id, output_index=idx,
                           content_index=0, part=self.b.text_part("")))

    def _call(self, call: core.ToolCall) -> bytes:
        out = self._close()
        self.pending = []                 # the call's own tokens: not output text
        idx, iid = self._idx(), _id("fc")
        item = self.b.call_item(iid, call)
        out += self._ev("response.output_item.added", output_index=idx,
                        item=self.b.call_item(iid, call, done=False))
        if item["type"] == "custom_tool_call":
            out += (self._ev("response.custom_tool_call_input.delta", item_id=iid, output_index=idx,
                             delta=item["input"])
                    + self._ev("response.custom_tool_call_input.done", item_id=iid,
                               output_index=idx, input=item["input"]))
        else:
            out += (self._ev("response.function_call_arguments.delta", item_id=iid,
                             output_index=idx, delta=call.arguments)
                    + self._ev("response.function_call_arguments.done", item_id=iid,
                               output_index=idx, name=call.name, arguments=call.arguments))
        self.output.append(item)
        return out + self._ev("response.output_item.done", output_index=idx, item=item)

    def _delta(self, kind: str, text: str, entries: tuple[core.LogprobEntry, ...] = ()) -> bytes:
        out = self._open(kind) if self.open != kind else b""
        self.buf.append(text)
        name = "response.reasoning_text.delta" if kind == "reasoning" else "response.output_text.delta"
        extra: dict[str, Any] = {}
        if kind == "message":
            lp = self.b.logprobs([*self.pending, *entries])
            self.pending = []
            self.lp += lp
            extra["logprobs"] = lp
        return out + self._ev(name, item_id=self.item_id, output_index=self._idx(), content_index=0,
                              delta=text, **extra)

    def feed(self, events: list[core.Event]) -> bytes:
        out: list[bytes] = []
        for e in events:
            if isinstance(e, core.ReasoningDelta):
                out.append(self._delta("reasoning", e.text))
            elif isinstance(e, core.TextDelta) and e.text:
                out.append(self._delta("message", e.text, e.logprobs))
            elif isinstance(e, core.TextDelta):
                self.pending += e.logprobs
            elif isinstance(e, core.ToolCall):
                out.append(self._call(e))
            elif isinstance(e, core.Finished):
                out.append(self._close())
                final = self.b.final(e, self.output, self.reasoning)
                self.on_final(final)
                self.ended = True
                out.append(self._ev(f"response.{final['status']}", response=final))
            elif isinstance(e, core.Failed):
                out.append(self.fail(e.error))
        return b"".join(out)

    def fail(self, exc: BaseException) -> bytes:
        if self.ended:
            return b""
        self.ended = True
        out = self._close()
        code = getattr(exc, "code", None) or "server_error"
        r = self.b.response("failed", self.output, error={"code": code, "message": str(
            getattr(exc, "message", exc))})
        return out + self._ev("response.failed", response=r)
