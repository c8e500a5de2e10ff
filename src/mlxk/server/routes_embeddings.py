"""``POST /v1/embeddings``: OpenAI's embeddings API on the embeddings engine.

Request: ``model``, ``input`` (a string, a list of strings, a token array or a list of
token arrays), ``encoding_format`` (``float`` or ``base64``: little-endian float32, as
OpenAI sends it and the ``openai`` client decodes it), ``dimensions`` (cut the vector and
re-normalize; 400 above the model's size), ``user`` (accepted, unused). Extension:
``truncate`` (default false: an input over the model's limit is a 400, as with OpenAI;
true cuts it). Models load from the cache only, never from a path a client names.
Loaded encoders are kept per server (LRU by ``--max-loaded``, idle unload by ``--keep-alive``).
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from mlxk.errors import ModelNotFound, ValidationError
from mlxk.server.schemas import ERROR_RESPONSES

router = APIRouter()
MAX_INPUTS = 2048


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, max_length=512, description="an embedding model in the cache")
    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="text, list of texts, token array, or list of token arrays")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None
    truncate: bool = Field(default=False, description="(mlxk) cut inputs longer than the model's limit")


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: EmbeddingUsage


# --- loaded encoders -------------------------------------------------------------
@dataclass(eq=False)
class _Slot:
    key: str
    model: Any = None
    pinned: bool = False
    in_use: int = 0
    last_used: float = field(default_factory=time.monotonic)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None


class EmbeddingModels:
    """The encoders this server has loaded (separate from the chat pool's batch schedulers).

    One per ``ModelPool`` (see ``embedding_models``): LRU by ``--max-loaded``, idle unload by
    ``--keep-alive``; an encoder given as ``serve --model`` is preloaded, pinned and the default.
    """

    def __init__(self, max_loaded: int, keep_alive: float) -> None:
        self.max_loaded = max(1, max_loaded)
        self.keep_alive = keep_alive
        self.default: str | None = None
        self._slots: dict[str, _Slot] = {}
        self._lock = asyncio.Lock()

    def loaded_names(self) -> list[str]:
        return sorted(k for k, s in self._slots.items() if s.model is not None)

    async def preload(self, key: str, path: Path) -> None:
        """Load ``serve --model``'s encoder at start; it stays loaded and answers requests without a model."""
        slot = await self._slot(key, path, pinned=True)
        slot.in_use -= 1
        self.default = key

    async def acquire(self, name: str | None) -> _Slot:
        if not name:
            if self.default is None:
                raise ValidationError("'model' is required (an embedding model in the cache)",
                                      param="model")
            name = self.default
        slot = self._slots.get(name)
        if slot is not None and slot.model is not None:
            slot.in_use += 1
            return slot
        key, path = await asyncio.to_thread(resolve_embedding_model, name)
        return await self._slot(key, path)

    async def _slot(self, key: str, path: Path, pinned: bool = False) -> _Slot:
        async with self._lock:
            self._expire_idle()
            slot = self._slots.get(key)
            if slot is None:
                self._make_room()
                slot = _Slot(key, pinned=pinned)
                self._slots[key] = slot
                asyncio.get_running_loop().create_task(self._load(slot, path))
            slot.in_use += 1
        await slot.ready.wait()
        if slot.error is not None:
            slot.in_use -= 1
            raise slot.error
        return slot

    def release(self, slot: _Slot) -> None:
        slot.in_use = max(0, slot.in_use - 1)
        slot.last_used = time.monotonic()
        if slot.in_use == 0 and self.keep_alive == 0 and not slot.pinned:
            self._slots.pop(slot.key, None)

    async def _load(self, slot: _Slot, path: Path) -> None:
        from mlxk.engine.embeddings.encoder import load_embedding_model

        try:
            slot.model = await asyncio.to_thread(load_embedding_model, path, slot.key)
        except BaseException as exc:  # reported to every waiter, then forgotten
            slot.error = exc
            self._slots.pop(slot.key, None)
        finally:
            slot.ready.set()

    def _idle(self) -> list[_Slot]:
        return [s for s in self._slots.values()
                if s.in_use == 0 and not s.pinned and s.model is not None]

    def _expire_idle(self) -> None:
        if self.keep_alive <= 0:
            return
        now = time.monotonic()
        for slot in self._idle():
            if now - slot.last_used >= self.keep_alive:
                del self._slots[slot.key]

    def _make_room(self) -> None:
        while len(self._slots) >= self.max_loaded:
            idle = self._idle()
            if not idle:
                return  # all busy or pinned: allow one more rather than failing the request
            del self._slots[min(idle, key=lambda s: s.last_used).key]


def embedding_models(pool: Any) -> EmbeddingModels:
    """The encoders of ``pool``'s server (created on first use, with the pool's settings)."""
    models = getattr(pool, "embedding_models", None)
    if models is None:
        models = EmbeddingModels(pool.settings.max_loaded, pool.settings.keep_alive)
        pool.embedding_models = models
    return models


def resolve_embedding_model(name: str) -> tuple[str, Path]:
    """A client's model name -> (id, snapshot path); only cached embedding models qualify."""
    from mlxk.cache.detect import describe
    from mlxk.cache.resolve import resolve, validate_name
    from mlxk.server.pool import is_path_like

    if is_path_like(name):
        raise ValidationError(f"model '{name}' is not a model name (paths are not accepted)",
                              param="model")
    validate_name(name.rsplit("@", 1)[0])
    resolved = resolve(name)
    if not resolved.cached:
        raise ModelNotFound(f"The model '{name}' does not exist", param="model")
    desc = describe(Path(resolved.path))
    if desc.model_type != "embedding":
        kind = "chat" if desc.model_type == "chat" else "text-generation"
        raise ValidationError(
            f"model '{resolved.name}' is a {kind} model, not an embedding model; "
            f"use /v1/chat/completions for it, or an embedding model here", param="model")
    if not desc.runtime_compatible:
        raise ValidationError(f"model '{resolved.name}' cannot run here: {desc.runtime_reason}",
                              param="model")
    return resolved.name, Path(resolved.path)


# --- request handling --------------------------------------------------------------
def _split_input(value: Any) -> tuple[list[str] | None, list[list[int]] | None]:
    """(texts, None) or (None, token arrays); 400 for empty input."""
    if isinstance(value, str):
        return [value], None
    if not value:
        raise ValidationError("'input' must not be empty", param="input")
    if len(value) > MAX_INPUTS:
        raise ValidationError(f"'input' has {len(value)} items; at most {MAX_INPUTS} per request",
                              param="input")
    if all(isinstance(v, str) for v in value):
        return list(value), None
    if all(isinstance(v, int) for v in value):
        return None, [list(value)]
    if all(isinstance(v, list) for v in value):
        if any(not row for row in value):
            raise ValidationError("'input' token arrays must not be empty", param="input")
        return None, [list(row) for row in value]
    raise ValidationError("'input' must be a string, a list of strings, or token arrays",
                          param="input")


def _encode(vector: Any, fmt: str) -> list[float] | str:
    import numpy as np

    if fmt == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]


