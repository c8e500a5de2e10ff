"""OpenAI (legacy) Completions (``POST /v1/completions``) <-> the core, and what the two
OpenAI generation dialects share (``Writer``: choices, usage, ``[DONE]``, errors).

Request: ``features.completion_requests`` (one prompt per string or token-id list; each
gets ``n`` sequences, ``choices[p * n + j]``); ``logprobs`` (the legacy integer: top-k
alternatives), ``echo`` (the prompt text first; with ``logprobs``, the prompt tokens'
logprobs too, the first one ``null``). Response: one ``text_completion``, or SSE chunks
of the same object (``usage`` last with ``stream_options.include_usage``, then
``data: [DONE]``).
"""

from __future__ import annotations

from typing import Any

from mlxk.engine.text.decoder import token_pieces
from mlxk.errors import MlxkError
from mlxk.server import core, features, responses, sse
from mlxk.server.dialects import COMPLETIONS
from mlxk.server.errors import mlxk_error_body
from mlxk.server.responses import Reply
from mlxk.server.schemas import CompletionRequest


def bias(logit_bias: dict[str, float] | None) -> dict[int, float] | None:
    """OpenAI's ``logit_bias`` (token ids as strings, checked by ``features``) by id."""
    return {int(k): float(v) for k, v in logit_bias.items()} if logit_bias else None


def to_core(req: CompletionRequest) -> core.CoreRequest:
    first, *more = features.completion_requests(req)
    return core.CoreRequest(model=req.model, gen=first, dialect=COMPLETIONS, prompt_param="prompt",
                            presence_penalty=req.presence_penalty,
                            frequency_penalty=req.frequency_penalty,
                            logit_bias=bias(req.logit_bias), more=tuple(more), n=req.n or 1,
                            prompt_logprobs=req.logprobs if req.echo else None)


def usage(run: core.Run, results: list[core.Result]) -> dict[str, int]:
    """Usage of the whole request: each prompt once, every choice's tokens."""
    return responses.usage(run.prompt_tokens,
                           sum(r.finished.completion_tokens for r in results if r.finished))


def prompt_entries(run: core.Run, seq: int,
                   scored: list[core.LogprobEntry | None]) -> list[core.LogprobEntry]:
    """The prompt tokens as logprob entries (text, logprob, top); the first has no logprob."""
    tokens = run.prompt_ids(seq)
    pieces = token_pieces(run.tokenizer, tokens)
    out = []
    for tok, piece, e in zip(tokens, pieces, scored, strict=False):
        if e is None:
            out.append({"id": tok, "text": piece, "logprob": None, "top": None})
        else:
            out.append({**e, "text": piece})
    return out


def body(run: core.Run, results: list[core.Result], want_logprobs: bool, echo: bool) -> dict[str, Any]:
    """The whole ``text_completion`` (non-streaming)."""
    choices = []
    for i, r in enumerate(results):
        assert r.finished is not None
        text, entries = r.text, [*r.reasoning_logprobs, *r.logprobs]
        if echo:
            text = run.prompt_text(i) + text
            if want_logprobs:
                entries = prompt_entries(run, i, r.prompt_logprobs or []) + entries
        lp = responses.text_logprobs(entries, run.tokenizer) if want_logprobs else None
        choices.append(responses.text_choice(i, text, r.finished.reason, lp))
    return responses.text_completion(Reply("text", run.model), choices,
                                     usage(run, results))


def error_event(exc: BaseException) -> bytes:
    body = mlxk_error_body(exc)[1] if isinstance(exc, MlxkError) else \
        {"error": {"message": str(exc), "type": "server_error", "param": None, "code": "InternalError"}}
    return sse.error_event(body)


class Writer:
    """Core events -> OpenAI SSE chunks; the subclass renders one event (``one``)."""

    def __init__(self, run: core.Run, reply: Reply, include_usage: bool) -> None:
        self.run, self.reply, self.include_usage = run, reply, include_usage
        self.finals: dict[int, core.Finished] = {}
        self.ended = False

    def event(self, choice: dict[str, Any]) -> bytes:
        return sse.event(self.reply.envelope([choice]))

    def one(self, e: core.Event) -> bytes:
        raise NotImplementedError

    def finish(self, e: core.Finished, empty: dict[str, Any]) -> bytes:
        self.finals[e.seq] = e
        out = self.event({"index": e.seq, "logprobs": None, "finish_reason": e.reason, **empty})
        if len(self.finals) < self.run.sequences:
            return out
        self.ended = True
        if self.include_usage:
            use = responses.usage(self.run.prompt_tokens,
                                  sum(f.completion_tokens for f in self.finals.values()))
            out += sse.event(self.reply.envelope([], usage=use))
        return out + sse.DONE

    def feed(self, events: list[core.Event]) -> bytes:
        out: list[bytes] = []
        for e in events:
            if isinstance(e, core.Failed):
                if not self.ended:
                    self.ended = True
                    out.append(error_event(e.error))
                break
            out.append(self.one(e))
        return b"".join(out)


class StreamWriter(Writer):
    """Core events -> ``text_completion`` SSE chunks (``text_offset`` runs on per choice)."""

    def __init__(self, run: core.Run, include_usage: bool, echo: bool) -> None:
        super().__init__(run, Reply("text", run.model), include_usage)
        self.echo = echo
        self.offsets = [0] * run.sequences    # text_offset of the next token, per choice

    def start(self) -> bytes:
        """The echoed prompts, unless they come with their logprobs (``PromptLogprobs``)."""
        if not self.echo or self.run.request.prompt_logprobs is not None:
            return b""
        return b"".join(self.text(i, self.run.prompt_text(i), None) for i in range(self.run.sequences))

    def text(self, seq: int, text: str, entries: list[core.LogprobEntry] | None) -> bytes:
        lp = None
        if entries is not None:
            lp = responses.text_logprobs(entries, self.run.tokenizer, self.offsets[seq])
            self.offsets[seq] += sum(len(t) for t in lp["tokens"])
        return self.event({"index": seq, "text": text, "logprobs": lp, "finish_reason": None})

    def one(self, e: core.Event) -> bytes:
        if isinstance(e, core.PromptLogprobs):
            if not self.echo:
                return b""
            return self.text(e.seq, self.run.prompt_text(e.seq),
                             prompt_entries(self.run, e.seq, list(e.entries)))
        if isinstance(e, core.TextDelta) and (e.text or e.logprobs):
            return self.text(e.seq, e.text, list(e.logprobs) or None)
        if isinstance(e, core.ReasoningDelta) and e.logprobs:   # a raw prompt has no reasoning
            return self.text(e.seq, "", list(e.logprobs))        # part; its tokens still count
        if isinstance(e, core.Finished):
            return self.finish(e, {"text": ""})
        return b""
