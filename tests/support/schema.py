"""Validate a real command envelope against the JSON Schema shipped for its command."""

from __future__ import annotations

from typing import Any

import jsonschema

from mlxk.schemas import load_schema


def validator(command: str) -> jsonschema.protocols.Validator:
    schema = load_schema(command)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def assert_valid(envelope: dict[str, Any], command: str | None = None) -> dict[str, Any]:
    """Raise ``jsonschema.ValidationError`` unless ``envelope`` matches its command's schema.

    The command defaults to ``envelope["command"]``. Returns the envelope for chaining.
    """
    name = command or envelope.get("command")
    assert isinstance(name, str), f"envelope has no command: {envelope!r}"
    errors = sorted(validator(name).iter_errors(envelope), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        raise jsonschema.ValidationError(
            f"{name} envelope invalid at {list(first.path)}: {first.message}\n{envelope!r}")
    return envelope
