"""`mlxk run --json-schema FILE` with the real SmolLM2 (a real subprocess, temp HF_HOME)."""

from __future__ import annotations

import json

import pytest
from tests.support.cli import run_mlxk
from tests.support.schema import assert_valid

jsonschema = pytest.importorskip("jsonschema")
pytestmark = pytest.mark.slow

SCHEMA = {"type": "object", "properties": {
    "capital": {"type": "string", "maxLength": 12},
    "country": {"enum": ["France", "Italy", "Spain"]}},
    "required": ["capital", "country"], "additionalProperties": False}


def test_run_json_schema_answer_validates(smollm2_cached, tmp_path):
    f = tmp_path / "capital.json"
    f.write_text(json.dumps(SCHEMA))
    r = run_mlxk("--json", "run", smollm2_cached, "What is the capital of France?",
                 "--json-schema", str(f), "--temperature", "0", "--max-tokens", "40")
    assert r.returncode == 0, r.stderr
    env = assert_valid(json.loads(r.stdout), "run")
    data = env["data"]
    assert data["finish_reason"] == "stop"
    jsonschema.validate(json.loads(data["response"]), SCHEMA)
    assert data["parsed"] == json.loads(data["response"])


def test_run_json_schema_errors_before_loading(smollm2_cached, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = run_mlxk("--json", "run", smollm2_cached, "hi", "--json-schema", str(bad))
    assert r.returncode == 1
    err = json.loads(r.stdout)["error"]
    assert err["type"] == "ValidationError" and "not valid JSON" in err["message"]
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"type": "object", "properties": {"a": {"type": "wat"}}}))
    r = run_mlxk("run", smollm2_cached, "hi", "--json-schema", str(invalid), "--max-tokens", "4")
    assert r.returncode == 1
    assert "wat" in r.stderr and "Traceback" not in r.stderr
