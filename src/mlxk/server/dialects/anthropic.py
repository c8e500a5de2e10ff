"""Anthropic Messages (``POST /v1/messages``) <-> the core.

Request: ``system`` (a string or text blocks; ``cache_control`` accepted and ignored),
``messages`` with blocks ``text``, ``tool_use``, ``tool_result`` (string or text blocks,
``is_error``), ``thinking``/``redacted_thinking`` from earlier turns (dropped: the model
does not need its old reasoning); ``image`` blocks go to vision models (base64; a ``url``
source only with ``serve --allow-image-urls``), ``document`` blocks are a 400. ``tools`` with
``input_schema`` (server tools such as ``web_search_*`` are a 400 naming the type),
``tool_choice`` ``auto``/``any``/``tool``/``none`` (``any`` and ``tool`` are enforced by
the grammar), ``output_config.format`` (a JSON schema, enforced), ``stop_sequences``,
``temperature``/``top_p``/``top_k``. Fields Anthropic's clients add that do not change
generation (``metadata``, ``service_tier``, ``context_management`` ...) are accepted and
ignored. ``thinking`` turns the chat template's reasoning switch (``enable_thinking``) on
(``enabled``/``adaptive``) or off (``disabled``) where the template has one; the
``budget_tokens`` of ``enabled`` is enforced on ``<think>`` models (after that many thinking
tokens ``</think>`` is forced and the answer follows) and ignored by models without one.

Usage follows Anthropic's split: ``input_tokens`` are the prompt tokens computed for
this request, ``cache_read_input_tokens`` the ones served from the prefix cache; their
sum is the prompt size, which is what ``count_tokens`` returns.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlxk.engine.types import GenerationRequest
from mlxk.errors import ValidationError
from mlxk.server import core, images
from mlxk.server.dialects import ANTHROPIC, anthropic_error
from mlxk.server.dialects.common import (
    arguments_obj,
    checked_tools,
    function_tool,
    named_event,
    refuse,
    sampling,
    stops,
    text_of,
)

STOP_REASONS = {"length": "max_tokens", "tool_calls": "tool_use"}
PING = named_event("ping", {"type": "ping"})


class MessagesRequest(BaseModel):
    """The fields we read; others are accepted (clients send beta fields) and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(max_length=512)
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    stream: bool = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class CountTokensRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(max_length=512)
    messages: list[dict[str, Any]] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None


# --- request -----------------------------------------------------------------------------------

def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not all(isinstance(b, dict) for b in content):
        raise ValidationError(f"{where}.content must be a string or a list of blocks", param=where)
    return content


def _tool_result_text(block: dict[str, Any], where: str) -> str:
    text = text_of(block.get("content"), where)
    return f"Error: {text}" if block.get("is_error") else text


def _user_turn(blocks: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    text: list[str] = []
    parts: list[dict[str, Any]] = []     # text and images in order, when there are images
    for j, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "text":
            text.append(str(block.get("text", "")))
            parts.append({"type": "text", "text": text[-1]})
        elif kind == "image":
            parts.append(images.anthropic_image(block, f"{where}.content[{j}]"))
        elif kind == "tool_result":
            if not isinstance(block.get("tool_use_id"), str):
                raise ValidationError(f"{where}: tool_result needs a tool_use_id", param=where)
            out.append({"role": "tool", "tool_call_id": block["tool_use_id"],
                        "content": _tool_result_text(block, where)})
        else:
            raise refuse(where, f"content block type {kind!r} is not supported here")
    if len(parts) > len(text):
        out.append({"role": "user", "content": parts})
    elif text:
        out.append({"role": "user", "content": "".join(text)})
    return out


def _assistant_turn(blocks: list[dict[str, Any]], where: str) -> dict[str, Any]:
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            text.append(str(block.get("text", "")))
        elif kind == "tool_use":
            if not isinstance(block.get("name"), str) or not isinstance(block.get("id"), str):
                raise ValidationError(f"{where}: tool_use needs an id and a name", param=where)
            calls.append({"id": block["id"], "type": "function",
                          "function": {"name": block["name"],
                                       "arguments": json.dumps(block.get("input") or {})}})
        elif kind not in ("thinking", "redacted_thinking"):
            raise refuse(where, f"content block type {kind!r} is not supported here")
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(text)}
    if calls:
        msg["tool_calls"] = calls
    return msg


