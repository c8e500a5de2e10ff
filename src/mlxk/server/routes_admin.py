"""The admin API behind ``mlxk ps``, ``mlxk load`` and ``mlxk stop`` (guarded by the API key like
every route but ``/health``).

- ``GET /mlxk/ps``: the loaded models (``ModelPool.snapshot``), times as ISO 8601 UTC.
- ``POST /mlxk/load`` ``{"model", "keep_alive"?}``: load a cached model now; ``keep_alive``
  (seconds or ``"5m"``, ``0``, ``-1``) becomes that model's own keep-alive.
- ``POST /mlxk/stop`` ``{"model"}`` or ``{"all": true}``, ``"force"?``: unload. Requests in
  flight finish first (new ones get a 503 meanwhile); ``force`` cancels them.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from mlxk.duration import parse_keep_alive
from mlxk.errors import ValidationError
from mlxk.output.human import iso_utc
from mlxk.server.pool import LoadedModelInfo, ModelPool
from mlxk.server.schemas import ERROR_RESPONSES

router = APIRouter(tags=["admin"])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoadRequest(_Strict):
    model: str = Field(min_length=1, max_length=512, description="a model in the cache")
    keep_alive: float | str | None = Field(
        default=None, description="seconds, or 30s/5m/1h; 0 = unload when idle, -1 = never")


class StopRequest(_Strict):
    model: str | None = Field(default=None, min_length=1, max_length=512)
    all: bool = False
    force: bool = Field(default=False, description="cancel the requests in flight instead of waiting")


class LoadedModel(BaseModel):
    name: str
    kind: Literal["chat", "embedding", "vision"]
    state: Literal["loading", "idle", "busy", "stopping"]
    memory_bytes: int
    active_requests: int
    queued_requests: int
    loaded_at: str | None
    expires_at: str | None = Field(description="ISO 8601 UTC; null: never")
    keep_alive_seconds: float = Field(description="-1: never")
    pinned: bool


class LoadedModels(BaseModel):
    models: list[LoadedModel]


class Stopped(BaseModel):
    stopped: list[str]


def _pool(request: Request) -> ModelPool:
    return request.app.state.pool


def loaded_model(info: LoadedModelInfo) -> dict:
    """One ``ps`` row as JSON (also the shape of ``load``'s answer)."""
    return {"name": info.name, "kind": info.kind, "state": info.state, "memory_bytes": info.memory_bytes,
            "active_requests": info.active_requests, "queued_requests": info.queued_requests,
            "loaded_at": iso_utc(info.loaded_at) if info.loaded_at else None,
            "expires_at": iso_utc(info.expires_at) if info.expires_at is not None else None,
            "keep_alive_seconds": info.keep_alive, "pinned": info.pinned}


@router.get("/mlxk/ps", response_model=LoadedModels, responses=ERROR_RESPONSES)
async def ps(request: Request) -> dict:
    return {"models": [loaded_model(i) for i in _pool(request).snapshot()]}


@router.post("/mlxk/load", response_model=LoadedModel, responses=ERROR_RESPONSES)
async def load(body: LoadRequest, request: Request) -> dict:
    keep_alive = None if body.keep_alive is None else parse_keep_alive(body.keep_alive)
    pool = _pool(request)
    entry = await pool.load(body.model, keep_alive)
    info = next((i for i in pool.snapshot() if i.name == entry.key), None)
    if info is None:  # keep-alive 0: unloaded again as soon as it was idle
        kind = "embedding" if entry.job == "embedding" else "chat"
        info = LoadedModelInfo(entry.key, kind, "idle", entry.size_bytes, 0, 0, None, None,
                               pool.keep_alive_of(entry), False)
    return loaded_model(info)


@router.post("/mlxk/stop", response_model=Stopped, responses=ERROR_RESPONSES)
async def stop(body: StopRequest, request: Request) -> dict:
    if body.all == (body.model is not None):
        raise ValidationError("give either 'model' or 'all': true", param="model")
    pool = _pool(request)
    if body.all:
        return {"stopped": await pool.stop_all(force=body.force)}
    return {"stopped": [await pool.stop(body.model or "", force=body.force)]}
