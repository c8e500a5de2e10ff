"""Anthropic Messages routes: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``.

Translation lives in ``dialects/anthropic.py``; generation in ``core``. Errors have
Anthropic's shape (``errors.py`` reshapes by path); ``anthropic-version`` and
``anthropic-beta`` headers are accepted and not needed.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from mlxk.server import core, sse
from mlxk.server.dialects import anthropic as wire

router = APIRouter(tags=["anthropic"])
PING_EVERY_S = 5.0


@router.post("/v1/messages")
async def messages(body: wire.MessagesRequest, request: Request) -> Response:
    creq = wire.to_core(body)
    run = await core.start(request.app.state.pool, creq)
    msg_id = wire.new_id()
    if body.stream:
        writer = wire.StreamWriter(msg_id, run.model, run.prompt_tokens)
        return core.stream(run, writer.start(), writer.feed, sse.MEDIA_TYPE, PING_EVERY_S)
    try:
        result = await run.collect()
    finally:
        run.close()
    return JSONResponse(wire.message(msg_id, run.model, result))


@router.post("/v1/messages/count_tokens")
async def count_tokens(body: wire.CountTokensRequest, request: Request) -> dict[str, int]:
    _, n = await core.count_tokens(request.app.state.pool, wire.to_core(body))
    return {"input_tokens": n}