def chat_messages(system: Any, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if system:
        out.append({"role": "system", "content": text_of(system, "system")})
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        role = m.get("role")
        blocks = _blocks(m.get("content"), where)
        if role == "user":
            out += _user_turn(blocks, where)
        elif role == "assistant":
            out.append(_assistant_turn(blocks, where))
        else:
            raise ValidationError(f"{where}.role must be 'user' or 'assistant'", param=where)
    return out


def _tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if not tools:
        return None
    out = []
    for i, t in enumerate(tools):
        if not isinstance(t, dict):
            raise ValidationError(f"tools[{i}] must be an object", param="tools")
        kind = t.get("type")
        if kind not in (None, "custom"):
            raise refuse("tools", f"tools[{i}]: tool type {kind!r} is a server tool this "
                                  "server cannot run (only client tools with input_schema)")
        out.append(function_tool(t.get("name"), t.get("description"), t.get("input_schema"),
                                 "tools"))
    return out


def tool_choice(choice: dict[str, Any] | None) -> tuple[Any, bool]:
    """Anthropic ``tool_choice`` -> (OpenAI-style choice, parallel calls allowed)."""
    if choice is None:
        return None, True
    parallel = not choice.get("disable_parallel_tool_use", False)
    kind = choice.get("type")
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", parallel
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}, parallel
    raise ValidationError("tool_choice.type must be auto, any, tool or none", param="tool_choice")


def _response_format(output_config: dict[str, Any] | None) -> dict[str, Any] | None:
    fmt = (output_config or {}).get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" \
            or not isinstance(fmt.get("schema"), dict):
        raise ValidationError('output_config.format must be {"type": "json_schema", "schema": {...}}',
                              param="output_config.format")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt["schema"]}}


def reasoning(thinking: dict[str, Any] | None) -> bool | None:
    """``thinking`` -> the template's switch: enabled/adaptive on, disabled off, absent: default."""
    if thinking is None:
        return None
    kind = thinking.get("type")
    if kind not in ("enabled", "adaptive", "disabled"):
        raise ValidationError("thinking.type must be enabled, adaptive or disabled", param="thinking")
    return kind != "disabled"


def thinking_budget(thinking: dict[str, Any] | None) -> int | None:
    """``thinking.budget_tokens`` of an ``enabled`` block: enforced on ``<think>`` models
    (``engine/thinking.py``), accepted and without effect on others. Any whole number >= 1
    (Anthropic's minimum of 1024 is not required: small local models think in fewer)."""
    if not thinking or thinking.get("type") != "enabled" or thinking.get("budget_tokens") is None:
        return None
    budget = thinking["budget_tokens"]
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValidationError("thinking.budget_tokens must be a whole number >= 1",
                              param="thinking.budget_tokens")
    return budget


def to_core(req: MessagesRequest | CountTokensRequest) -> core.CoreRequest:
    tools = _tools(req.tools)
    choice, parallel = tool_choice(req.tool_choice)
    if choice is not None and choice != "none" and not tools:
        raise ValidationError("tool_choice requires tools", param="tool_choice")
    if tools:
        checked_tools(tools, choice, "tool_choice")
    use_tools = tools if choice != "none" else None
    full = isinstance(req, MessagesRequest)
    gen = GenerationRequest(
        messages=chat_messages(req.system, req.messages),
        sampling=sampling(req.temperature, req.top_p, req.top_k) if full else sampling(),
        max_tokens=req.max_tokens if full else None,
        stop=stops(req.stop_sequences, "stop_sequences") if full else (),
        tools=use_tools, tool_choice=choice if use_tools else None,
        response_format=_response_format(req.output_config), parallel_tool_calls=parallel,
        reasoning=reasoning(req.thinking), reasoning_budget=thinking_budget(req.thinking))
    return core.CoreRequest(model=req.model, gen=gen, dialect=ANTHROPIC)


# --- response ----------------------------------------------------------------------------------

def new_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


