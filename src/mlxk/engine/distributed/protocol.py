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


# A remote rank 0 reads its stdin through the pseudo-terminal of ``ssh -tt`` (how mlx.launch
# starts remote ranks); a terminal line holds at most ~1-4 KiB, so long ops (a big prompt)
# travel as several lines: "+<piece>" continuation lines, then the last piece without "+".
# json.dumps escapes every non-ASCII and control character, so no byte reaches the
# terminal's line discipline as a special key.
LINE_PIECE = 512


def encode_op(op: str, **fields: Any) -> bytes:
    text = json.dumps({"op": op, **fields}, separators=(",", ":"))
    pieces = [text[i:i + LINE_PIECE] for i in range(0, len(text), LINE_PIECE)] or [""]
    return "".join([f"+{p}\n" for p in pieces[:-1]] + [pieces[-1] + "\n"]).encode()


class OpReader:
    """Reassembles ops from lines (see ``encode_op``); ``feed`` returns a whole op or None."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def feed(self, line: str) -> dict[str, Any] | None:
        line = line.strip("\r\n")
        if line.startswith("+"):
            self._parts.append(line[1:])
            return None
        text, self._parts = "".join(self._parts) + line, []
        if not text.strip():
            return None
        try:
            obj = json.loads(text)
        except ValueError:
            return None
        return obj if isinstance(obj, dict) else None
