"""The dialect translators in both directions, without a server: wire request -> core request,
core events -> wire bodies and event streams. Requests shaped like Claude Code's and Codex's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlxk.errors import ModelNotFound, ValidationError
from mlxk.server import core
from mlxk.server.dialects import anthropic as ant
from mlxk.server.dialects import dialect_of, shape_error
from mlxk.server.dialects import ollama as oll
from mlxk.server.dialects import openai_responses as rsp

TIMINGS = core.Timings(total_ns=9_000, load_ns=1_000, prompt_eval_ns=3_000, eval_ns=5_000)
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def done(reason: str = "stop", stop: str | None = None) -> core.Finished:
    return core.Finished(reason, prompt_tokens=20, completion_tokens=7, cached_tokens=5,
                         timings=TIMINGS, stop_sequence=stop)


def call(name: str = "get_weather", args: str = '{"city": "Paris"}') -> core.ToolCall:
    return core.ToolCall(0, "call_abc123", name, args)


def sse(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in data.decode().split("\n\n"):
        if block.strip():
            name, payload = block.split("\n", 1)
            out.append((name.removeprefix("event: "), json.loads(payload.removeprefix("data: "))))
    return out


# --- Anthropic -----------------------------------------------------------------------------------

def claude_code_request() -> dict[str, Any]:
    tools = [{"name": f"tool_{i}", "description": f"tool number {i}", "input_schema": SCHEMA,
              **({"cache_control": {"type": "ephemeral"}} if i == 39 else {})} for i in range(40)]
    return {
        "model": "org/model", "max_tokens": 32000, "stream": True,
        "system": [{"type": "text", "text": "You are Claude Code."},
                   {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "list files",
                                          "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should call a tool", "signature": "sig"},
                {"type": "text", "text": "Listing."},
                {"type": "tool_use", "id": "toolu_1", "name": "tool_3", "input": {"city": "x"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1",
                 "content": [{"type": "text", "text": "a.txt b.txt"}]},
                {"type": "text", "text": "now summarise"}]},
        ],
        "tools": tools, "metadata": {"user_id": "user_abc_session_1"},
        "thinking": {"type": "enabled", "budget_tokens": 4000},
        "context_management": {"edits": []},
    }


def test_claude_code_shaped_request_translates() -> None:
    req = ant.MessagesRequest.model_validate(claude_code_request())
    c = ant.to_core(req)
    msgs = c.gen.messages
    assert msgs[0] == {"role": "system", "content": "You are Claude Code.Be brief."}
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "user"]
    assert msgs[2]["content"] == "Listing."  # thinking dropped
    assert msgs[2]["tool_calls"][0]["function"] == {"name": "tool_3", "arguments": '{"city": "x"}'}
    assert msgs[3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "a.txt b.txt"}
    assert len(c.gen.tools) == 40 and c.gen.tools[0]["function"]["parameters"] == SCHEMA
    assert c.gen.max_tokens == 32000 and c.model == "org/model" and c.dialect == "anthropic"


@pytest.mark.parametrize(("choice", "expected", "parallel"), [
    ({"type": "auto"}, "auto", True),
    ({"type": "any"}, "required", True),
    ({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
     {"type": "function", "function": {"name": "get_weather"}}, False),
])
def test_anthropic_tool_choice(choice: dict, expected: Any, parallel: bool) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "get_weather", "input_schema": SCHEMA}], "tool_choice": choice}
    c = ant.to_core(ant.MessagesRequest.model_validate(body))
    assert (c.gen.tool_choice, c.gen.parallel_tool_calls) == (expected, parallel)


def test_anthropic_tool_choice_none_drops_the_tools() -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "get_weather", "input_schema": SCHEMA}], "tool_choice": {"type": "none"}}
    assert ant.to_core(ant.MessagesRequest.model_validate(body)).gen.tools is None


@pytest.mark.parametrize(("patch", "needle"), [
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "web_search_20250305"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}, "image"),
    ({"tool_choice": {"type": "tool", "name": "nope"},
      "tools": [{"name": "get_weather", "input_schema": SCHEMA}]}, "nope"),
    ({"tool_choice": {"type": "any"}}, "requires tools"),
    ({"output_config": {"format": {"type": "json_schema"}}}, "output_config"),
    ({"messages": [{"role": "system", "content": "x"}]}, "role"),
])
def test_anthropic_bad_requests_name_the_problem(patch: dict, needle: str) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], **patch}
    with pytest.raises(ValidationError) as exc:
        ant.to_core(ant.MessagesRequest.model_validate(body))
    assert needle in exc.value.message


def test_anthropic_output_config_becomes_a_json_schema() -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
            "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}}
    fmt = ant.to_core(ant.MessagesRequest.model_validate(body)).gen.response_format
    assert fmt == {"type": "json_schema", "json_schema": {"name": "output", "schema": SCHEMA}}


def test_anthropic_message_body() -> None:
    result = core.Result(text="", reasoning="hmm", tool_calls=[call()], finished=done("tool_calls"))
    body = ant.message("msg_1", "org/model", result)
    assert [b["type"] for b in body["content"]] == ["thinking", "tool_use"]
    assert body["content"][1] == {"type": "tool_use", "id": "toolu_abc123", "name": "get_weather",
                                  "input": {"city": "Paris"}}
    assert body["stop_reason"] == "tool_use" and body["stop_sequence"] is None
    assert body["usage"] == {"input_tokens": 15, "output_tokens": 7, "cache_read_input_tokens": 5,
                             "cache_creation_input_tokens": 0}
    stopped = ant.message("m", "x", core.Result(text="a", finished=done("stop", "END")))
    assert (stopped["stop_reason"], stopped["stop_sequence"]) == ("stop_sequence", "END")
    assert ant.message("m", "x", core.Result(text="a", finished=done("length")))["stop_reason"] \
        == "max_tokens"


def test_anthropic_stream_sequence() -> None:
    w = ant.StreamWriter("msg_1", "org/model", 20)
    data = w.start() + w.feed([core.ReasoningDelta("hm"), core.TextDelta("Hel")]) + w.feed([]) \
        + w.feed([core.TextDelta("lo"), call(), done("tool_calls")])
    events = sse(data)
    names = [n for n, _ in events]
    assert names == ["message_start", "ping", "content_block_start", "content_block_delta",
                     "content_block_stop", "content_block_start", "content_block_delta", "ping",
                     "content_block_delta", "content_block_stop", "content_block_start",
                     "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert all(body["type"] == name for name, body in events)
    starts = [b for n, b in events if n == "content_block_start"]
    assert [(b["index"], b["content_block"]["type"]) for b in starts] == \
        [(0, "thinking"), (1, "text"), (2, "tool_use")]
    json_delta = [b["delta"] for n, b in events if n == "content_block_delta"][-1]
    assert json.loads(json_delta["partial_json"]) == {"city": "Paris"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    err = sse(w.feed([core.Failed(RuntimeError("boom"))]))
    assert err == [("error", {"type": "error", "error": {"type": "api_error", "message": "boom"}})]


# --- OpenAI Responses ----------------------------------------------------------------------------

def codex_request() -> dict[str, Any]:
    return {
        "model": "org/model", "instructions": "You are Codex.", "store": False, "stream": True,
        "parallel_tool_calls": False, "tool_choice": "auto",
        "reasoning": {"effort": "medium", "summary": "auto"}, "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "abc",
        "tools": [
            {"type": "function", "name": "shell", "description": "run a command", "strict": False,
             "parameters": {"type": "object", "properties": {"command": {
                 "type": "array", "items": {"type": "string"}}}, "required": ["command"]}},
            {"type": "custom", "name": "apply_patch", "description": "apply a patch",
             "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
        ],
        "input": [
            {"type": "message", "role": "developer",
             "content": [{"type": "input_text", "text": "<environment_context/>"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "fix it"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "xyz"},
            {"type": "function_call", "call_id": "call_1", "name": "shell",
             "arguments": '{"command": ["ls"]}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "a.py"},
            {"type": "custom_tool_call", "call_id": "call_2", "name": "apply_patch",
             "input": "*** Begin Patch"},
            {"type": "custom_tool_call_output", "call_id": "call_2", "output": "Done"},
        ],
    }


def test_codex_shaped_request_translates() -> None:
    t = rsp.to_core(rsp.ResponsesRequest.model_validate(codex_request()), rsp.ResponseStore())
    msgs = t.core.gen.messages
    assert [m["role"] for m in msgs] == ["system", "system", "user", "assistant", "tool",
                                         "assistant", "tool"]
    assert msgs[0]["content"] == "You are Codex." and msgs[1]["content"] == "<environment_context/>"
    assert msgs[3]["tool_calls"][0]["id"] == "call_1"
    assert json.loads(msgs[5]["tool_calls"][0]["function"]["arguments"]) == {"input": "*** Begin Patch"}
    assert msgs[6] == {"role": "tool", "tool_call_id": "call_2", "content": "Done"}
    assert [x["function"]["name"] for x in t.core.gen.tools] == ["shell", "apply_patch"]
    assert t.custom_tools == {"apply_patch"} and t.core.gen.parallel_tool_calls is False
    assert msgs[0] not in t.history  # instructions are not replayed by previous_response_id


@pytest.mark.parametrize("kind", ["web_search", "file_search", "computer_use_preview",
                                  "code_interpreter", "mcp"])
def test_responses_hosted_tools_are_refused(kind: str) -> None:
    req = rsp.ResponsesRequest.model_validate({"model": "m", "input": "x", "tools": [{"type": kind}]})
    with pytest.raises(ValidationError) as exc:
        rsp.to_core(req, rsp.ResponseStore())
    assert kind in exc.value.message


def test_responses_text_format_and_tool_choice() -> None:
    req = rsp.ResponsesRequest.model_validate({
        "model": "m", "input": "x", "tool_choice": {"type": "custom", "name": "apply_patch"},
        "tools": [{"type": "custom", "name": "apply_patch"}],
        "text": {"format": {"type": "json_schema", "name": "out", "schema": SCHEMA, "strict": True}}})
    gen = rsp.to_core(req, rsp.ResponseStore()).core.gen
    assert gen.tool_choice == {"type": "function", "function": {"name": "apply_patch"}}
    assert gen.response_format["json_schema"] == {"name": "out", "schema": SCHEMA, "strict": True}
    with pytest.raises(ValidationError):
        rsp.to_core(rsp.ResponsesRequest.model_validate(
            {"model": "m", "input": "x", "tool_choice": {"type": "web_search_preview"}}),
            rsp.ResponseStore())


def builder(custom: frozenset[str] = frozenset()) -> rsp.Builder:
    req = rsp.ResponsesRequest.model_validate({"model": "m", "input": "x"})
    return rsp.Builder(req, "org/model", custom, lambda s: len(s.split()))


def test_responses_output_items_and_usage() -> None:
    b = builder(frozenset({"apply_patch"}))
    result = core.Result(text="ok", reasoning="two words", finished=done("length"),
                         tool_calls=[call(), call("apply_patch", '{"input": "*** Begin"}')])
    final = b.final(result.finished, b.output(result), result.reasoning)
    assert [o["type"] for o in final["output"]] == ["reasoning", "message", "function_call",
                                                    "custom_tool_call"]
    assert final["output"][3]["input"] == "*** Begin" and final["output_text"] == "ok"
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["usage"] == {"input_tokens": 20, "input_tokens_details": {"cached_tokens": 5},
                              "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 2},
                              "total_tokens": 27}
    turn = rsp.assistant_message(final["output"])
    assert turn["content"] == "ok" and [c["id"] for c in turn["tool_calls"]] == ["call_abc123"] * 2


def test_responses_stream_sequence_and_final_event() -> None:
    kept: list[dict] = []
    w = rsp.StreamWriter(builder(), kept.append)
    data = w.start() + w.feed([core.ReasoningDelta("hm"), core.TextDelta("He")]) \
        + w.feed([core.TextDelta("llo"), call(), done()])
    events = sse(data)
    names = [n for n, _ in events]
    assert names == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.reasoning_text.delta",
        "response.reasoning_text.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed"]
    assert [b["sequence_number"] for _, b in events] == list(range(len(events)))
    final = events[-1][1]["response"]
    assert final["output_text"] == "Hello" and kept == [final]
    assert [b["output_index"] for n, b in events if n == "response.output_item.done"] == [0, 1, 2]
    failed = rsp.StreamWriter(builder(), kept.append)
    out = sse(failed.start() + failed.feed([core.TextDelta("x"), core.Failed(RuntimeError("boom"))]))
    assert out[-1][0] == "response.failed"
    assert out[-1][1]["response"]["error"]["message"] == "boom"


def test_response_store_is_a_bounded_lru_with_a_lifetime() -> None:
    store = rsp.ResponseStore(max_items=2, ttl_s=60)
    for i in range(3):
        store.put({"id": f"resp_{i}"}, [])
    with pytest.raises(ModelNotFound):
        store.get("resp_0")
    assert store.get("resp_2").response == {"id": "resp_2"}
    store.delete("resp_2")
    with pytest.raises(ModelNotFound):
        store.get("resp_2")
    expired = rsp.ResponseStore(ttl_s=-1)
    expired.put({"id": "resp_x"}, [])
    with pytest.raises(ModelNotFound) as exc:
        expired.get("resp_x")
    assert exc.value.http_status == 404


# --- Ollama --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "seconds"), [
    (None, None), (0, 0.0), ("0", 0.0), (300, 300.0), ("5m", 300.0), ("1h30m", 5400.0),
    ("-1", -1.0), ("-1m", -1.0), ("250ms", 0.25), ("10us", 1e-5)])
def test_ollama_keep_alive(value: Any, seconds: float | None) -> None:
    assert oll.keep_alive_seconds(value) == seconds


def test_ollama_bad_keep_alive_and_tags() -> None:
    with pytest.raises(ValidationError):
        oll.keep_alive_seconds("soon")
    assert oll.model_name("org/name:latest") == "org/name"
    assert oll.model_name("org/name") == "org/name"
    with pytest.raises(ModelNotFound):
        oll.model_name("org/name:7b")


def test_ollama_chat_options_format_and_tools() -> None:
    req = oll.ChatRequest.model_validate({
        "model": "org/m:latest", "format": "json", "keep_alive": "10m",
        "options": {"temperature": 0, "top_k": 5, "num_predict": -1, "stop": ["END"], "seed": 7,
                    "repeat_penalty": 1.1, "presence_penalty": 0.5, "num_ctx": 512,
                    "mirostat": 2},  # unknown options are ignored, as Ollama does
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}}],
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
            {"role": "tool", "tool_name": "get_weather", "content": "21"}]})
    c = oll.chat_to_core(req)
    g = c.gen
    assert c.model == "org/m" and c.keep_alive == 600 and c.context_cap == 512
    assert (g.sampling.temperature, g.sampling.top_k, g.sampling.seed) == (0.0, 5, 7)
    assert g.sampling.repetition_penalty == 1.1 and c.presence_penalty == 0.5
    assert g.max_tokens is None and g.stop == ("END",)
    assert g.response_format == {"type": "json_object"} and g.tool_choice == "auto"
    call_id = g.messages[1]["tool_calls"][0]["id"]
    assert json.loads(g.messages[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert g.messages[2]["tool_call_id"] == call_id


def test_ollama_generate_raw_template_and_refusals() -> None:
    c = oll.generate_to_core(oll.GenerateRequest.model_validate(
        {"model": "m", "prompt": "hi", "system": "be nice", "format": SCHEMA}))
    assert c.gen.messages == [{"role": "system", "content": "be nice"}, {"role": "user", "content": "hi"}]
    assert c.gen.response_format["json_schema"]["schema"] == SCHEMA
    raw = oll.generate_to_core(oll.GenerateRequest.model_validate({"model": "m", "prompt": "hi",
                                                                   "raw": True}))
    assert raw.gen.prompt == "hi" and raw.gen.use_chat_template is False and raw.gen.messages is None
    for field in ({"suffix": "x"}, {"images": ["aGk="], "raw": True}, {"template": "{{ .Prompt }}"}):
        with pytest.raises(ValidationError):
            oll.generate_to_core(oll.GenerateRequest.model_validate({"model": "m", "prompt": "x",
                                                                     **field}))


def test_ollama_ndjson_stream() -> None:
    w = oll.StreamWriter("org/m", chat=True)
    lines = [json.loads(x) for x in (w.feed([core.TextDelta("Hel"), core.TextDelta("lo")])
                                     + w.feed([call(), done("length")])).splitlines()]
    assert lines[0]["message"] == {"role": "assistant", "content": "Hello"} and not lines[0]["done"]
    assert lines[1]["message"]["tool_calls"] == [
        {"function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}}]
    final = lines[-1]
    assert final["done"] and final["done_reason"] == "length"
    assert (final["total_duration"], final["load_duration"], final["prompt_eval_duration"],
            final["eval_duration"]) == (9_000, 1_000, 3_000, 5_000)
    assert (final["prompt_eval_count"], final["eval_count"]) == (20, 7)
    gen = oll.StreamWriter("org/m", chat=False)
    assert json.loads(gen.feed([core.TextDelta("x")]))["response"] == "x"
    assert json.loads(gen.feed([core.Failed(RuntimeError("boom"))])) == {"error": "boom"}


# --- shared --------------------------------------------------------------------------------------

def test_paths_map_to_dialects_and_error_shapes() -> None:
    assert dialect_of("/v1/messages/count_tokens") == "anthropic"
    assert dialect_of("/api/chat") == "ollama" and dialect_of("/v1/responses/x") == "openai_responses"
    assert dialect_of("/v1/chat/completions") == "openai_chat" and dialect_of("/health") is None
    body = {"error": {"message": "nope", "type": "invalid_request_error", "param": None, "code": None}}
    assert shape_error("/v1/messages", 404, body) == \
        {"type": "error", "error": {"type": "not_found_error", "message": "nope"}}
    assert shape_error("/v1/messages", 503, body)["error"]["type"] == "overloaded_error"
    assert shape_error("/api/tags", 400, body) == {"error": "nope"}
    assert shape_error("/v1/responses", 400, body) is body


def test_reasoning_switch_per_dialect() -> None:
    base = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    think = [ant.to_core(ant.MessagesRequest.model_validate({**base, **extra})).gen.reasoning
             for extra in ({}, {"thinking": {"type": "enabled", "budget_tokens": 1024}},
                           {"thinking": {"type": "adaptive"}}, {"thinking": {"type": "disabled"}})]
    assert think == [None, True, True, False]
    effort = [rsp.to_core(rsp.ResponsesRequest.model_validate(
        {"model": "m", "input": "x", **({"reasoning": {"effort": e}} if e else {})}),
        rsp.ResponseStore()).core.gen.reasoning for e in (None, "minimal", "none", "low", "high")]
    assert effort == [None, False, False, True, True]
    olla = [oll.chat_to_core(oll.ChatRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "think": t})).gen.reasoning
        for t in (None, False, True, "high")]
    assert olla == [None, False, True, True]
    with pytest.raises(ValidationError):
        oll.reasoning("very")


def test_the_switch_reaches_a_template_that_has_one() -> None:
    from types import SimpleNamespace

    from mlxk.engine import prompt
    from mlxk.engine.types import GenerationRequest

    seen: list[dict] = []

    def apply(messages: list, add_generation_prompt: bool, tokenize: bool, **kw: Any) -> str:
        seen.append(kw)
        return "x"

    def lm(template: str) -> SimpleNamespace:
        tok = SimpleNamespace(chat_template=template, apply_chat_template=apply)
        return SimpleNamespace(tokenizer=tok, has_chat_template=True)

    msgs = [{"role": "user", "content": "hi"}]
    prompt.render(lm("{% if enable_thinking %}<think>{% endif %}"),
                  GenerationRequest(messages=msgs, reasoning=False))
    prompt.render(lm("{% if enable_thinking %}<think>{% endif %}"), GenerationRequest(messages=msgs))
    prompt.render(lm("{{ messages }}"), GenerationRequest(messages=msgs, reasoning=True))
    assert seen == [{"enable_thinking": False}, {}, {}]
