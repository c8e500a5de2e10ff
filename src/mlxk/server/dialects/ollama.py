"""Ollama's API (``/api/chat``, ``/api/generate``, ``/api/embed`` ...) <-> the core.

Names: the cached repo id is the model name; ``name:latest`` is accepted as ``name``
(any other tag is a 404: the cache has no tags). ``options`` map onto sampling
(``temperature``, ``top_p``, ``top_k``, ``min_p``, ``seed``, ``repeat_penalty``,
``presence_penalty``, ``frequency_penalty``), ``num_predict`` (max tokens; negative:
as much as fits), ``stop`` and ``num_ctx`` (a cap on prompt + output); other options
are ignored, as Ollama does. ``think`` turns the chat template's reasoning switch on or off
where it has one. ``format`` is ``"json"`` or a JSON schema, enforced by
constrained decoding. ``images`` (base64 strings, on a chat message or a generate request) go
to vision models. Streaming (the default) is NDJSON; the final object carries
``done_reason`` and measured durations in nanoseconds. ``logprobs: true`` (and
``top_logprobs``: 0-20 alternatives; either turns them on) adds ``logprobs`` (``token``,
``logprob``, ``bytes``, ``top_logprobs``) for the tokens of each piece, as Ollama 0.12 does.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlxk.duration import parse_keep_alive
from mlxk.engine.types import GenerationRequest
from mlxk.errors import ModelNotFound, ValidationError
from mlxk.server import core, images, responses
from mlxk.server.dialects import OLLAMA
from mlxk.server.dialects.common import (
    arguments_obj,
    arguments_text,
    checked_tools,
    dumps,
    function_tool,
    refuse,
    sampling,
    stops,
)

MEDIA_TYPE = "application/x-ndjson"
REFUSED = {  # route -> what to use instead (no client may make the server download or delete)
    "pull": "run `mlxk pull <model>` on the server's machine",
    "push": "run `mlxk push <dir> <repo>` on the server's machine",
    "create": "run `mlxk convert` on the server's machine",
    "copy": "models are named by their HuggingFace repo id; there are no copies to make",
    "delete": "run `mlxk rm <model>` on the server's machine",
}


class _Base(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=512)
    options: dict[str, Any] | None = None
    keep_alive: float | str | None = None


class _Generating(_Base):
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)

    @property
    def top(self) -> int | None:
        """Top-k alternatives per token, or None: no logprobs."""
        if self.logprobs or self.top_logprobs is not None:
            return self.top_logprobs or 0
        return None


class ChatRequest(_Generating):
    messages: list[dict[str, Any]] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    format: str | dict[str, Any] | None = None
    stream: bool = True
    think: bool | str | None = None


class GenerateRequest(_Generating):
    prompt: str | None = None
    system: str | None = None
    suffix: str | None = None
    template: str | None = None
    raw: bool = False
    images: list[str] | None = None
    context: list[int] | None = None
    format: str | dict[str, Any] | None = None
    stream: bool = True
    think: bool | str | None = None


class EmbedRequest(_Base):
    input: str | list[str]
    truncate: bool = True
    dimensions: int | None = Field(default=None, ge=1)


class LegacyEmbeddingsRequest(_Base):
    prompt: str


class ModelRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = Field(default=None, max_length=512)
    name: str | None = Field(default=None, max_length=512)
    verbose: bool | None = None

    @property
    def ref(self) -> str:
        ref = self.model or self.name
        if not ref:
            raise ValidationError("'model' is required", param="model")
        return model_name(ref)


# --- request -----------------------------------------------------------------------------------

def model_name(name: str) -> str:
    """``org/name:latest`` -> ``org/name``; other tags do not exist in a HuggingFace cache."""
    base, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:
        return name
    if tag != "latest":
        raise ModelNotFound(f"model '{name}' not found (the cache has no tags; use '{base}')")
    return base


def keep_alive_seconds(value: float | str | None) -> float | None:
    """Ollama's ``keep_alive`` (seconds, or a Go duration such as ``"5m"``; negative: forever)
    in seconds, ``duration.NEVER`` for forever; None when absent. One parser: ``mlxk.duration``."""
    return None if value is None else parse_keep_alive(value)


def _num(opts: dict[str, Any], key: str, kind: type = float) -> Any:
    value = opts.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"options.{key} must be a number", param=f"options.{key}")
    return kind(value)


def _max_tokens(opts: dict[str, Any]) -> int | None:
    n = _num(opts, "num_predict", int)
    return None if n is None or n < 0 else max(1, n)


def _response_format(fmt: Any) -> dict[str, Any] | None:
    if fmt in (None, ""):
        return None
    if fmt == "json":
        return {"type": "json_object"}
    if isinstance(fmt, dict):
        return {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt}}
    raise ValidationError('format must be "json" or a JSON schema object', param="format")


def _tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if not tools:
        return None
    out = []
    for i, t in enumerate(tools):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(fn, dict) or t.get("type", "function") != "function":
            raise refuse("tools", f"tools[{i}] must be a function tool")
        out.append(function_tool(fn.get("name"), fn.get("description"), fn.get("parameters"),
                                 "tools"))
    return checked_tools(out, "auto", "tools")


def chat_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    pending: dict[str, list[str]] = {}    # tool name -> ids of calls not yet answered
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        role = m.get("role")
        content = m.get("content") or ""
        if role not in ("system", "user", "assistant", "tool") or not isinstance(content, str):
            raise ValidationError(f"{where}: role must be system, user, assistant or tool and "
                                  "content a string", param="messages")
        msg: dict[str, Any] = {"role": role, "content": content}
        if m.get("images"):
            msg["content"] = images.with_text(images.ollama_images(m["images"], f"{where}.images"),
                                              content)
        if role == "assistant" and m.get("tool_calls"):
            calls = []
            for j, call in enumerate(m["tool_calls"]):
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    raise ValidationError(f"{where}.tool_calls[{j}] needs function.name",
                                          param="messages")
                call_id = f"call_{i}_{j}"
                pending.setdefault(fn["name"], []).append(call_id)
                calls.append({"id": call_id, "type": "function",
                              "function": {"name": fn["name"],
                                           "arguments": arguments_text(fn.get("arguments") or {})}})
            msg["tool_calls"] = calls
        if role == "tool":
            ids = pending.get(str(m.get("tool_name") or ""), [])
            msg["tool_call_id"] = ids.pop(0) if ids else f"call_{i}"
        out.append(msg)
    return out


def reasoning(think: bool | str | None) -> bool | None:
    """``think``: true/false, or a level (``"low"``/``"medium"``/``"high"``: on)."""
    if think is None or isinstance(think, bool):
        return think
    if think not in ("low", "medium", "high"):
        raise ValidationError("think must be true, false, 'low', 'medium' or 'high'", param="think")
    return True


def _core(model: str, messages: list[dict[str, Any]] | None, prompt: str | None,
          options: dict[str, Any] | None, fmt: Any, keep_alive: Any,
          tools: list[dict[str, Any]] | None = None, think: bool | str | None = None) -> core.CoreRequest:
    opts = options or {}
    if not isinstance(opts, dict):
        raise ValidationError("options must be an object", param="options")
    gen = GenerationRequest(
        messages=messages, prompt=prompt, use_chat_template=messages is not None,
        sampling=sampling(_num(opts, "temperature"), _num(opts, "top_p"), _num(opts, "top_k", int),
                          _num(opts, "min_p"), _num(opts, "repeat_penalty"), _num(opts, "seed", int)),
        max_tokens=_max_tokens(opts), stop=stops(opts.get("stop"), "options.stop"),
        tools=tools, tool_choice="auto" if tools else None, response_format=_response_format(fmt),
        reasoning=reasoning(think))
    ctx = _num(opts, "num_ctx", int)
    return core.CoreRequest(model=model_name(model), gen=gen, dialect=OLLAMA,
                            prompt_param="messages" if messages is not None else "prompt",
                            max_param="options.num_predict",
                            presence_penalty=_num(opts, "presence_penalty"),
                            frequency_penalty=_num(opts, "frequency_penalty"),
                            context_cap=ctx if ctx and ctx > 0 else None,
                            keep_alive=keep_alive_seconds(keep_alive))


def chat_to_core(req: ChatRequest) -> core.CoreRequest:
    return _core(req.model, chat_messages(req.messages), None, req.options, req.format,
                 req.keep_alive, _tools(req.tools), req.think)


def generate_to_core(req: GenerateRequest) -> core.CoreRequest:
    if req.suffix:
        raise refuse("suffix", "suffix (fill-in-the-middle) is not supported")
    if req.template:
        raise refuse("template", "template overrides are not supported (the model's own chat "
                                 "template is used; send raw: true to bypass it)")
    if req.context:
        raise refuse("context", "context (token history) is not supported; send the text")
    prompt = req.prompt or ""
    if req.raw and req.images:
        raise refuse("images", "images need the chat template (raw: true bypasses it)")
    if req.raw:
        return _core(req.model, None, (req.system or "") + prompt, req.options, req.format,
                     req.keep_alive)
    messages = [{"role": "system", "content": req.system}] if req.system else []
    messages.append({"role": "user", "content": images.with_text(
        images.ollama_images(req.images, "images") if req.images else [], prompt)})
    return _core(req.model, messages, None, req.options, req.format, req.keep_alive, None,
                 req.think)


def with_logprobs(creq: core.CoreRequest, req: ChatRequest | GenerateRequest) -> core.CoreRequest:
    """``logprobs`` / ``top_logprobs`` of ``req`` onto its core request."""
    creq.gen = dataclasses.replace(creq.gen, logprobs=req.top)
    return creq


# --- response ----------------------------------------------------------------------------------

def logprobs(entries: list[core.LogprobEntry], tokenizer: Any) -> list[dict[str, Any]]:
    """Ollama's ``logprobs``: ``token``, ``logprob``, ``bytes``, ``top_logprobs`` per token."""
    return responses.chat_logprobs(entries, tokenizer)["content"]


