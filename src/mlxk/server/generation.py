"""Chat and text completions: admit a request into its model's batch, then stream or collect.

Everything that can fail before the first byte (unknown model, bad fields,
oversize prompt, full queue) raises here, so the client gets a proper status
code; errors after streaming began travel as an SSE ``error`` event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from mlxk.errors import MlxkError, ValidationError
from mlxk.server import features, images, responses, sse
from mlxk.server.errors import mlxk_error_body
from mlxk.server.pool import ModelEntry, ModelPool
from mlxk.server.responses import Reply
from mlxk.server.schemas import ChatCompletionRequest, CompletionRequest

DISCONNECT_POLL_S = 1.0


@dataclass
class Session:
    pool: ModelPool
    entry: ModelEntry
    handle: Any
    reply: Reply
    include_usage: bool
    tokenizer: Any
    released: bool = False

    def close(self) -> None:
        if not self.released:
            self.released = True
            self.entry.scheduler.cancel(self.handle)
            self.pool.release(self.entry)


@dataclass
class Collected:
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    final: Any = None


def _prepare(prepare: Any, lm: Any, greq: Any) -> Any:
    try:
        return prepare(lm, greq)
    except MlxkError:
        raise
    except Exception as exc:  # template errors, bad roles ...: the request's fault
        raise ValidationError(f"could not build the prompt: {exc}", param="messages") from exc


def _check_context(lm: Any, prepared: Any, requested_max: int | None, param: str) -> None:
    ctx = getattr(lm, "context_length", None)
    n = len(prepared.prompt_tokens)
    if n == 0:
        raise ValidationError("the prompt is empty", param=param)
    if ctx and n >= ctx:
        raise ValidationError(f"the prompt is {n} tokens; this model's context length is {ctx}",
                              param=param, code="context_length_exceeded")
    if ctx and requested_max and n + requested_max > ctx:
        raise ValidationError(f"prompt ({n} tokens) + max_tokens ({requested_max}) exceeds this "
                              f"model's context length ({ctx})", param="max_tokens",
                              code="context_length_exceeded")


def _check_bias(lm: Any, req: Any) -> None:
    vocab = (getattr(lm, "config", None) or {}).get("vocab_size")
    if req.logit_bias and vocab:
        bad = [k for k in req.logit_bias if int(k) >= int(vocab)]
        if bad:
            raise ValidationError(f"logit_bias token id {bad[0]} is outside the vocabulary",
                                  param="logit_bias")


async def start(pool: ModelPool, req: ChatCompletionRequest | CompletionRequest, kind: str) -> Session:
    entry = await pool.acquire(req.model)
    try:
        lm = entry.lm
        if kind == "chat":
            greq = features.chat_request(req, lm)  # type: ignore[arg-type]
            # In a thread: images are decoded (or, with --allow-image-urls, fetched) here.
            greq = await asyncio.to_thread(images.resolve, greq, lm,
                                           allow_urls=pool.settings.allow_image_urls)
            param, requested = "messages", req.max_completion_tokens or req.max_tokens  # type: ignore[union-attr]
        else:
            greq = features.completion_request(req, lm)  # type: ignore[arg-type]
            param, requested = "prompt", req.max_tokens
        _check_bias(lm, req)
        prepared = await asyncio.to_thread(_prepare, pool.prepare, lm, greq)
        _check_context(lm, prepared, requested, param)
        handle = entry.scheduler.submit(prepared, sampling=greq.sampling, top_logprobs=greq.logprobs,
                                        extra_processors=features.extra_processors(req))
    except BaseException as exc:
        if isinstance(exc, MlxkError) and exc.code == "server_busy":
            pool.metrics.rejected.labels(entry.key).inc()
        pool.release(entry)
        raise
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    return Session(pool, entry, handle, Reply(kind, entry.key), include_usage,
                   getattr(lm, "tokenizer", None))


def _drain(queue: asyncio.Queue, first: Any) -> list[Any]:
    items = [first]
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


async def _events(s: Session) -> AsyncIterator[bytes]:
    chat = s.reply.kind == "chat"
    n_tools = 0
    try:
        if chat:
            yield sse.event(s.reply.envelope([{"index": 0, "delta": {"role": "assistant", "content": ""},
                                               "logprobs": None, "finish_reason": None}]))
        while True:
            out: list[bytes] = []
            for item in _drain(s.handle.queue, await s.handle.queue.get()):
                if isinstance(item, BaseException):
                    body = mlxk_error_body(item)[1] if isinstance(item, MlxkError) else \
                        {"error": {"message": str(item), "type": "server_error", "param": None,
                                   "code": "InternalError"}}
                    yield b"".join(out) + sse.error_event(body)
                    return
                c = item.chunk
                if chat:
                    delta: dict[str, Any] = {}
                    if c.reasoning:
                        delta["reasoning_content"] = c.reasoning
                    if c.text:
                        delta["content"] = c.text
                    if c.tool_calls:
                        delta["tool_calls"] = responses.tool_call_deltas(c.tool_calls, n_tools)
                        n_tools += len(c.tool_calls)
                    lp = responses.chat_logprobs(item.logprobs, s.tokenizer) if item.logprobs else None
                    if delta or lp:
                        out.append(sse.event(s.reply.envelope(
                            [{"index": 0, "delta": delta, "logprobs": lp, "finish_reason": None}])))
                elif c.text or item.logprobs:
                    lp = responses.text_logprobs(item.logprobs, s.tokenizer) if item.logprobs else None
                    out.append(sse.event(s.reply.envelope(
                        [{"index": 0, "text": c.text, "logprobs": lp, "finish_reason": None}])))
                if c.finish_reason is not None:
                    finish = {"index": 0, "logprobs": None, "finish_reason": c.finish_reason}
                    finish.update({"delta": {}} if chat else {"text": ""})
                    out.append(sse.event(s.reply.envelope([finish])))
                    if s.include_usage:
                        out.append(sse.event(s.reply.envelope(
                            [], usage=responses.usage(c.prompt_tokens, c.completion_tokens))))
                    out.append(sse.DONE)
                    yield b"".join(out)
                    return
            if out:
                yield b"".join(out)
    finally:
        s.close()


async def _collect(s: Session, request: Request) -> Collected:
    got = Collected()
    queue = s.handle.queue
    while got.final is None:
        try:
            first = await asyncio.wait_for(queue.get(), DISCONNECT_POLL_S)
        except asyncio.TimeoutError:
            if await request.is_disconnected():
                raise asyncio.CancelledError from None
            continue
        for item in _drain(queue, first):
            if isinstance(item, BaseException):
                raise item
            c = item.chunk
            got.text.append(c.text)
            got.reasoning.append(c.reasoning)
            if c.tool_calls:
                got.tool_calls.extend(c.tool_calls)
            if item.logprobs:
                got.logprobs.extend(item.logprobs)
            if c.finish_reason is not None:
                got.final = c
    return got


async def respond(pool: ModelPool, req: ChatCompletionRequest | CompletionRequest, kind: str,
                  request: Request) -> StreamingResponse | JSONResponse:
    s = await start(pool, req, kind)
    if req.stream:
        return StreamingResponse(_events(s), media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)
    try:
        got = await _collect(s, request)
    finally:
        s.close()
    c = got.final
    use = responses.usage(c.prompt_tokens, c.completion_tokens)
    want_lp = req.logprobs is not None and req.logprobs is not False
    if kind == "chat":
        lp = responses.chat_logprobs(got.logprobs, s.tokenizer) if want_lp else None
        body = responses.chat_completion(s.reply, "".join(got.text), "".join(got.reasoning),
                                         got.tool_calls, c.finish_reason, use, lp)
    else:
        lp = responses.text_logprobs(got.logprobs, s.tokenizer) if want_lp else None
        body = responses.text_completion(s.reply, "".join(got.text), c.finish_reason, use, lp)
    return JSONResponse(body)
