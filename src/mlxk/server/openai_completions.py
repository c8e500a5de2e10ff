"""OpenAI chat and text completions on the generation core: the request's ``Plan``,
the SSE chunks and the response bodies.

OpenAI specifics live here: ``n`` choices (``choices[].index``; usage counts the
prompt once), the completions prompt forms (one choice per prompt, in order) and
``echo`` (the prompt text first; with ``logprobs``, the prompt tokens' logprobs,
the first one ``null``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import JSONResponse, Response

from mlxk.engine.text.decoder import token_pieces
from mlxk.engine.types import LoadedModel
from mlxk.errors import MlxkError
from mlxk.server import features, generation, responses, sse
from mlxk.server.errors import mlxk_error_body
from mlxk.server.generation import Collected, Plan, Session, SessionStream
from mlxk.server.responses import Reply
from mlxk.server.schemas import ChatCompletionRequest, CompletionRequest


def chat_plan(req: ChatCompletionRequest, lm: LoadedModel) -> Plan:
    greq = features.chat_request(req, lm)
    return Plan([greq], n=req.n or 1, top_logprobs=greq.logprobs,
                extra_processors=lambda: features.extra_processors(req), param="messages",
                requested_max=req.max_completion_tokens or req.max_tokens)


def completion_plan(req: CompletionRequest, lm: LoadedModel) -> Plan:
    greqs = features.completion_requests(req, lm)
    return Plan(greqs, n=req.n or 1, top_logprobs=req.logprobs,
                prompt_logprobs=req.logprobs if req.echo else None,
                extra_processors=lambda: features.extra_processors(req), param="prompt",
                requested_max=req.max_tokens)


async def respond(pool: Any, req: ChatCompletionRequest | CompletionRequest, kind: str) -> Response:
    if kind == "chat":
        s = await generation.start(pool, req.model, lambda lm: chat_plan(req, lm))  # type: ignore[arg-type]
    else:
        s = await generation.start(pool, req.model, lambda lm: completion_plan(req, lm))  # type: ignore[arg-type]
    reply = Reply(kind, s.entry.key)
    echo = kind == "text" and bool(getattr(req, "echo", False))
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return SessionStream(_events(s, reply, include_usage, echo), s)
    try:
        got = await generation.collect(s)
    finally:
        s.close()
    want_lp = req.logprobs is not None and req.logprobs is not False
    return JSONResponse(_body(s, reply, got, want_lp, echo))


# --- echo ---------------------------------------------------------------------------

def _prompt_text(s: Session, index: int) -> str:
    prepared = s.handles[index].prepared
    return getattr(prepared, "prompt_text", "") or ""


def _prompt_entries(s: Session, index: int, scored: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    """The prompt tokens as logprob entries (text, logprob, top); the first has no logprob."""
    tokens = list(s.handles[index].prepared.prompt_tokens)
    pieces = token_pieces(s.tokenizer, tokens)
    out = []
    for tok, piece, e in zip(tokens, pieces, scored, strict=False):
        if e is None:
            out.append({"id": tok, "text": piece, "logprob": None, "top": None})
        else:
            out.append({**e, "text": piece})
    return out


# --- non-streaming ------------------------------------------------------------------

def _body(s: Session, reply: Reply, got: list[Collected], want_lp: bool, echo: bool) -> dict[str, Any]:
    use = responses.usage(s.prompt_tokens, sum(g.final.completion_tokens for g in got))
    choices = []
    for i, g in enumerate(got):
        c = g.final
        if reply.kind == "chat":
            lp = responses.chat_logprobs(g.logprobs, s.tokenizer) if want_lp else None
            choices.append(responses.chat_choice(i, "".join(g.text), "".join(g.reasoning),
                                                 g.tool_calls, c.finish_reason, lp))
            continue
        text = "".join(g.text)
        entries = g.logprobs
        if echo:
            text = _prompt_text(s, i) + text
            if want_lp:
                entries = _prompt_entries(s, i, g.prompt_logprobs or []) + entries
        lp = responses.text_logprobs(entries, s.tokenizer) if want_lp else None
        choices.append(responses.text_choice(i, text, c.finish_reason, lp))
    if reply.kind == "chat":
        return responses.chat_completion(reply, choices, use)
    return responses.text_completion(reply, choices, use)


# --- streaming ----------------------------------------------------------------------

class _Stream:
    """Per-choice state of one streamed reply."""

    def __init__(self, s: Session, reply: Reply, echo: bool) -> None:
        self.s, self.reply, self.echo = s, reply, echo
        self.chat = reply.kind == "chat"
        n = len(s.handles)
        self.n_tools = [0] * n
        self.offsets = [0] * n           # text_offset of the next token, per choice
        self.finals: dict[int, Any] = {}

    def event(self, choice: dict[str, Any]) -> bytes:
        return sse.event(self.reply.envelope([choice]))

    def opening(self) -> list[bytes]:
        """Role chunks (chat) or the echoed prompts (completions without prompt logprobs)."""
        n = len(self.s.handles)
        if self.chat:
            return [self.event({"index": i, "delta": {"role": "assistant", "content": ""},
                                "logprobs": None, "finish_reason": None}) for i in range(n)]
        if self.echo and self.s.plan.prompt_logprobs is None:
            return [self.text_event(i, _prompt_text(self.s, i), None) for i in range(n)]
        return []

    def text_event(self, i: int, text: str, entries: list[dict[str, Any]] | None) -> bytes:
        lp = None
        if entries is not None:
            lp = responses.text_logprobs(entries, self.s.tokenizer, self.offsets[i])
            self.offsets[i] += sum(len(t) for t in lp["tokens"])
        return self.event({"index": i, "text": text, "logprobs": lp, "finish_reason": None})

    def item(self, item: Any) -> list[bytes]:
        i, c = item.index, item.chunk
        out: list[bytes] = []
        if item.prompt_logprobs is not None and self.echo:
            out.append(self.text_event(i, _prompt_text(self.s, i),
                                       _prompt_entries(self.s, i, item.prompt_logprobs)))
        if self.chat:
            delta: dict[str, Any] = {}
            if c.reasoning:
                delta["reasoning_content"] = c.reasoning
            if c.text:
                delta["content"] = c.text
            if c.tool_calls:
                delta["tool_calls"] = responses.tool_call_deltas(c.tool_calls, self.n_tools[i])
                self.n_tools[i] += len(c.tool_calls)
            lp = responses.chat_logprobs(item.logprobs, self.s.tokenizer) if item.logprobs else None
            if delta or lp:
                out.append(self.event({"index": i, "delta": delta, "logprobs": lp, "finish_reason": None}))
        elif c.text or item.logprobs:
            out.append(self.text_event(i, c.text, item.logprobs or None))
        if c.finish_reason is not None:
            finish = {"index": i, "logprobs": None, "finish_reason": c.finish_reason}
            finish.update({"delta": {}} if self.chat else {"text": ""})
            out.append(self.event(finish))
            self.finals[i] = c
        return out

    @property
    def done(self) -> bool:
        return len(self.finals) == len(self.s.handles)

    def usage(self) -> dict[str, int]:
        return responses.usage(self.s.prompt_tokens, sum(c.completion_tokens for c in self.finals.values()))


async def _events(s: Session, reply: Reply, include_usage: bool, echo: bool) -> AsyncIterator[bytes]:
    st = _Stream(s, reply, echo)
    opening = st.opening()
    if opening:
        yield b"".join(opening)
    while True:
        out: list[bytes] = []
        for item in generation.drain(s.queue, await s.queue.get()):
            if isinstance(item, BaseException):
                body = mlxk_error_body(item)[1] if isinstance(item, MlxkError) else \
                    {"error": {"message": str(item), "type": "server_error", "param": None,
                               "code": "InternalError"}}
                yield b"".join(out) + sse.error_event(body)
                return
            out += st.item(item)
            if st.done:
                if include_usage:
                    out.append(sse.event(reply.envelope([], usage=st.usage())))
                out.append(sse.DONE)
                yield b"".join(out)
                return
        if out:
            yield b"".join(out)
