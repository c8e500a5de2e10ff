"""The outermost middleware: count every request (401s and 413s included) and log one line each.

Requests are counted by route template (``/v1/models/{model_id:path}``), never by the raw
path, so a client cannot blow up the metric's cardinality; a path no route knows is
``other``. The log line (logger ``mlxk.server.access``) names method, path, status, the
model and token counts the response reported, and the duration::

    POST /v1/chat/completions 200 model=org/name tokens=12/34 0.412s
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlxk.server.dialects import dialect_of
from mlxk.server.disconnect import CLIENT_GONE
from mlxk.server.metrics import Metrics

access_log = logging.getLogger("mlxk.server.access")
_MAX_JSON_BYTES = 1 << 20   # larger bodies (embeddings) are not parsed for the log line


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    if route is not None and getattr(route, "path", None):
        return route.path
    app = scope.get("app")
    for candidate in getattr(getattr(app, "router", None), "routes", ()):
        try:
            match, _ = candidate.matches(scope)
        except Exception:  # a route type that cannot match this scope
            continue
        if match == Match.FULL:
            return getattr(candidate, "path", "other")
    return "other"


class _Seen:
    """What the response said about itself: status, model, usage."""

    def __init__(self) -> None:
        self.status = 500
        self.json = False
        self.body = bytearray()
        self.model: str | None = None
        self.usage: dict[str, Any] | None = None

    def start(self, message: Message) -> None:
        self.status = message["status"]
        for name, value in message.get("headers", ()):
            if name.lower() == b"content-type":
                self.json = value.startswith(b"application/json")

    def body_part(self, chunk: bytes) -> None:
        if self.json:
            if len(self.body) + len(chunk) <= _MAX_JSON_BYTES:
                self.body += chunk
            return
        if b'"model"' in chunk or b'"usage"' in chunk:   # SSE: ``data: {...}`` events
            for line in chunk.split(b"\n"):
                if line.startswith(b"data: {"):
                    self._note(line[6:])

    def finish(self) -> None:
        if self.json and self.body:
            self._note(bytes(self.body))

    def _note(self, raw: bytes) -> None:
        try:
            data = json.loads(raw)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        if isinstance(data.get("model"), str):
            self.model = data["model"]
        if isinstance(data.get("usage"), dict):
            self.usage = data["usage"]

    def tokens(self) -> str:
        if not self.usage:
            return "-"
        return f"{self.usage.get('prompt_tokens', 0)}/{self.usage.get('completion_tokens', 0)}"


class AccessMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = _Seen()
        t0 = time.perf_counter()

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen.start(message)
            elif message["type"] == "http.response.body":
                seen.body_part(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            seen.finish()
            if scope.get(CLIENT_GONE):
                seen.status = 499   # the client went away before the answer was complete
            self.metrics.requests.labels(route_template(scope), str(seen.status)).inc()
            dialect = dialect_of(scope.get("path", ""))
            if dialect is not None:
                self.metrics.dialect_requests.labels(dialect, str(seen.status)).inc()
            access_log.info("%s %s %d model=%s tokens=%s %.3fs", scope.get("method", "-"),
                            scope.get("path", ""), seen.status, seen.model or "-", seen.tokens(),
                            time.perf_counter() - t0)
