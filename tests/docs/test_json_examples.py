"""Every JSON example in the docs parses, and every envelope example validates against its schema.

Convention: an envelope example is a fenced block whose info string is ``json command=<name>``
(``<name>`` is the envelope's ``command``); it is validated against the shipped schema of that
command. Other ``json`` blocks (OpenAI request/response bodies) must at least parse.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from scripts import gen_docs

from tests.support.markdown import REPO_ROOT, markdown_files, split_fences


def _schemas_by_command() -> dict[str, dict]:
    return {gen_docs.schema_command(name, s): s for name, s in gen_docs.load_schemas().items()}


def _json_blocks() -> list[tuple[Path, int, str | None, str]]:
    found = []
    for md in markdown_files():
        blocks, _ = split_fences(md.read_text())
        found += [(md, b.line, b.attr("command"), b.text) for b in blocks if b.lang in ("json", "jsonc")]
    return found


def _id(item: tuple[Path, int, str | None, str]) -> str:
    return f"{item[0].relative_to(REPO_ROOT)}:{item[1]}"


@pytest.mark.parametrize("item", _json_blocks(), ids=_id)
def test_json_example_parses_and_validates(item: tuple[Path, int, str | None, str]) -> None:
    md, line, command, text = item
    doc = json.loads(text)
    if command is None:
        return
    schemas = _schemas_by_command()
    assert command in schemas, f"{md.name}:{line}: no shipped schema for command {command!r}"
    assert doc.get("command") == command, f"{md.name}:{line}: envelope says {doc.get('command')!r}"
    jsonschema.validate(doc, schemas[command])


def test_every_schema_has_an_example_in_the_json_api_reference() -> None:
    blocks, _ = split_fences(gen_docs.JSON_API_MD.read_text())
    shown = {b.attr("command") for b in blocks if b.lang == "json"}
    missing = sorted(set(_schemas_by_command()) - shown)
    assert missing == [], "add a real example envelope to docs/json-api.md for these commands"


def test_a_wrong_example_is_rejected() -> None:
    schemas = _schemas_by_command()
    if not schemas:
        pytest.skip("no schemas shipped yet")
    command, schema = next(iter(schemas.items()))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"status": "success", "command": command, "data": None,
                             "error": {"type": 1}}, schema)
