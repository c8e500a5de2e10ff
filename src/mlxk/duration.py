"""Keep-alive durations, parsed in one place for ``serve``, ``load`` and the server's admin API.

Accepted: seconds as a number (``300``, ``2.5``), Go/Ollama-style units (``30s``, ``5m``,
``1h``, ``1h30m``, ``2d``), ``0`` (unload as soon as the model is idle) and ``-1`` (never
unload; like Ollama, any negative value means never). Anything else is a ``ValidationError``
that names the value.
"""

from __future__ import annotations

import re

NEVER = -1.0
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_HELP = "a keep-alive is seconds (300), a duration (30s, 5m, 1h, 1h30m), 0 (unload when idle) or -1 (never)"


def parse_keep_alive(value: str | float | int) -> float:
    """``"5m"`` -> ``300.0``; ``-1`` -> ``NEVER``; raises ``ValidationError`` for anything else."""
    from mlxk.errors import ValidationError

    if isinstance(value, bool):
        raise ValidationError(f"invalid keep-alive {value!r}: {_HELP}", param="keep_alive")
    if isinstance(value, (int, float)):
        seconds: float | None = float(value)
    else:
        text = value.strip().lower()
        seconds = _parse_text(text.removeprefix("-"))
        if seconds is not None and text.startswith("-"):
            seconds = -seconds
    if seconds is None or seconds != seconds or abs(seconds) == float("inf"):
        raise ValidationError(f"invalid keep-alive {value!r}: {_HELP}", param="keep_alive")
    return NEVER if seconds < 0 else seconds


def _parse_text(text: str) -> float | None:
    if text.startswith(("-", "+")):
        return None
    try:
        return float(text)
    except ValueError:
        pass
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def format_keep_alive(seconds: float) -> str:
    """``300`` -> ``5m``, ``-1`` -> ``never``: for human output."""
    if seconds < 0:
        return "never"
    if seconds and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"