def now_iso() -> str:
    return iso(time.time())


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="microseconds") \
        .replace("+00:00", "Z")


def tool_calls(calls: list[core.ToolCall]) -> list[dict[str, Any]]:
    return [{"function": {"index": c.index, "name": c.name, "arguments": arguments_obj(c.arguments)}}
            for c in calls]


def stats(done: core.Finished) -> dict[str, Any]:
    t = done.timings
    return {"done": True, "done_reason": "length" if done.reason == "length" else "stop",
            "total_duration": t.total_ns, "load_duration": t.load_ns,
            "prompt_eval_count": done.prompt_tokens, "prompt_eval_duration": t.prompt_eval_ns,
            "eval_count": done.completion_tokens, "eval_duration": t.eval_ns}


def chat_message(text: str, reasoning: str, calls: list[core.ToolCall]) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": text}
    if reasoning:
        msg["thinking"] = reasoning
    if calls:
        msg["tool_calls"] = tool_calls(calls)
    return msg


def _logprobs_of(result: core.Result, tokenizer: Any) -> dict[str, Any]:
    """``{"logprobs": [...]}`` when they were asked for (every sampled token, thinking too)."""
    if tokenizer is None:
        return {}
    return {"logprobs": logprobs([*result.reasoning_logprobs, *result.logprobs], tokenizer)}


