"""Line protocol between the launching `mlxk` process and rank 0 (pure, no mlx).

Parent -> rank 0: one JSON object per line on rank 0's stdin (``{"op": ...}``).
Rank 0 -> parent: lines on rank 0's stdout that start with ``PREFIX`` carry one JSON
event; any other stdout line is ordinary output. Ranks talk to EACH OTHER only
through MLX collectives (see ``engine.distributed``); this protocol is just the
launcher's control pipe, the same pipes ``mlx.launch`` gives every rank.
"""

from __future__ import annotations

import json
from typing import Any

PREFIX = "\x1emlxk-rank "

# Exit codes of a rank process.
EXIT_OK = 0
EXIT_ERROR = 1          # an error event was emitted before exiting
EXIT_LOST_PEER = 75     # a collective failed or timed out: another rank is gone


def encode_event(kind: str, **fields: Any) -> str:
    return PREFIX + json.dumps({"ev": kind, **fields}, separators=(",", ":")) + "\n"


def decode_event(line: str) -> dict[str, Any] | None:
    if not line.startswith(PREFIX):
        return None
    try:
        obj = json.loads(line[len(PREFIX):])
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def encode_op(op: str, **fields: Any) -> bytes:
    return (json.dumps({"op": op, **fields}, separators=(",", ":")) + "\n").encode()
