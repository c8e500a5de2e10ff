"""`mlxk ps`: the models a running `mlxk serve` has loaded."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

from mlxk.cli.options import add_server_flags
from mlxk.output.console import Output
from mlxk.output.human import size_str, table

NAME = "ps"
HELP = "list the models a running server has loaded"
DESCRIPTION = ("Show what a running `mlxk serve` has loaded: memory (weight bytes), state (loading,\n"
               "idle, busy, stopping), requests decoding and queued, and when keep-alive unloads it.")
EXAMPLE = "Examples:\n  mlxk ps\n  mlxk ps --server http://10.0.0.5:8000 --json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_server_flags(p)


def run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.operations.lifecycle import list_loaded

    out.result(list_loaded(args.server, args.api_key), render)
    return 0


def until(iso: str | None, pinned: bool = False, now: datetime | None = None) -> str:
    """``expires_at`` as ``in 4 minutes`` / ``never`` / ``now``."""
    if iso is None:
        return "never (pinned)" if pinned else "never"
    then = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    seconds = int((then - (now or datetime.now(timezone.utc))).total_seconds())
    if seconds <= 1:
        return "now"
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size * 2:
            return f"in {seconds // size} {unit}s"
    return f"in {seconds} seconds"


def render(data: dict) -> str:
    rows = [[m["name"], m["kind"], size_str(m["memory_bytes"]), m["state"],
             f"{m['active_requests']}/{m['queued_requests']}", until(m["expires_at"], m["pinned"])]
            for m in data["models"]]
    if not rows:
        return f"no models loaded on {data['server']}"
    return table(["NAME", "KIND", "SIZE", "STATE", "ACTIVE/QUEUED", "UNTIL"], rows)
