"""``POST /v1/embeddings``: OpenAI's embeddings API on the embeddings engine.

Request: ``model``, ``input`` (a string, a list of strings, a token array or a list of
token arrays), ``encoding_format`` (``float`` or ``base64``: little-endian float32, as
OpenAI sends it and the ``openai`` client decodes it), ``dimensions`` (cut the vector and
re-normalize; 400 above the model's size), ``user`` (accepted, unused). Extension:
``truncate`` (default false: an input over the model's limit is a 400, as with OpenAI;
true cuts it). Models load from the cache only, never from a path a client names.
Encoders are loaded by the server's one ``ModelPool`` (same LRU, keep-alive, max-loaded
and memory budget as chat models).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request

from mlxk.errors import ValidationError
from mlxk.server.pool import ModelPool
from mlxk.server.schemas import ERROR_RESPONSES, EmbeddingRequest, EmbeddingResponse

if TYPE_CHECKING:
    from mlxk.engine.embeddings.encoder import EmbeddingModel

router = APIRouter()
MAX_INPUTS = 2048


# --- request handling --------------------------------------------------------------
def _split_input(value: str | list[str] | list[int] | list[list[int]]
                 ) -> tuple[list[str] | None, list[list[int]] | None]:
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


def _encode(vector: Sequence[float], fmt: str) -> list[float] | str:
    import numpy as np

    if fmt == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]


def compute(em: EmbeddingModel, body: EmbeddingRequest) -> dict[str, Any]:
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
    pool: ModelPool = request.app.state.pool
    entry = await pool.acquire(body.model, job="embedding")
    try:
        response = await asyncio.to_thread(compute, entry.lm, body)
    finally:
        pool.release(entry)
    pool.metrics.tokens_in.labels(entry.key).inc(response["usage"]["prompt_tokens"])
    return response
