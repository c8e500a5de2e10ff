"""Ollama API routes (``/api/*``) for Open WebUI, VS Code Copilot's Ollama provider, Raycast ...

Translation lives in ``dialects/ollama.py``; generation in ``core``. Errors are
``{"error": "..."}`` with Ollama's status codes (``errors.py`` reshapes by path).
``/api/version`` is public (clients probe it before they authenticate).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from mlxk import __version__
from mlxk.errors import ModelNotFound, ValidationError
from mlxk.server import catalog, core
from mlxk.server.dialects import ollama as wire
from mlxk.server.pool import ModelPool
from mlxk.server.schemas import EmbeddingRequest

router = APIRouter(tags=["ollama"])
FOREVER = "2318-11-26T00:00:00Z"  # what Ollama reports for a model that never unloads


def _pool(request: Request) -> ModelPool:
    return request.app.state.pool


def _parameter_size(n: int | None) -> str:
    if not n:
        return ""
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def _parameters(ev: Any) -> int | None:
    """Parameter count from the safetensors headers (the cache layer's reader)."""
    from mlxk.cache.safetensors import HeaderError, count_parameters, read_header

    try:
        headers = [read_header(p) for n, p in sorted(ev.files.items()) if n.endswith(".safetensors")]
    except HeaderError:
        return None
    return count_parameters(headers, ev.description.config) if headers else None


def _config(ev: Any, *keys: str) -> Any:
    """The first of ``keys`` set in config.json (or its ``text_config``)."""
    cfg = ev.description.config or {}
    sources = (cfg, cfg.get("text_config") or {})
    return next((src[k] for src in sources for k in keys
                 if isinstance(src, dict) and src.get(k) is not None), None)


def _details(ev: Any) -> dict[str, Any]:
    d = ev.description
    family = d.architecture or ""
    return {"parent_model": "", "format": d.framework.lower(), "family": family,
            "families": [family] if family else [],
            "parameter_size": _parameter_size(_parameters(ev)),
            "quantization_level": d.quantization or ""}


def _capabilities(ev: Any) -> list[str]:
    d = ev.description
    if d.model_type == "embedding":
        return ["embedding"]
    caps = ["completion"]
    if d.has_chat_template:
        caps.append("tools")  # templates without tool support get the documented fallback prompt
    if "reasoning" in d.capabilities:
        caps.append("thinking")
    if "vision" in d.capabilities:
        caps.append("vision")
    return caps


def _tag(ev: Any) -> dict[str, Any]:
    return {"name": ev.name, "model": ev.name, "modified_at": wire.iso(ev.last_modified),
            "size": ev.size_bytes, "digest": ev.commit or "", "details": _details(ev)}


def _evaluate(name: str) -> Any:
    from mlxk.cache.evaluate import evaluate
    from mlxk.cache.resolve import resolve
    from mlxk.cache.runnable import is_path_like

    if is_path_like(name):
        raise ValidationError(f"model '{name}' is not a model name (paths are not accepted)")
    resolved = resolve(name)
    if not resolved.cached:
        raise ModelNotFound(f"model '{name}' not found")
    return evaluate(resolved)


def _template(ev: Any) -> str:
    """The model's chat template text (Jinja, not Ollama's Go template: shown, not used)."""
    files = ev.files
    with contextlib.suppress(OSError, ValueError):
        if files.get("chat_template.jinja"):
            return Path(files["chat_template.jinja"]).read_text(errors="replace")
        if files.get("tokenizer_config.json"):
            template = json.loads(Path(files["tokenizer_config.json"]).read_text()).get("chat_template")
            return template if isinstance(template, str) else ""
    return ""


def _show(name: str) -> dict[str, Any]:
    ev = _evaluate(name)
    arch = ev.description.architecture or "unknown"
    info = {"general.architecture": arch, "general.basename": ev.name.rsplit("/", 1)[-1],
            "general.parameter_count": _parameters(ev),
            f"{arch}.context_length": _config(ev, "max_position_embeddings", "max_seq_len",
                                              "n_positions", "seq_length", "n_ctx"),
            f"{arch}.embedding_length": _config(ev, "hidden_size", "d_model", "n_embd"),
            f"{arch}.block_count": _config(ev, "num_hidden_layers", "n_layer", "num_layers"),
            f"{arch}.attention.head_count": _config(ev, "num_attention_heads", "n_head"),
            f"{arch}.vocab_size": _config(ev, "vocab_size")}
    return {"modelfile": "", "parameters": "", "template": _template(ev), "license": "",
            "details": _details(ev), "model_info": {k: v for k, v in info.items() if v is not None},
            "capabilities": _capabilities(ev), "modified_at": wire.iso(ev.last_modified)}


def _ps(pool: ModelPool) -> list[dict[str, Any]]:
    out = []
    for m in pool.snapshot():
        entry = pool.entry(m.name)
        if entry is None or not entry.loaded:
            continue
        try:
            ev = _evaluate(m.name)
            details, digest = _details(ev), ev.commit or ""
        except Exception:  # a preloaded local directory: no cache entry to describe
            details, digest = {}, ""
        out.append({"name": m.name, "model": m.name, "size": m.memory_bytes,
                    "size_vram": m.memory_bytes, "digest": digest, "details": details,
                    "expires_at": wire.iso(m.expires_at) if m.expires_at else FOREVER,
                    "context_length": getattr(entry.lm, "context_length", None)})
    return out


@router.get("/api/version")
async def version() -> dict[str, str]:
    return {"version": __version__}


def _tags() -> list[dict[str, Any]]:
    out = []
    for card in catalog.cached_models(include_embeddings=True):
        try:
            out.append(_tag(_evaluate(card["id"])))
        except Exception:  # one broken repo never hides the others
            continue
    return out


@router.get("/api/tags")
async def tags() -> dict[str, Any]:
    return {"models": await asyncio.to_thread(_tags)}


@router.post("/api/show")
async def show(body: wire.ModelRequest) -> dict[str, Any]:
    return await asyncio.to_thread(_show, body.ref)


@router.get("/api/ps")
async def ps(request: Request) -> dict[str, Any]:
    return {"models": await asyncio.to_thread(_ps, _pool(request))}


async def _load_only(request: Request, model: str, keep_alive: Any, chat: bool) -> JSONResponse:
    seconds = wire.keep_alive_seconds(keep_alive)
    key, load_ns = await core.load_only(_pool(request), wire.model_name(model), seconds)
    body: dict[str, Any] = {"model": key, "created_at": wire.now_iso(), "done": True,
                            "done_reason": "unload" if seconds == 0 else "load"}
    if chat:
        body["message"] = {"role": "assistant", "content": ""}
    else:
        body["response"] = ""
    body["load_duration"] = body["total_duration"] = load_ns
    return JSONResponse(body)


async def _generate(request: Request, creq: core.CoreRequest, stream: bool, chat: bool) -> Response:
    run = await core.start(_pool(request), creq)
    tokenizer = run.tokenizer if creq.gen.logprobs is not None else None   # None: no logprobs
    if stream:
        writer = wire.StreamWriter(run.model, chat, tokenizer)
        return core.stream(run, b"", writer.feed, wire.MEDIA_TYPE)
    try:
        result = await run.collect()
    finally:
        run.close()
    answer = wire.chat_response if chat else wire.generate_response
    return JSONResponse(answer(run.model, result, tokenizer))


@router.post("/api/chat")
async def chat(body: wire.ChatRequest, request: Request) -> Response:
    if not body.messages:
        return await _load_only(request, body.model, body.keep_alive, chat=True)
    return await _generate(request, wire.with_logprobs(wire.chat_to_core(body), body), body.stream,
                           chat=True)


@router.post("/api/generate")
async def generate(body: wire.GenerateRequest, request: Request) -> Response:
    if not body.prompt and not body.system:
        return await _load_only(request, body.model, body.keep_alive, chat=False)
    return await _generate(request, wire.with_logprobs(wire.generate_to_core(body), body),
                           body.stream, chat=False)


async def _embed(request: Request, model: str, texts: list[str], truncate: bool,
                 dimensions: int | None) -> tuple[dict[str, Any], int, int]:
    from mlxk.server.routes_embeddings import compute

    t0 = time.perf_counter_ns()
    pool = _pool(request)
    entry = await pool.acquire(wire.model_name(model), job="embedding")
    load_ns = time.perf_counter_ns() - t0
    try:
        req = EmbeddingRequest(model=entry.key, input=texts, truncate=truncate,
                               dimensions=dimensions)
        out = await asyncio.to_thread(compute, entry.lm, req)
    finally:
        pool.release(entry)
    pool.metrics.tokens_in.labels(entry.key).inc(out["usage"]["prompt_tokens"])
    return out, load_ns, time.perf_counter_ns() - t0


@router.post("/api/embed")
async def embed(body: wire.EmbedRequest, request: Request) -> dict[str, Any]:
    texts = [body.input] if isinstance(body.input, str) else body.input
    out, load_ns, total_ns = await _embed(request, body.model, texts, body.truncate, body.dimensions)
    return {"model": out["model"], "embeddings": [d["embedding"] for d in out["data"]],
            "total_duration": total_ns, "load_duration": load_ns,
            "prompt_eval_count": out["usage"]["prompt_tokens"]}


@router.post("/api/embeddings")
async def embeddings(body: wire.LegacyEmbeddingsRequest, request: Request) -> dict[str, Any]:
    out, _, _ = await _embed(request, body.model, [body.prompt], True, None)
    return {"embedding": out["data"][0]["embedding"]}


def _refuse(what: str) -> JSONResponse:
    return JSONResponse({"error": f"/api/{what} is not available on this server: "
                                  f"{wire.REFUSED[what]}"}, status_code=403)


@router.post("/api/pull")
async def pull() -> JSONResponse:
    return _refuse("pull")


@router.post("/api/push")
async def push() -> JSONResponse:
    return _refuse("push")


@router.post("/api/create")
async def create() -> JSONResponse:
    return _refuse("create")


@router.post("/api/copy")
async def copy() -> JSONResponse:
    return _refuse("copy")


@router.delete("/api/delete")
async def delete() -> JSONResponse:
    return _refuse("delete")


