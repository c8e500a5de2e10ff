"""Human formatting helpers: sizes, dates, tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone


def size_str(n: int | None) -> str:
    """``1536`` -> ``1.5 KB`` (decimal units, like the hf CLI)."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover


def iso_utc(epoch: float) -> str:
    """Epoch seconds -> ``2026-11-24T06:21:40Z`` (truly UTC)."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def age_str(iso: str | None, now: datetime | None = None) -> str:
    """``2026-11-24T06:21:40Z`` -> ``3 days ago``."""
    if not iso:
        return "-"
    then = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    seconds = max(0, int(((now or datetime.now(timezone.utc)) - then).total_seconds()))
    for limit, unit in ((60, "second"), (3600, "minute"), (86400, "hour"), (86400 * 30, "day"),
                        (86400 * 365, "month")):
        if seconds < limit:
            divisor = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "month": 86400 * 30}[unit]
            count = seconds // divisor
            return "just now" if unit == "second" and count < 5 else (
                f"{count} {unit}{'s' if count != 1 else ''} ago")
    years = seconds // (86400 * 365)
    return f"{years} year{'s' if years != 1 else ''} ago"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain left-aligned text table (no colour, so pipes stay clean)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())
    return "\n".join(lines)
