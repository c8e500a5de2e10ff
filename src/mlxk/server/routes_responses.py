"""OpenAI Responses routes: ``POST /v1/responses``, ``GET``/``DELETE /v1/responses/{id}``.

Translation lives in ``dialects/openai_responses.py``; generation in ``core``. Stored
responses live in memory (``ResponseStore``: LRU, bounded lifetime, lost on restart).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from mlxk.server import core, sse
from mlxk.server.dialects import openai_responses as wire

router = APIRouter(tags=["responses"])


def _store(request: Request) -> wire.ResponseStore:
    store = getattr(request.app.state, "responses", None)
    if store is None:
        store = request.app.state.responses = wire.ResponseStore()
    return store


def _counter(run: core.Run) -> Any:
    tokenizer = getattr(run.entry.lm, "tokenizer", None)

    def count(text: str) -> int:
        try:
            return len(tokenizer.encode(text, add_special_tokens=False))  # type: ignore[union-attr]
        except Exception:
            return 0

    return count


@router.post("/v1/responses")
async def create(body: wire.ResponsesRequest, request: Request) -> Response:
    store = _store(request)
    t = wire.to_core(body, store)
    run = await core.start(request.app.state.pool, t.core)
    builder = wire.Builder(body, run.model, t.custom_tools, _counter(run), tokenizer=run.tokenizer)

    def keep(final: dict[str, Any]) -> None:
        if body.store:
            store.put(final, [*t.history, wire.assistant_message(final["output"])])

    if body.stream:
        writer = wire.StreamWriter(builder, keep)
        return core.stream(run, writer.start(), writer.feed, sse.MEDIA_TYPE)
    try:
        result = await run.collect()
    finally:
        run.close()
    assert result.finished is not None
    final = builder.final(result.finished, builder.output(result), result.reasoning)
    keep(final)
    return JSONResponse(final)


@router.get("/v1/responses/{response_id}")
async def retrieve(response_id: str, request: Request) -> dict[str, Any]:
    return _store(request).get(response_id).response


@router.delete("/v1/responses/{response_id}")
async def delete(response_id: str, request: Request) -> dict[str, Any]:
    _store(request).delete(response_id)
    return {"id": response_id, "object": "response", "deleted": True}
