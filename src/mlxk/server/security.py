"""Security middleware (pure ASGI, so streaming responses pass through untouched).

- ``ApiKeyMiddleware``: every route but ``/health`` and ``/api/version`` needs the key, as
  ``Authorization: Bearer <key>`` or ``x-api-key: <key>`` (Anthropic's header), compared in
  constant time; the 401 body has the shape of the path's dialect.
- ``BodyLimitMiddleware``: a body over the limit is a 413, by ``Content-Length`` up
  front or by counting a chunked body as it arrives.
CORS is Starlette's middleware, added only when ``--cors-origins`` is given.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlxk.errors import MlxkError, PayloadTooLarge, Unauthorized
from mlxk.server.dialects import shape_error
from mlxk.server.errors import mlxk_error_body

OPEN_PATHS = frozenset({"/health", "/api/version"})


async def send_error(send: Send, exc: MlxkError, headers: list[tuple[bytes, bytes]] | None = None,
                     path: str = "") -> None:
    status, body = mlxk_error_body(exc)
    payload = json.dumps(shape_error(path, status, body)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": payload})


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.key = api_key.encode()

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key):
                    return True
            elif name == b"x-api-key" and hmac.compare_digest(value.strip(), self.key):
                return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        await send_error(send, Unauthorized("invalid or missing API key (send 'Authorization: Bearer "
                                            "<key>' or 'x-api-key: <key>')"),
                         [(b"www-authenticate", b"Bearer")], scope.get("path", ""))


class _TooLarge(Exception):
    pass


# A body declared too large is read and dropped up to this many bytes before the 413 goes out:
# a client still sending when the server closes the connection sees a reset, not the 413.
DRAIN_CAP_BYTES = 64 * 1024 * 1024


async def _drain(receive: Receive, limit: int) -> None:
    read = 0
    while read <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        read += len(message.get("body", b""))
        if not message.get("more_body"):
            return


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _error(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request body exceeds the limit of {self.max_bytes} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    if int(value) <= DRAIN_CAP_BYTES:
                        await _drain(receive, DRAIN_CAP_BYTES)
                    await send_error(send, self._error(), [(b"connection", b"close")])
                    return
        seen = 0
        started = False
        responded = False

        async def limited_receive() -> Message:
            nonlocal seen, responded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes and not responded:
                    # Answer now: frameworks turn errors raised while reading the body into 400s.
                    responded = True
                    if not started:
                        await send_error(send, self._error(), [(b"connection", b"close")])
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if responded:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            pass


def cors_kwargs(origins: list[str]) -> dict[str, Any]:
    return {"allow_origins": origins, "allow_methods": ["GET", "POST", "OPTIONS"],
            "allow_headers": ["Authorization", "Content-Type", "x-api-key", "anthropic-version",
                              "anthropic-beta"], "allow_credentials": False,
            "max_age": 600}
