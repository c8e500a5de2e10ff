"""OpenAI response and chunk bodies, built as plain dicts (fast, exact shapes)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """Identity of one response: id, creation time, model."""

    kind: str                    # "chat" | "text"
    model: str
    id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        if not self.id:
            prefix = "chatcmpl" if self.kind == "chat" else "cmpl"
            self.id = f"{prefix}-{uuid.uuid4().hex}"

    @property
    def chunk_object(self) -> str:
        return "chat.completion.chunk" if self.kind == "chat" else "text_completion"

    def envelope(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"id": self.id, "object": self.chunk_object, "created": self.created,
                "model": self.model, "choices": choices, **extra}


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def token_text(tokenizer: Any, token_id: int) -> str:
    """One token on its own, keeping the leading space a SentencePiece ``▁`` stands for."""
    try:
        text = tokenizer.decode([token_id])
    except Exception:
        return ""
    convert = getattr(tokenizer, "convert_ids_to_tokens", None)
    piece = convert(token_id) if convert else None
    if isinstance(piece, str) and piece.startswith("\u2581") and not text.startswith(" "):
        text = " " + text
    return text


def _text(entry: dict[str, Any], tokenizer: Any) -> str:
    """The sampled token's text: what the decoder released for it, so the tokens join to the text."""
    text = entry.get("text")
    return text if text is not None else token_text(tokenizer, entry["id"])


def chat_logprobs(entries: list[dict[str, Any]], tokenizer: Any) -> dict[str, Any]:
    def one(t: str, e: dict[str, Any]) -> dict[str, Any]:
        return {"token": t, "logprob": e["logprob"], "bytes": list(t.encode())}

    return {"content": [{**one(_text(e, tokenizer), e),
                         "top_logprobs": [one(token_text(tokenizer, a["id"]), a) for a in e.get("top", ())]}
                        for e in entries]}


def text_logprobs(entries: list[dict[str, Any]], tokenizer: Any, offset: int = 0) -> dict[str, Any]:
    tokens, lps, tops, offsets = [], [], [], []
    pos = offset
    for e in entries:
        t = _text(e, tokenizer)
        tokens.append(t)
        lps.append(e["logprob"])
        top = e.get("top", ())
        tops.append(None if top is None else {token_text(tokenizer, a["id"]): a["logprob"] for a in top})
        offsets.append(pos)
        pos += len(t)
    return {"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets}


def tool_call_deltas(calls: list[dict[str, Any]], start: int) -> list[dict[str, Any]]:
    out = []
    for i, call in enumerate(calls):
        d = {"index": call.get("index", start + i), **{k: v for k, v in call.items() if k != "index"}}
        d.setdefault("type", "function")
        out.append(d)
    return out


def chat_choice(index: int, text: str, reasoning: str, tool_calls: list[dict[str, Any]],
                finish_reason: str | None, logprobs: dict[str, Any] | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text if (text or not tool_calls) else None}
    if reasoning:
        message["reasoning_content"] = reasoning
    if tool_calls:
        message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in tool_calls]
    return {"index": index, "message": message, "logprobs": logprobs, "finish_reason": finish_reason}


def chat_completion(reply: Reply, choices: list[dict[str, Any]], use: dict[str, int]) -> dict[str, Any]:
    return {"id": reply.id, "object": "chat.completion", "created": reply.created, "model": reply.model,
            "choices": choices, "usage": use}


def text_choice(index: int, text: str, finish_reason: str | None,
                logprobs: dict[str, Any] | None) -> dict[str, Any]:
    return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}


def text_completion(reply: Reply, choices: list[dict[str, Any]], use: dict[str, int]) -> dict[str, Any]:
    return {"id": reply.id, "object": "text_completion", "created": reply.created, "model": reply.model,
            "choices": choices, "usage": use}
