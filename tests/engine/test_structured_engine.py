"""Structured output through the engine's own prepare/stream/complete on the tiny random llama
(the engine fixture): real SequenceDecoder, real tokenizer, real chat template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.support.structured_lm import assert_one_call

from mlxk.engine.types import GenerationRequest, SamplingParams

jsonschema = pytest.importorskip("jsonschema")

HOT = SamplingParams(temperature=1.0, seed=5)
SCHEMA = {"type": "object", "properties": {
    "ok": {"type": "boolean"}, "n": {"type": "integer", "minimum": 0, "maximum": 9},
    "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2}},
    "required": ["ok", "n", "tags"], "additionalProperties": False}
ADD = {"type": "function", "function": {"name": "add", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 9},
                                     "b": {"type": "integer", "minimum": 0, "maximum": 9}},
    "required": ["a", "b"], "additionalProperties": False}}}
MSGS = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def tiny_lm(tiny_model_dir: Path):
    from mlxk.engine.loader import load_model

    return load_model(tiny_model_dir, "mlxk-test/tiny-llama")


def test_response_format_through_engine_stream(tiny_lm):
    from mlxk.engine.generate import complete

    rf = {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}
    for seed in (1, 2):
        req = GenerationRequest(messages=MSGS, sampling=SamplingParams(temperature=1.0, seed=seed),
                                max_tokens=60, response_format=rf)
        c = complete(tiny_lm, req)
        assert c.finish_reason == "stop", c.text
        jsonschema.validate(json.loads(c.text), SCHEMA)


def test_named_tool_call_through_engine_stream(tiny_lm):
    from mlxk.engine.generate import prepare, stream

    req = GenerationRequest(messages=MSGS, sampling=HOT, max_tokens=60, tools=[ADD],
                            tool_choice={"type": "function", "function": {"name": "add"}})
    p = prepare(tiny_lm, req)
    # the tiny template has no tool support: the fallback system turn describes the tool
    assert "<tool_call>" in p.prompt_text and '"name":"add"' in p.prompt_text
    chunks = list(stream(tiny_lm, req, p))
    assert_one_call(chunks, "add", ADD["function"]["parameters"])
    assert chunks[-1].completion_tokens > 0 and chunks[-1].prompt_tokens == len(p.prompt_tokens)


def test_tool_choice_none_renders_no_tools(tiny_lm):
    from mlxk.engine.generate import prepare

    p = prepare(tiny_lm, GenerationRequest(messages=MSGS, tools=[ADD], tool_choice="none"))
    from mlxk.engine.structured.grammar import GrammarLogitsProcessor

    assert "add" not in p.prompt_text
    assert not any(isinstance(x, GrammarLogitsProcessor) for x in p.logits_processors)
