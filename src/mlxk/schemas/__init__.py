"""JSON Schemas of every command's envelope, shipped with the package.

Each ``<command>.json`` references shared definitions in ``common.json``
(``"$ref": "common.json#/$defs/..."``). ``load_schema`` returns a self-contained
schema (the shared ``$defs`` inlined) that any JSON Schema validator accepts.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

COMMON = "common"


def schema_names() -> list[str]:
    """Commands that ship a schema (``list``, ``show``, ...)."""
    names = [p.name[:-5] for p in resources.files(__package__).iterdir() if p.name.endswith(".json")]
    return sorted(n for n in names if n != COMMON)


@cache
def _raw(name: str) -> str:
    return resources.files(__package__).joinpath(f"{name}.json").read_text(encoding="utf-8")


def load_schema(command: str) -> dict[str, Any]:
    """The schema of ``command``'s envelope with ``common.json``'s ``$defs`` inlined."""
    if command not in schema_names():
        raise KeyError(f"no JSON schema for command '{command}'")
    text = _raw(command).replace('"common.json#/$defs/', '"#/$defs/')
    schema = json.loads(text)
    defs = json.loads(_raw(COMMON))["$defs"]
    schema["$defs"] = {**defs, **schema.get("$defs", {})}
    return schema
