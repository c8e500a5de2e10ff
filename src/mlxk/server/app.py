"""``create_app(settings, pool)``: the FastAPI application (routes, errors, security, metrics)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlxk import __version__
from mlxk.server import (
    errors,
    routes,
    routes_admin,
    routes_anthropic,
    routes_embeddings,
    routes_ollama,
    routes_responses,
    routes_tokenize,
    ui,
)
from mlxk.server.dialects import dialect_of
from mlxk.server.disconnect import CLIENT_GONE, DisconnectMiddleware
from mlxk.server.metrics import Metrics
from mlxk.server.pool import ModelPool
from mlxk.server.security import ApiKeyMiddleware, BodyLimitMiddleware, cors_kwargs
from mlxk.server.settings import ServerSettings

log = logging.getLogger("mlxk.server")
DIALECT_ROUTERS = (routes_anthropic, routes_responses, routes_ollama)


class MetricsMiddleware:
    """Counts requests by route template and status (no per-path cardinality explosion)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "other"
            if scope.get(CLIENT_GONE):
                status = 499
            self.metrics.requests.labels(endpoint, str(status)).inc()
            dialect = dialect_of(scope.get("path", ""))
            if dialect is not None:
                self.metrics.dialect_requests.labels(dialect, str(status)).inc()


def create_app(settings: ServerSettings, pool: ModelPool) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await pool.start()
        except Exception as exc:
            app.state.startup_error = exc
            log.error("startup failed: %s", exc)
            raise
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            await pool.close()

    app = FastAPI(title="mlx-knife", version=__version__, lifespan=lifespan,
                  description="OpenAI-compatible API for MLX models in the HuggingFace cache.")
    app.state.pool = pool
    app.state.settings = settings
    app.state.ready = False
    errors.install(app)
    app.include_router(routes.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_embeddings.router)
    for dialect in DIALECT_ROUTERS:
        app.include_router(dialect.router)
    app.include_router(routes_tokenize.router)
    app.add_middleware(DisconnectMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=pool.metrics)
    if settings.api_key:
        app.add_middleware(ApiKeyMiddleware, api_key=settings.api_key)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.ui:  # outside the key check: the page loads without the key; the API it calls does not
        app.add_middleware(ui.ChatPageMiddleware)
    # Outermost (added last): CORS answers preflights before the API key is checked (browsers
    # send no credentials on a preflight) and puts its headers on a 401 too.
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, **cors_kwargs(settings.cors_origins))
    return app
