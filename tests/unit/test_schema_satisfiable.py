"""Schemas no finite JSON value satisfies are refused (400) before a grammar is built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.support.cli import run_mlxk
from tests.support.schema import assert_valid

from mlxk.engine.structured.satisfiable import check_finite
from mlxk.errors import ValidationError

SELF_REQUIRED = {"type": "object", "properties": {"child": {"$ref": "#"}}, "required": ["child"]}
DEFS_LOOP = {"$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}},
                                "required": ["next"]}}, "$ref": "#/$defs/node"}


@pytest.mark.parametrize("schema", [{"$ref": "#"}, SELF_REQUIRED, DEFS_LOOP,
                                    {"anyOf": [{"$ref": "#"}]},
                                    {"type": "array", "minItems": 1, "items": {"$ref": "#"}}])
def test_endless_schemas_are_refused(schema: dict) -> None:
    with pytest.raises(ValidationError) as info:
        check_finite(schema)
    assert info.value.extra["param"] == "response_format"


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"child": {"$ref": "#"}}},               # optional: {} ends it
    {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"n": {"$ref": "#"}}, "required": ["n"]}]},
    {"type": "array", "items": {"$ref": "#"}},                                # [] ends it
    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
    {"$defs": {"leaf": {"type": "integer"}}, "$ref": "#/$defs/leaf"},
])
def test_recursive_schemas_with_a_way_out_pass(schema: dict) -> None:
    check_finite(schema)


def test_grammar_for_response_format_refuses_before_compiling() -> None:
    from mlxk.engine.structured.grammar import grammar_for_response_format

    with pytest.raises(ValidationError):
        grammar_for_response_format({"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#"}}})


@pytest.mark.slow
def test_run_with_an_endless_schema_is_a_validation_error(tiny_cached: str, tmp_path: Path) -> None:
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps(SELF_REQUIRED))
    r = run_mlxk("run", tiny_cached, "hi", "--json-schema", str(schema), "--json")
    assert r.returncode == 1, r.stdout
    err = assert_valid(r.json)["error"]
    assert err["type"] == "ValidationError" and "no finite JSON value" in err["message"]
