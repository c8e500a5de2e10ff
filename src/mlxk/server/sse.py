"""Server-sent events framing: ``data: {json}\\n\\n`` events, an error event, ``data: [DONE]``."""

from __future__ import annotations

import json
from typing import Any

DONE = b"data: [DONE]\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}
MEDIA_TYPE = "text/event-stream"


def event(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def error_event(body: dict[str, Any]) -> bytes:
    """An error after the stream began: the OpenAI error body as one data event."""
    return event(body)
