"""Tool-call parsers on synthetic model outputs, fed whole and split at every position."""

from __future__ import annotations

import json

import pytest

from mlxk.engine.structured import tools as T
from mlxk.errors import ValidationError

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def feed_split(parser: T.ToolCallParser, text: str, cuts: list[int]):
    content, calls = "", []
    prev = 0
    for cut in [*cuts, len(text)]:
        r = parser.feed(text[prev:cut])
        content += r.text
        calls += r.calls
        prev = cut
    r = parser.finish()
    return content + r.text, calls + r.calls


def all_splits(text: str, fmt: str, parallel: bool = True):
    """Parse ``text`` whole, split once at every position, and char by char; all must agree."""
    results = [feed_split(T.ToolCallParser(fmt, parallel), text, [])]
    for i in range(1, len(text)):
        results.append(feed_split(T.ToolCallParser(fmt, parallel), text, [i]))
    results.append(feed_split(T.ToolCallParser(fmt, parallel), text, list(range(1, len(text)))))
    norm = [(c, [(x["index"], x["type"], x["function"]["name"],
                  json.loads(x["function"]["arguments"])) for x in calls])
            for c, calls in results]
    for r in norm[1:]:
        assert r == norm[0]
    for _, calls in results:
        for x in calls:
            assert x["id"].startswith("call_")
            assert isinstance(x["function"]["arguments"], str)
    return norm[0]


def test_hermes_single_call():
    text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    content, calls = all_splits(text, T.HERMES)
    assert content == ""
    assert calls == [(0, "function", "get_weather", {"city": "Paris"})]


def test_hermes_text_then_two_calls():
    text = ('Let me check. <tool_call>{"name": "get_weather", "arguments": {"city": "a<b"}}'
            '</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>\n')
    content, calls = all_splits(text, T.HERMES)
    assert content == "Let me check. "
    assert [c[2] for c in calls] == ["get_weather", "get_time"]
    assert [c[0] for c in calls] == [0, 1]
    assert calls[0][3] == {"city": "a<b"}


def test_hermes_parallel_false_keeps_first():
    text = ('<tool_call>{"name": "get_weather", "arguments": {"city": "X"}}</tool_call>'
            '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>')
    _, calls = all_splits(text, T.HERMES, parallel=False)
    assert [c[2] for c in calls] == ["get_weather"]


def test_hermes_plain_text_passes_through_including_lookalikes():
    text = "a <tool and <tool_cal x </tool_call> done\n"
    content, calls = all_splits(text, T.HERMES)
    assert content == text and calls == []


def test_hermes_invalid_json_is_content():
    text = "<tool_call>{not json}</tool_call> ok"
    content, calls = all_splits(text, T.HERMES)
    assert calls == [] and content == text


def test_hermes_unterminated_call_at_end_still_parses():
    text = '<tool_call>\n{"name": "get_time", "arguments": {}}\n'
    _, calls = all_splits(text, T.HERMES)
    assert calls == [(0, "function", "get_time", {})]


def test_llama3_json_parameters_and_python_tag():
    text = '{"name": "get_weather", "parameters": {"city": "Oslo"}}'
    assert all_splits(text, T.LLAMA3)[1] == [(0, "function", "get_weather", {"city": "Oslo"})]
    text = '<|python_tag|>{"name": "get_time", "arguments": {}}; {"name": "get_weather", ' \
           '"parameters": {"city": "Rome"}}'
    content, calls = all_splits(text, T.LLAMA3)
    assert content == ""
    assert [c[2] for c in calls] == ["get_time", "get_weather"]


def test_llama3_plain_answers_are_content():
    for text in ["Paris is the capital.", '{"answer": 42}', '{"a": "}"} and more']:
        content, calls = all_splits(text, T.LLAMA3)
        assert calls == [] and content == text


def test_mistral_array():
    text = ('[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Lyon"}}, '
            '{"name": "get_time", "arguments": {}}]')
    content, calls = all_splits(text, T.MISTRAL)
    assert content == ""
    assert [(c[2], c[3]) for c in calls] == [("get_weather", {"city": "Lyon"}), ("get_time", {})]
    # marker stripped as a special token by the detokenizer: bare array at the start
    assert all_splits(text[len("[TOOL_CALLS]"):], T.MISTRAL)[1] == calls
    # text first, then the marker
    content, calls2 = all_splits("Sure. " + text, T.MISTRAL)
    assert content == "Sure. " and [c[2] for c in calls2] == ["get_weather", "get_time"]


