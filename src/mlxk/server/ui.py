"""The chat page at ``/`` and ``/chat``: static HTML, JS and CSS shipped in ``ui_static/``.

It is an outermost ASGI layer rather than a FastAPI route so that the page itself loads
without the API key (the key guards the API the page calls, not the page's own files,
which hold nothing secret) and so that it stays out of the OpenAPI schema. Only ``GET``
and ``HEAD`` of the few known paths are answered here; everything else passes through.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from mlxk import __version__

STATIC_DIR = Path(__file__).parent / "ui_static"
PAGE_PATHS = frozenset({"/", "/chat", "/chat/"})
ASSET_PREFIX = "/ui/"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
# The page talks to its own origin only; nothing inline, nothing from elsewhere.
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_HEADERS = [(b"cache-control", b"no-cache"), (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer")]


def page_url(host: str, port: int) -> str:
    """The address to open in a browser (a wildcard bind is reachable on loopback)."""
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


@lru_cache(maxsize=8)
def _asset(name: str) -> tuple[bytes, str] | None:
    """Bytes and content type of one shipped file; None for anything not shipped."""
    path = STATIC_DIR / name
    if "/" in name or name.startswith(".") or not path.is_file():
        return None
    data = path.read_bytes()
    if name == "index.html":  # versioned asset URLs, so an upgrade never runs a stale script
        data = data.replace(b"{{version}}", __version__.encode())
    return data, _TYPES.get(path.suffix, "application/octet-stream")


def _lookup(path: str) -> tuple[bytes, str] | None:
    if path in PAGE_PATHS:
        return _asset("index.html")
    if path.startswith(ASSET_PREFIX):
        return _asset(path[len(ASSET_PREFIX):])
    return None


class ChatPageMiddleware:
    """Answers ``GET``/``HEAD`` for the chat page and its assets; passes everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = None
        if scope["type"] == "http" and scope.get("method") in ("GET", "HEAD"):
            found = _lookup(scope.get("path", ""))
        if found is None:
            await self.app(scope, receive, send)
            return
        body, content_type = found
        headers = [(b"content-type", content_type.encode()),
                   (b"content-length", str(len(body)).encode()), *_HEADERS]
        if content_type.startswith("text/html"):
            headers.append((b"content-security-policy", _CSP.encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
