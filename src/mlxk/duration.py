"""Keep-alive durations, parsed in one place for ``serve``, ``load``, the server's admin API and
the Ollama dialect's ``keep_alive``.

Accepted: seconds as a number (``300``, ``2.5``, also as a string), Go durations as Ollama
sends them (``500ms``, ``30s``, ``5m``, ``1h30m``, ``1.5h``, ``10us``/``10µs``, ``100ns``, an
optional leading sign) plus days (``2d``), ``0`` (unload as soon as the model is idle) and
any negative value (``-1``, ``-1m``: never unload, as Ollama reads it; returned as ``NEVER``).
Case does not matter. Anything else is a ``ValidationError`` that names the value.
"""

from __future__ import annotations

import re

NEVER = -1.0
# unit -> (multiply, divide): sub-second units divide, so "10us" is exactly 1e-05
_UNITS = {"ns": (1.0, 1e9), "us": (1.0, 1e6), "µs": (1.0, 1e6), "μs": (1.0, 1e6), "ms": (1.0, 1e3),
          "s": (1.0, 1.0), "m": (60.0, 1.0), "h": (3600.0, 1.0), "d": (86400.0, 1.0)}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)")
_HELP = "a keep-alive is seconds (300), a duration (30s, 5m, 1h, 1h30m), 0 (unload when idle) or -1 (never)"


def parse_keep_alive(value: str | float | int) -> float:
    """``"5m"`` -> ``300.0``; ``-1`` -> ``NEVER``; raises ``ValidationError`` for anything else."""
    from mlxk.errors import ValidationError

    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValidationError(f"invalid keep-alive {value!r}: {_HELP}", param="keep_alive")
    if isinstance(value, (int, float)):
        seconds: float | None = float(value)
    else:
        text = value.strip().lower()
        sign = -1.0 if text.startswith("-") else 1.0
        seconds = _parse_text(text[1:] if text.startswith(("-", "+")) else text)
        if seconds is not None:
            seconds *= sign
    if seconds is None or seconds != seconds or abs(seconds) == float("inf"):
        raise ValidationError(f"invalid keep-alive {value!r}: {_HELP}", param="keep_alive")
    return NEVER if seconds < 0 else seconds


def _parse_text(text: str) -> float | None:
    if not text or text.startswith(("-", "+")) or text.strip() != text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNITS[u][0] / _UNITS[u][1] for n, u in parts)


def format_keep_alive(seconds: float) -> str:
    """``300`` -> ``5m``, ``-1`` -> ``never``: for human output."""
    if seconds < 0:
        return "never"
    if seconds and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"
