"""Every shipped schema is a valid JSON Schema, self-contained after load_schema, and strict enough."""

from __future__ import annotations

import jsonschema
import pytest
from tests.support.schema import assert_valid

from mlxk.schemas import load_schema, schema_names


def test_mine_are_shipped() -> None:
    assert {"list", "show", "health", "rm", "version"} <= set(schema_names())


@pytest.mark.parametrize("command", schema_names())
def test_schema_is_valid_and_accepts_error_envelopes(command: str) -> None:
    schema = load_schema(command)
    jsonschema.validators.validator_for(schema).check_schema(schema)
    assert "common.json#" not in str(schema)  # refs inlined
    err = {"status": "error", "command": command, "data": None,
           "error": {"type": "model_not_found", "message": "x"}}
    assert_valid(err)


@pytest.mark.parametrize("bad", [
    {"status": "success", "command": "list", "data": {"models": [], "count": 0}},            # no error key
    {"status": "success", "command": "list", "data": {"models": []}, "error": None},          # no count
    {"status": "error", "command": "list", "data": None, "error": None},                      # error without body
    {"status": "success", "command": "show", "data": {"models": [], "count": 0}, "error": None},
    {"status": "success", "command": "list", "data": {"models": [{"name": "x"}], "count": 1}, "error": None},
    {"status": "success", "command": "rm", "data": {"model": "a/b", "action": "nuked", "message": "",
                                                    "freed_bytes": 0, "commit_hash": None}, "error": None},
])
def test_schema_rejects_wrong_shapes(bad: dict) -> None:
    with pytest.raises(jsonschema.ValidationError):
        assert_valid(bad)


def test_unknown_command_has_no_schema() -> None:
    with pytest.raises(KeyError):
        load_schema("nope")
