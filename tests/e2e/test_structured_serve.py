"""Structured output and tool calling through the official ``openai`` client against
a real ``mlxk serve`` with the real SmolLM2-135M-Instruct (CPU; small max_tokens).

SmolLM2's chat template has no tool support, so tools go through the documented
fallback system prompt (hermes format) and ``required``/named choices are enforced by
the llguidance grammar: the arguments must validate whatever the tiny model "wants".
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

openai = pytest.importorskip("openai")
jsonschema = pytest.importorskip("jsonschema")

from tests.support.fixtures_server import module_hf_home, start_serve  # noqa: E402

pytestmark = pytest.mark.slow
MODEL = "mlxk-test/SmolLM2-135M-Instruct"

NESTED = {"type": "object", "properties": {
    "city": {"type": "string", "maxLength": 12},
    "location": {"type": "object", "properties": {
        "country": {"type": "string", "maxLength": 12},
        "population_millions": {"type": "integer", "minimum": 0, "maximum": 50}},
        "required": ["country", "population_millions"], "additionalProperties": False}},
    "required": ["city", "location"], "additionalProperties": False}
ARRAY = {"type": "array", "items": {"type": "string", "maxLength": 10},
         "minItems": 2, "maxItems": 3}
ENUM = {"type": "object", "properties": {
    "sentiment": {"enum": ["positive", "negative", "neutral"]}},
    "required": ["sentiment"], "additionalProperties": False}
CASES = [
    ("nested", NESTED, "Describe Paris as JSON with its country and population."),
    ("array", ARRAY, "List three colors as a JSON array."),
    ("enum", ENUM, "Classify the sentiment of: 'I love this!'"),
]

# Terse tools: on this CPU, prompt tokens cost almost as much time as generated ones.
WEATHER = {"type": "function", "function": {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "maxLength": 16},
        "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {
    "name": "get_time",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string", "maxLength": 8}},
                   "required": ["tz"], "additionalProperties": False}}}
SCHEMAS = {"get_weather": WEATHER["function"]["parameters"],
           "get_time": TIME["function"]["parameters"]}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory, smollm2_dir):
    home = module_hf_home(tmp_path_factory, {MODEL: smollm2_dir})
    sp = start_serve(home, "--keep-alive", "-1", "--model", MODEL)
    yield sp
    sp.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0,
                         timeout=300)


def _rf(schema):
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema,
                                                    "strict": True}}


def _ask_schema(client, schema, prompt, stream):
    kwargs = {"model": MODEL, "messages": [{"role": "user", "content": prompt}],
              "max_tokens": 48, "temperature": 0.7, "seed": 1}
    if schema is not None:
        kwargs["response_format"] = _rf(schema)
    else:
        kwargs["response_format"] = {"type": "json_object"}
    if not stream:
        r = client.chat.completions.create(**kwargs)
        return r.choices[0].message.content, r.choices[0].finish_reason
    text, finish = "", None
    for ev in client.chat.completions.create(stream=True, **kwargs):
        if ev.choices:
            text += ev.choices[0].delta.content or ""
            finish = ev.choices[0].finish_reason or finish
    return text, finish


def test_response_formats_streaming_and_not_in_one_batch(client):
    """Three schemas x (streaming, non-streaming) + json_object, sent at once: the server
    decodes them together (continuous batching, one matcher per sequence)."""
    jobs = [(name, schema, prompt, stream) for name, schema, prompt in CASES
            for stream in (False, True)]
    jobs.append(("json_object", None, "Give a JSON object with a name and an age.", False))
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda j: _ask_schema(client, j[1], j[2], j[3]), jobs))
    for (name, schema, _prompt, stream), (text, finish) in zip(jobs, results, strict=True):
        where = f"{name} stream={stream}: {text!r}"
        if schema is None:   # json_object: any object (may be cut by max_tokens)
            if finish == "stop":
                assert isinstance(json.loads(text), dict), where
            else:
                assert finish == "length" and text.startswith("{"), where
            continue
        assert finish == "stop", where
        jsonschema.validate(json.loads(text), schema)


def _check_call(call, name=None):
    assert call.type == "function" and call.id.startswith("call_")
    if name:
        assert call.function.name == name
    jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


def _stream_calls(client, **kwargs):
    calls: dict[int, dict] = {}
    finish = None
    for ev in client.chat.completions.create(stream=True, **kwargs):
        if not ev.choices:
            continue
        for tc in ev.choices[0].delta.tool_calls or []:
            slot = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            slot["id"] = tc.id or slot["id"]
            if tc.function:
                slot["name"] += tc.function.name or ""
                slot["arguments"] += tc.function.arguments or ""
        finish = ev.choices[0].finish_reason or finish
    return calls, finish


def test_tool_choice_named_required_streamed_and_follow_up(client):
    """Named and required (whole and streamed) run concurrently in one batch; the streamed
    request has the same prompt as the whole one, so at temperature 0 both decode the same
    call and the deltas must reassemble to it. Then the tool result goes back."""
    common = {"model": MODEL, "messages": ASK, "tools": [WEATHER, TIME], "max_tokens": 40,
              "temperature": 0}
    named = {**common, "tool_choice": {"type": "function", "function": {"name": "get_time"}}}
    required = {**common, "tool_choice": "required", "parallel_tool_calls": False}
    with ThreadPoolExecutor(3) as pool:
        f_named = pool.submit(client.chat.completions.create, **named)
        f_whole = pool.submit(client.chat.completions.create, **required)
        f_stream = pool.submit(_stream_calls, client, **required)
        r_named, whole, (calls, finish) = f_named.result(), f_whole.result(), f_stream.result()

    assert r_named.choices[0].finish_reason == "tool_calls"
    assert len(r_named.choices[0].message.tool_calls) == 1
    _check_call(r_named.choices[0].message.tool_calls[0], "get_time")

    assert whole.choices[0].finish_reason == "tool_calls"
    assert len(whole.choices[0].message.tool_calls) == 1
    call = whole.choices[0].message.tool_calls[0]
    _check_call(call)

    assert finish == "tool_calls"
    assert list(calls) == [0]
    assert calls[0]["id"].startswith("call_")
    assert (calls[0]["name"], json.loads(calls[0]["arguments"])) == \
        (call.function.name, json.loads(call.function.arguments))

    follow = [*ASK, {"role": "assistant", "content": None, "tool_calls": [
        {"id": call.id, "type": "function",
         "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21}'}]
    # The history (assistant tool_calls + role tool) is rendered and accepted; no tools this
    # time (the tool-less path), so the answer is plain text.
    r = client.chat.completions.create(model=MODEL, messages=follow, max_tokens=8,
                                       temperature=0)
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.choices[0].message.content
    assert not r.choices[0].message.tool_calls


def test_errors_are_400(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=4,
                                       response_format=_rf({"type": "bogus"}))
    assert "bogus" in str(err.value)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=MODEL, messages=ASK, tools=[WEATHER], max_tokens=4,
            tool_choice={"type": "function", "function": {"name": "launch_rocket"}})
    assert "launch_rocket" in str(err.value)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=4,
                                       response_format={"type": "yaml"})


def test_tool_choice_required_returns_no_duplicate_calls(client):
    """SmolLM2 under `required` with parallel calls allowed repeated its call (issue 12)."""
    r = client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER, TIME],
                                       tool_choice="required", max_tokens=120, temperature=0)
    calls = r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "tool_calls" and calls
    for call in calls:
        _check_call(call)
    keys = [(c.function.name, json.dumps(json.loads(c.function.arguments), sort_keys=True))
            for c in calls]
    assert len(keys) == len(set(keys)), keys
