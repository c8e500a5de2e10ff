"""HTTP routes. Each function only parses, delegates, and returns."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from mlxk import __version__
from mlxk.errors import ModelNotFound
from mlxk.server import catalog, core, sse
from mlxk.server.dialects import openai_chat, openai_completions
from mlxk.server.metrics import CONTENT_TYPE
from mlxk.server.pool import ModelPool
from mlxk.server.schemas import (
    ERROR_RESPONSES,
    ChatCompletion,
    ChatCompletionRequest,
    CompletionRequest,
    Health,
    ModelCard,
    ModelList,
    TextCompletion,
)

router = APIRouter()


def _pool(request: Request) -> ModelPool:
    return request.app.state.pool


async def _models(request: Request) -> list[dict]:
    cards = await asyncio.to_thread(catalog.cached_models, True)
    return catalog.model_list(_pool(request), cards)


@router.head("/health", include_in_schema=False)   # uptime checkers send HEAD
@router.get("/health", response_model=Health, tags=["ops"])
async def health(request: Request) -> dict:
    ready = bool(getattr(request.app.state, "ready", False))
    return {"status": "ok" if ready else "starting", "ready": ready,
            "loaded_models": _pool(request).loaded_names(),
            "version": __version__}


@router.get("/metrics", tags=["ops"], response_class=Response)
async def metrics(request: Request) -> Response:
    return Response(_pool(request).metrics.render(), media_type=CONTENT_TYPE)


@router.get("/v1/models", response_model=ModelList, responses=ERROR_RESPONSES, tags=["models"])
async def list_models(request: Request) -> dict:
    return {"object": "list", "data": await _models(request)}


@router.get("/v1/models/{model_id:path}", response_model=ModelCard, responses=ERROR_RESPONSES,
            tags=["models"])
async def get_model(model_id: str, request: Request) -> dict:
    cards = {card["id"]: card for card in await _models(request)}
    if model_id in cards:
        return cards[model_id]
    # Short names and unambiguous substrings resolve as they do in requests.
    full = await asyncio.to_thread(catalog.resolve_id, model_id, _pool(request).adapters)
    if full in cards:
        return cards[full]
    raise ModelNotFound(f"The model '{model_id}' does not exist", param="model")


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=ERROR_RESPONSES,
             tags=["generation"])
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    run = await core.start(_pool(request), openai_chat.to_core(body))
    if body.stream:
        writer = openai_chat.StreamWriter(run, _include_usage(body))
        return core.stream(run, writer.start(), writer.feed, sse.MEDIA_TYPE)
    return JSONResponse(openai_chat.body(run, await _collect(run), bool(body.logprobs)))


@router.post("/v1/completions", response_model=TextCompletion, responses=ERROR_RESPONSES,
             tags=["generation"])
async def completions(body: CompletionRequest, request: Request) -> Response:
    run = await core.start(_pool(request), openai_completions.to_core(body))
    echo = bool(body.echo)
    if body.stream:
        writer = openai_completions.StreamWriter(run, _include_usage(body), echo)
        return core.stream(run, writer.start(), writer.feed, sse.MEDIA_TYPE)
    results = await _collect(run)
    return JSONResponse(openai_completions.body(run, results, body.logprobs is not None, echo))


def _include_usage(body: ChatCompletionRequest | CompletionRequest) -> bool:
    return bool(body.stream_options and body.stream_options.include_usage)


async def _collect(run: core.Run) -> list[core.Result]:
    try:
        return await run.collect_all()
    finally:
        run.close()