def test_string_arguments_kept_as_json_string():
    _, calls = T.parse_tool_calls('<tool_call>{"name": "f", "arguments": "{\\"x\\": 1}"}'
                                  '</tool_call>')
    assert calls[0]["function"]["arguments"] == '{"x": 1}'


def test_tool_choice_resolution():
    tools = T.normalize_tools([WEATHER, TIME])
    assert T.resolve_tool_choice(None, tools) == T.ToolChoice("auto")
    assert T.resolve_tool_choice(None, []) == T.ToolChoice("none")
    assert T.resolve_tool_choice("required", tools) == T.ToolChoice("required")
    named = {"type": "function", "function": {"name": "get_time"}}
    assert T.resolve_tool_choice(named, tools) == T.ToolChoice("named", "get_time")
    with pytest.raises(ValidationError, match="unknown function 'nope'"):
        T.resolve_tool_choice({"type": "function", "function": {"name": "nope"}}, tools)
    with pytest.raises(ValidationError):
        T.resolve_tool_choice("sometimes", tools)
    with pytest.raises(ValidationError):
        T.resolve_tool_choice("required", [])


def test_normalize_tools_rejects_bad_shapes():
    with pytest.raises(ValidationError):
        T.normalize_tools([{"type": "retrieval"}])
    with pytest.raises(ValidationError):
        T.normalize_tools([{"type": "function", "function": {"description": "x"}}])
    with pytest.raises(ValidationError, match="duplicate"):
        T.normalize_tools([WEATHER, WEATHER])


def test_format_detection():
    assert T.detect_format(None) == T.HERMES
    assert T.detect_format("{% if tools %}<tool_call>{% endif %}") == T.HERMES
    assert T.detect_format("[AVAILABLE_TOOLS]{{tools}}[TOOL_CALLS]") == T.MISTRAL
    assert T.detect_format("<|start_header_id|>{{ tools }}<|python_tag|>") == T.LLAMA3
    assert T.template_supports_tools("{% for t in tools %}{% endfor %}")
    assert not T.template_supports_tools("{{ messages }}")


def test_fallback_messages_round_trip_history():
    tools = T.normalize_tools([WEATHER])
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
    ]
    out = T.messages_for_fallback(msgs, tools, T.ToolChoice("auto"))
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert out[0]["content"].startswith("Be brief.") and "get_weather" in out[0]["content"]
    # the rendered history call is parseable by our own parser (the format we document)
    _, calls = T.parse_tool_calls(out[2]["content"])
    assert calls[0]["function"]["name"] == "get_weather"
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris"}
    assert "<tool_response>" in out[3]["content"] and '{"temp": 21}' in out[3]["content"]
    tmpl = T.messages_for_template(msgs)
    assert tmpl[2]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert msgs[2]["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'


def test_call_schema_named_and_required():
    tools = T.normalize_tools([WEATHER, TIME])
    named = T.call_schema(tools, T.ToolChoice("named", "get_weather"))
    assert named["properties"]["name"] == {"const": "get_weather"}
    req = T.call_schema(tools, T.ToolChoice("required"))
    assert len(req["anyOf"]) == 2
    lark, subs = T.call_grammar_lark(T.HERMES, tools, T.ToolChoice("required"), True,
                                     lambda s: "%json " + json.dumps(s))
    assert "<tool_call>" in lark and "%json" in lark and subs == {}


@pytest.mark.parametrize("fmt,text", [
    (T.HERMES, '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
               '<tool_call>\n{"name": "get_weather", "arguments": {"city":"Paris"}}\n</tool_call>\n'
               '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'),
    (T.LLAMA3, '{"name": "get_weather", "parameters": {"city": "Paris"}}; '
               '{"name": "get_weather", "parameters": {"city": "Paris"}}'),
    (T.MISTRAL, '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}, '
                '{"name": "get_weather", "arguments": {"city": "Paris"}}]'),
])
def test_an_identical_repeated_call_is_dropped_and_ends_the_answer(fmt: str, text: str) -> None:
    """SmolLM2 under tool_choice=required repeated its call (issue 12): one call comes back."""
    _, calls = all_splits(text, fmt)
    assert calls == [(0, "function", "get_weather", {"city": "Paris"})]


def test_the_same_function_with_other_arguments_is_a_second_call() -> None:
    text = ('<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
            '<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>')
    _, calls = all_splits(text, T.HERMES)
    assert [c[3] for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]
