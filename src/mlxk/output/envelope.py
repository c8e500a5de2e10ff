"""The JSON envelope every command prints: ``{status, command, data, error}``."""

from __future__ import annotations

from typing import Any

from mlxk.errors import MlxkError


def success(command: str, data: Any) -> dict[str, Any]:
    return {"status": "success", "command": command, "data": data, "error": None}


def failure(command: str, error: MlxkError) -> dict[str, Any]:
    return {"status": "error", "command": command, "data": None, "error": error.to_dict()}
