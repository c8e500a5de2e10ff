"""``POST /tokenize`` and ``POST /detokenize`` (vLLM's shapes), for counting and debugging prompts.

``/tokenize`` takes ``prompt`` (raw text; ``add_special_tokens`` defaults to true, as
vLLM) or ``messages`` (rendered with the model's chat template and the generation
prompt, exactly as ``/v1/chat/completions`` would; ``add_special_tokens`` defaults to
false there, the template writes its own BOS) and answers ``{"tokens", "count",
"max_model_len"}``. ``/detokenize`` turns ``tokens`` back into ``{"prompt"}``. Both load
the named model like a completion would and are behind the API key like every route
but ``/health``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field, model_validator

from mlxk.engine.types import GenerationRequest
from mlxk.errors import ValidationError
from mlxk.server.pool import ModelPool
from mlxk.server.schemas import ERROR_RESPONSES, ChatMessage, _Strict

router = APIRouter()
MAX_TOKENS_IN = 1 << 20


class TokenizeRequest(_Strict):
    model: str | None = Field(default=None, max_length=512)
    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    add_special_tokens: bool | None = None
    add_generation_prompt: bool = True

    @model_validator(mode="after")
    def _one_input(self) -> TokenizeRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' or 'messages'")
        return self


class TokenizeResponse(_Strict):
    tokens: list[int]
    count: int
    max_model_len: int


class DetokenizeRequest(_Strict):
    model: str | None = Field(default=None, max_length=512)
    tokens: list[int] = Field(max_length=MAX_TOKENS_IN)


class DetokenizeResponse(_Strict):
    prompt: str


def _pool(request: Request) -> ModelPool:
    return request.app.state.pool


def tokenize_with(lm: Any, req: TokenizeRequest) -> list[int]:
    """The ids the model would see (see module docstring)."""
    from mlxk.engine import prompt as prompt_mod

    tok = lm.tokenizer
    if req.prompt is not None:
        add = True if req.add_special_tokens is None else req.add_special_tokens
        return list(tok.encode(req.prompt, add_special_tokens=add))
    from mlxk.server.features import chat_messages

    messages = chat_messages(req)  # type: ignore[arg-type]  # reads only .messages
    if not messages:
        raise ValidationError("messages must not be empty", param="messages")
    if getattr(lm, "has_chat_template", False):
        try:
            text = tok.apply_chat_template(messages, add_generation_prompt=req.add_generation_prompt,
                                           tokenize=False)
        except Exception as exc:  # a template that refuses these roles
            raise ValidationError(f"could not render the chat template: {exc}", param="messages") from exc
    else:
        text = prompt_mod.render(lm, GenerationRequest(messages=messages))[0]
    return list(tok.encode(text, add_special_tokens=bool(req.add_special_tokens)))


def detokenize_with(lm: Any, tokens: list[int]) -> str:
    from mlxk.engine.generate import vocab_size

    size = vocab_size(lm)
    bad = next((t for t in tokens if not 0 <= t < size), None)
    if bad is not None:
        raise ValidationError(f"token id {bad} is outside the vocabulary (0..{size - 1})", param="tokens")
    return str(lm.tokenizer.decode(tokens))


async def _with_model(pool: ModelPool, model: str | None, work: Any) -> Any:
    entry = await pool.acquire(model)
    try:
        return await asyncio.to_thread(work, entry.lm)
    finally:
        pool.release(entry)


@router.post("/tokenize", response_model=TokenizeResponse, responses=ERROR_RESPONSES, tags=["tokens"])
async def tokenize(body: TokenizeRequest, request: Request) -> dict:
    pool = _pool(request)

    def work(lm: Any) -> dict:
        ids = tokenize_with(lm, body)
        return {"tokens": ids, "count": len(ids), "max_model_len": int(lm.context_length)}

    return await _with_model(pool, body.model, work)


@router.post("/detokenize", response_model=DetokenizeResponse, responses=ERROR_RESPONSES,
             tags=["tokens"])
async def detokenize(body: DetokenizeRequest, request: Request) -> dict:
    return await _with_model(_pool(request), body.model,
                             lambda lm: {"prompt": detokenize_with(lm, list(body.tokens))})
