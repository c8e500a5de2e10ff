"""Refuse JSON schemas that no finite JSON value satisfies (``{"$ref": "#"}``, a required
property that is its own object), before a grammar is built from them.

Constrained decoding of such a schema can only produce a prefix (``""``, ``{"``) that never
parses, and the promise is output that always parses; so these are a 400. Pure Python.
"""

from __future__ import annotations

from typing import Any

from mlxk.errors import ValidationError

_ANY = ("anyOf", "oneOf")


def _resolve(root: Any, ref: str) -> Any:
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        return {}   # a remote ref: not ours to judge (the grammar compiler decides)
    node = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return {}
    return node


def _finite(root: Any, node: Any, refs: tuple[str, ...]) -> bool:
    """Whether some finite value satisfies ``node``; ``refs`` are the references being expanded."""
    if node is True or not isinstance(node, dict):
        return node is not False
    ref = node.get("$ref")
    if isinstance(ref, str):
        if ref in refs:
            return False                      # this path only recurses: no finite end
        if not _finite(root, _resolve(root, ref), (*refs, ref)):
            return False
    for key in _ANY:
        options = node.get(key)
        if isinstance(options, list) and options and not any(_finite(root, o, refs) for o in options):
            return False
    parts = node.get("allOf")
    if isinstance(parts, list) and not all(_finite(root, p, refs) for p in parts):
        return False
    types = node.get("type")
    if isinstance(types, list) and len(types) > 1:
        return any(_finite(root, {**node, "type": t}, refs) for t in types)
    kind = types[0] if isinstance(types, list) and types else types
    if kind in (None, "object"):
        props = node.get("properties") if isinstance(node.get("properties"), dict) else {}
        for name in node.get("required") or ():
            if name in props and not _finite(root, props[name], refs):
                return False
    if kind in (None, "array"):
        items = node.get("items")
        if (node.get("minItems") or 0) > 0 and items is not None and not _finite(root, items, refs):
            return False
    return True


def check_finite(schema: Any, param: str = "response_format") -> None:
    """``ValidationError`` (400) when no finite JSON value satisfies ``schema``."""
    if not _finite(schema, schema, ()):
        raise ValidationError("the JSON schema refers to itself with no way out (e.g. {\"$ref\": \"#\"}, "
                              "or a required property of its own type): no finite JSON value "
                              "satisfies it", param=param)
