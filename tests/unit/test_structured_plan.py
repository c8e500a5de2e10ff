"""structured.plan / attach / ToolCallDecoder, with the in-process random model."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

mx = pytest.importorskip("mlx.core")
jsonschema = pytest.importorskip("jsonschema")

from tests.support.structured_lm import FakeDecoder, assert_one_call, build_tiny_lm  # noqa: E402

from mlxk.engine.structured import plan as S  # noqa: E402
from mlxk.engine.structured import tools as T  # noqa: E402
from mlxk.engine.types import GenerationRequest  # noqa: E402
from mlxk.errors import ValidationError  # noqa: E402

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "parameters": {
        "type": "object", "properties": {
            "city": {"type": "string", "maxLength": 8},
            "unit": {"enum": ["c", "f"]}},
        "required": ["city", "unit"], "additionalProperties": False}}}
ADD = {"type": "function", "function": {
    "name": "add", "parameters": {
        "type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 99},
                                     "b": {"type": "integer", "minimum": 0, "maximum": 99}},
        "required": ["a", "b"], "additionalProperties": False}}}
MSGS = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def tiny_lm():
    return build_tiny_lm()


def run_plan(lm, request, seed=0, max_tokens=80):
    from mlx_lm.generate import generate_step
    from mlx_lm.sample_utils import make_sampler

    p = S.plan(lm, request)
    prepared = SimpleNamespace(logits_processors=[], decoder=FakeDecoder(lm.tokenizer,
                                                                         lm.eos_token_ids))
    S.attach(lm, p, prepared)
    mx.random.seed(seed)
    prompt = mx.array(lm.tokenizer.encode("hello"))
    chunks = []
    reason = "length"
    for tok, _ in generate_step(prompt, lm.model, max_tokens=max_tokens,
                                sampler=make_sampler(1.0),
                                logits_processors=prepared.logits_processors):
        chunks += prepared.decoder.feed(tok)
        if prepared.decoder.finished:
            reason = "stop"
            break
    chunks.append(prepared.decoder.finish(reason))
    return p, chunks


def test_named_tool_choice_forces_valid_call_from_random_model(tiny_lm):
    req = GenerationRequest(messages=MSGS, tools=[WEATHER, ADD],
                            tool_choice={"type": "function", "function": {"name": "add"}})
    for seed in range(3):
        _p, chunks = run_plan(tiny_lm, req, seed=seed)
        assert_one_call(chunks, "add", ADD["function"]["parameters"])


def test_named_call_that_fills_the_token_limit_is_still_tool_calls(tiny_lm):
    """The named grammar holds one call: a limit that leaves no room for the end token the
    grammar would force next cuts nothing, so the reason is tool_calls, not length."""
    req = GenerationRequest(messages=MSGS, tools=[WEATHER, ADD],
                            tool_choice={"type": "function", "function": {"name": "add"}})
    p, chunks = run_plan(tiny_lm, req, seed=1)
    assert not p.parallel
    _, exact = run_plan(tiny_lm, req, seed=1, max_tokens=chunks[-1].completion_tokens)
    assert_one_call(exact, "add", ADD["function"]["parameters"])


def test_required_picks_any_tool_and_validates(tiny_lm):
    req = GenerationRequest(messages=MSGS, tools=[WEATHER, ADD], tool_choice="required",
                            parallel_tool_calls=False)
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, ADD)}
    for seed in range(3):
        _, chunks = run_plan(tiny_lm, req, seed=seed)
        calls = [c for ch in chunks for c in ch.tool_calls or []]
        assert len(calls) == 1
        fn = calls[0]["function"]
        jsonschema.validate(json.loads(fn["arguments"]), schemas[fn["name"]])


def test_fallback_prompt_used_when_template_has_no_tools(tiny_lm):
    req = GenerationRequest(messages=MSGS, tools=[WEATHER], tool_choice="auto")
    p = S.plan(tiny_lm, req)
    assert p.request.tools is None and p.tool_format == T.HERMES and p.grammar_lark is None
    assert p.request.messages[0]["role"] == "system"
    assert "<tool_call>" in p.request.messages[0]["content"]
    none = S.plan(tiny_lm, GenerationRequest(messages=MSGS, tools=[WEATHER], tool_choice="none"))
    assert none.request.messages == MSGS and none.tool_format is None


def test_template_with_tools_keeps_tools_for_the_template():
    tmpl = "{% if tools %}{{ tools }}{% endif %}<tool_call>"
    lm = SimpleNamespace(tokenizer=SimpleNamespace(chat_template=tmpl))
    history = [*MSGS, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "3"}]
    p = S.plan(lm, GenerationRequest(messages=history, tools=[ADD]))
    assert p.request.tools[0]["function"]["name"] == "add"
    assert p.request.messages[1]["tool_calls"][0]["function"]["arguments"] == {"a": 1, "b": 2}
    assert p.request.messages[2]["role"] == "tool"


def test_auto_with_response_format_is_call_or_json(tiny_lm):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}},
              "required": ["ok"], "additionalProperties": False}
    req = GenerationRequest(messages=MSGS, tools=[ADD], tool_choice="auto",
                            response_format={"type": "json_schema",
                                             "json_schema": {"name": "r", "schema": schema}})
    for seed in range(4):
        _, chunks = run_plan(tiny_lm, req, seed=seed)
        calls = [c for ch in chunks for c in ch.tool_calls or []]
        text = "".join(ch.text for ch in chunks)
        if calls:
            jsonschema.validate(json.loads(calls[0]["function"]["arguments"]),
                                ADD["function"]["parameters"])
        else:
            jsonschema.validate(json.loads(text), schema)


def test_errors_are_validation_errors(tiny_lm):
    with pytest.raises(ValidationError, match="unknown function"):
        S.plan(tiny_lm, GenerationRequest(messages=MSGS, tools=[ADD], tool_choice={
            "type": "function", "function": {"name": "nope"}}))
    bad_tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "wat"}}}
    p = S.plan(tiny_lm, GenerationRequest(messages=MSGS, tools=[bad_tool],
                                          tool_choice="required"))
    with pytest.raises(ValidationError) as err:
        S.check(tiny_lm, p)
    assert err.value.extra.get("param") == "tools"
    with pytest.raises(ValidationError):
        S.plan(tiny_lm, GenerationRequest(prompt="x", tools=[ADD]))


def test_response_format_from_file(tmp_path):
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    f = tmp_path / "s.json"
    f.write_text(json.dumps(schema))
    assert S.response_format_from_file(str(f)) == {
        "type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    f.write_text(json.dumps({"name": "x", "schema": schema, "strict": True}))
    assert S.response_format_from_file(str(f))["json_schema"]["name"] == "x"
    f.write_text("{nope")
    with pytest.raises(ValidationError, match="not valid JSON"):
        S.response_format_from_file(str(f))
    with pytest.raises(ValidationError, match="cannot read"):
        S.response_format_from_file(str(tmp_path / "missing.json"))


def test_attach_defers_grammar_after_preopened_think(tiny_lm, monkeypatch):
    from mlxk.engine.structured import grammar as C

    monkeypatch.setattr(C, "think_end_token", lambda lm: 7)
    p = S.plan(tiny_lm, GenerationRequest(messages=MSGS, response_format={"type": "json_object"}))
    opened = SimpleNamespace(logits_processors=[], decoder=None,
                             prompt_text="<assistant><think>\n")
    S.attach(tiny_lm, p, opened)
    assert opened.logits_processors[0].start_after == 7
    plain = SimpleNamespace(logits_processors=[], decoder=None, prompt_text="<assistant>")
    S.attach(tiny_lm, p, plain)
    assert plain.logits_processors[0].start_after is None