def chat_response(model: str, result: core.Result, tokenizer: Any = None) -> dict[str, Any]:
    """The whole chat answer; ``tokenizer`` given: with ``logprobs``."""
    assert result.finished is not None
    return {"model": model, "created_at": now_iso(),
            "message": chat_message(result.text, result.reasoning, result.tool_calls),
            **_logprobs_of(result, tokenizer), **stats(result.finished)}


def generate_response(model: str, result: core.Result, tokenizer: Any = None) -> dict[str, Any]:
    """The whole generate answer; ``tokenizer`` given: with ``logprobs``."""
    assert result.finished is not None
    body: dict[str, Any] = {"model": model, "created_at": now_iso(), "response": result.text}
    if result.reasoning:
        body["thinking"] = result.reasoning
    return {**body, **_logprobs_of(result, tokenizer), **stats(result.finished)}


class StreamWriter:
    """Core events -> NDJSON lines (``done: false`` pieces, then the final ``done: true``)."""

    def __init__(self, model: str, chat: bool, tokenizer: Any = None) -> None:
        self.model, self.chat = model, chat
        self.tokenizer = tokenizer        # given: lines carry the logprobs of their tokens

    def _line(self, text: str = "", reasoning: str = "", calls: list[core.ToolCall] | None = None,
              final: dict[str, Any] | None = None,
              entries: list[core.LogprobEntry] | None = None) -> bytes:
        body: dict[str, Any] = {"model": self.model, "created_at": now_iso()}
        if self.chat:
            body["message"] = chat_message(text, reasoning, calls or [])
        else:
            body["response"] = text
            if reasoning:
                body["thinking"] = reasoning
        if self.tokenizer is not None and entries:
            body["logprobs"] = logprobs(entries, self.tokenizer)
        body.update(final or {"done": False})
        return dumps(body) + b"\n"

    def feed(self, events: list[core.Event]) -> bytes:
        text: list[str] = []
        reasoning: list[str] = []
        calls: list[core.ToolCall] = []
        entries: list[core.LogprobEntry] = []
        out: list[bytes] = []
        for e in events:
            if isinstance(e, core.TextDelta):
                text.append(e.text)
                entries += e.logprobs
            elif isinstance(e, core.ReasoningDelta):
                reasoning.append(e.text)
                entries += e.logprobs
            elif isinstance(e, core.ToolCall):
                calls.append(e)
            elif isinstance(e, core.Finished):
                if text or reasoning or calls or entries:
                    out.append(self._line("".join(text), "".join(reasoning), calls, entries=entries))
                    text, reasoning, calls, entries = [], [], [], []
                out.append(self._line(final=stats(e)))
            elif isinstance(e, core.Failed):
                out.append(dumps({"error": getattr(e.error, "message", str(e.error))}) + b"\n")
        if text or reasoning or calls or entries:
            out.insert(0, self._line("".join(text), "".join(reasoning), calls, entries=entries))
        return b"".join(out)