def compute(em: Any, body: EmbeddingRequest) -> dict[str, Any]:
    """Embed the request's inputs with a loaded model; the OpenAI response body."""
    import numpy as np

    texts, token_rows = _split_input(body.input)
    if body.dimensions is not None and body.dimensions > em.dimensions:
        raise ValidationError(f"'dimensions' is {body.dimensions}, but model '{em.name}' makes "
                              f"{em.dimensions}-dimensional vectors", param="dimensions")
    try:
        if texts is not None:
            ids, truncated = em.tokenize(texts, truncate=body.truncate)
        else:
            ids, truncated = em.check_token_ids(token_rows or [], truncate=body.truncate)
    except ValidationError as exc:
        if "max_tokens" not in exc.extra:
            raise
        raise ValidationError(exc.message + ' (send "truncate": true to cut inputs to fit)',
                              **exc.extra) from exc
    result = em.embed_ids(ids, truncated)
    vectors = result.vectors
    if body.dimensions is not None and body.dimensions < em.dimensions:
        vectors = vectors[:, : body.dimensions]
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    data = [{"object": "embedding", "index": i, "embedding": _encode(v, body.encoding_format)}
            for i, v in enumerate(vectors)]
    tokens = result.total_tokens
    return {"object": "list", "data": data, "model": em.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


@router.post("/v1/embeddings", response_model=EmbeddingResponse, responses=ERROR_RESPONSES,
             tags=["embeddings"])
async def embeddings(body: EmbeddingRequest, request: Request) -> dict[str, Any]:
    pool = request.app.state.pool
    models = embedding_models(pool)
    slot = await models.acquire(body.model)
    try:
        response = await asyncio.to_thread(compute, slot.model, body)
    finally:
        models.release(slot)
    metrics = getattr(pool, "metrics", None)
    if metrics is not None:
        metrics.tokens_in.labels(slot.key).inc(response["usage"]["prompt_tokens"])
    return response
