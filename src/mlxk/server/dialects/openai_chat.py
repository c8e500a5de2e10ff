"""OpenAI Chat Completions (``POST /v1/chat/completions``) <-> the core.

Request: ``features.chat_request`` (what is honoured and what is refused) plus the
penalties, ``logit_bias`` and ``n`` (sequences of the one prompt; ``choices[].index``
is the sequence, usage counts the prompt once). Response: one ``chat.completion``, or
SSE ``chat.completion.chunk``s (a role chunk per choice first, ``usage`` last with
``stream_options.include_usage``, then ``data: [DONE]``). ``logprobs`` cover every
sampled token (reasoning and answer), so the tokens join to the text.
"""

from __future__ import annotations

from typing import Any

from mlxk.server import core, features, responses
from mlxk.server.dialects import CHAT
from mlxk.server.dialects.openai_completions import Writer, bias, usage
from mlxk.server.responses import Reply
from mlxk.server.schemas import ChatCompletionRequest


def to_core(req: ChatCompletionRequest) -> core.CoreRequest:
    return core.CoreRequest(model=req.model, gen=features.chat_request(req), dialect=CHAT,
                            presence_penalty=req.presence_penalty,
                            frequency_penalty=req.frequency_penalty,
                            logit_bias=bias(req.logit_bias), n=req.n or 1)


def tool_call(call: core.ToolCall) -> dict[str, Any]:
    return {"index": call.index, "id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": call.arguments}}


def body(run: core.Run, results: list[core.Result], want_logprobs: bool) -> dict[str, Any]:
    """The whole ``chat.completion`` (non-streaming)."""
    reply = Reply("chat", run.model)
    choices = []
    for i, r in enumerate(results):
        assert r.finished is not None
        lp = responses.chat_logprobs([*r.reasoning_logprobs, *r.logprobs], run.tokenizer) \
            if want_logprobs else None
        choices.append(responses.chat_choice(i, r.text, r.reasoning,
                                             [tool_call(c) for c in r.tool_calls],
                                             r.finished.reason, lp))
    return responses.chat_completion(reply, choices, usage(run, results))


class StreamWriter(Writer):
    """Core events -> ``chat.completion.chunk`` SSE events."""

    def __init__(self, run: core.Run, include_usage: bool) -> None:
        super().__init__(run, Reply("chat", run.model), include_usage)

    def start(self) -> bytes:
        return b"".join(self.event({"index": i, "delta": {"role": "assistant", "content": ""},
                                    "logprobs": None, "finish_reason": None})
                        for i in range(self.run.sequences))

    def _delta(self, seq: int, delta: dict[str, Any], logprobs: tuple[Any, ...]) -> bytes:
        lp = responses.chat_logprobs(list(logprobs), self.run.tokenizer) if logprobs else None
        if not delta and not lp:
            return b""
        return self.event({"index": seq, "delta": delta, "logprobs": lp, "finish_reason": None})

    def one(self, e: core.Event) -> bytes:
        if isinstance(e, core.ReasoningDelta):
            return self._delta(e.seq, {"reasoning_content": e.text}, e.logprobs)
        if isinstance(e, core.TextDelta):
            return self._delta(e.seq, {"content": e.text} if e.text else {}, e.logprobs)
        if isinstance(e, core.ToolCall):
            return self._delta(e.seq, {"tool_calls": responses.tool_call_deltas([tool_call(e)], e.index)},
                               ())
        if isinstance(e, core.Finished):
            return self.finish(e, {"delta": {}})
        return b""