def tool_use_id(call_id: str) -> str:
    return call_id if call_id.startswith("toolu_") else "toolu_" + call_id.removeprefix("call_")


def stop_reason(done: core.Finished) -> tuple[str, str | None]:
    if done.stop_sequence is not None:
        return "stop_sequence", done.stop_sequence
    return STOP_REASONS.get(done.reason, "end_turn"), None


def usage(done: core.Finished) -> dict[str, Any]:
    return {"input_tokens": done.prompt_tokens - done.cached_tokens,
            "output_tokens": done.completion_tokens,
            "cache_read_input_tokens": done.cached_tokens, "cache_creation_input_tokens": 0}


def tool_use_block(call: core.ToolCall) -> dict[str, Any]:
    args = arguments_obj(call.arguments)
    return {"type": "tool_use", "id": tool_use_id(call.id), "name": call.name,
            "input": args if isinstance(args, dict) else {"input": args}}


def message(msg_id: str, model: str, result: core.Result) -> dict[str, Any]:
    done = result.finished
    assert done is not None
    content: list[dict[str, Any]] = []
    if result.reasoning:
        content.append({"type": "thinking", "thinking": result.reasoning, "signature": ""})
    if result.text or not (content or result.tool_calls):
        content.append({"type": "text", "text": result.text})
    content += [tool_use_block(c) for c in result.tool_calls]
    reason, seq = stop_reason(done)
    return {"id": msg_id, "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": reason, "stop_sequence": seq, "usage": usage(done)}


class StreamWriter:
    """Core events -> Anthropic's SSE sequence (message_start ... message_stop)."""

    def __init__(self, msg_id: str, model: str, prompt_tokens: int) -> None:
        self.msg_id, self.model, self.prompt_tokens = msg_id, model, prompt_tokens
        self.index = -1
        self.open: str | None = None    # type of the open content block

    def start(self) -> bytes:
        msg = {"id": self.msg_id, "type": "message", "role": "assistant", "model": self.model,
               "content": [], "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": self.prompt_tokens, "output_tokens": 0}}
        return named_event("message_start", {"type": "message_start", "message": msg}) + PING

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        self.open = None
        return named_event("content_block_stop", {"type": "content_block_stop", "index": self.index})

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self.index += 1
        self.open = kind
        return out + named_event("content_block_start", {"type": "content_block_start",
                                                         "index": self.index, "content_block": block})

    def _delta(self, kind: str, block: dict[str, Any], delta: dict[str, Any]) -> bytes:
        out = self._open(kind, block) if self.open != kind else b""
        return out + named_event("content_block_delta", {"type": "content_block_delta",
                                                         "index": self.index, "delta": delta})

    def feed(self, events: list[core.Event]) -> bytes:
        if not events:
            return PING
        out: list[bytes] = []
        for e in events:
            if isinstance(e, core.ReasoningDelta):
                out.append(self._delta("thinking", {"type": "thinking", "thinking": "", "signature": ""},
                                       {"type": "thinking_delta", "thinking": e.text}))
            elif isinstance(e, core.TextDelta):
                out.append(self._delta("text", {"type": "text", "text": ""},
                                       {"type": "text_delta", "text": e.text}))
            elif isinstance(e, core.ToolCall):
                block = {**tool_use_block(e), "input": {}}
                out.append(self._open("tool_use", block))
                out.append(named_event("content_block_delta", {
                    "type": "content_block_delta", "index": self.index,
                    "delta": {"type": "input_json_delta",
                              "partial_json": json.dumps(tool_use_block(e)["input"])}}))
                out.append(self._close())
            elif isinstance(e, core.Finished):
                reason, seq = stop_reason(e)
                out.append(self._close())
                out.append(named_event("message_delta", {
                    "type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": seq},
                    "usage": usage(e)}))
                out.append(named_event("message_stop", {"type": "message_stop"}))
            elif isinstance(e, core.Failed):
                out.append(self.error(e.error))
        return b"".join(out)

    @staticmethod
    def error(exc: BaseException) -> bytes:
        status = int(getattr(exc, "http_status", 500))
        return named_event("error", anthropic_error(status, getattr(exc, "message", str(exc))))
