"""Wire dialects: each module translates one API's requests into ``core.CoreRequest`` and
the core's events into that API's responses (``anthropic``, ``openai_responses``, ``ollama``).

This package module holds what every layer needs without importing a translator:
which dialect a path belongs to (metrics, error shapes, auth) and the error body
each dialect's clients expect.
"""

from __future__ import annotations

from typing import Any

ANTHROPIC, RESPONSES, OLLAMA = "anthropic", "openai_responses", "ollama"
CHAT, COMPLETIONS, EMBEDDINGS = "openai_chat", "openai_completions", "openai_embeddings"

_PREFIXES = (("/v1/messages", ANTHROPIC), ("/v1/responses", RESPONSES), ("/api/", OLLAMA),
             ("/v1/chat/completions", CHAT), ("/v1/completions", COMPLETIONS),
             ("/v1/embeddings", EMBEDDINGS))

_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                    429: "rate_limit_error", 503: "overloaded_error", 529: "overloaded_error"}


def dialect_of(path: str) -> str | None:
    """The dialect a request path speaks (None: not a generation API: /health, /v1/models ...)."""
    for prefix, name in _PREFIXES:
        if path.startswith(prefix):
            return name
    return None


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    kind = _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def shape_error(path: str, status: int, body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-shaped error body, reshaped for the dialect of ``path``."""
    dialect = dialect_of(path)
    message = str((body.get("error") or {}).get("message", "error"))
    if dialect == ANTHROPIC:
        return anthropic_error(status, message)
    if dialect == OLLAMA:
        return {"error": message}
    return body
