"""Every dialect through its official client, unchanged, against one real ``mlxk serve``
with the real SmolLM2 (one server for the module; generations stay short).

- ``anthropic``: create, stream (the full event sequence), count_tokens, forced tool use
  and a tool_result round trip, errors in Anthropic's shape.
- ``ollama``: list, show, ps, chat (+ stream), generate, format, tools, embed, keep_alive 0
  unload, unknown model 404, refused pull/delete.
- ``openai`` Responses: create, stream (events with sequence_number, a final event),
  previous_response_id, required function call + function_call_output round trip,
  json_schema, GET/DELETE, hosted tools and unknown ids refused.
- greedy output through each dialect equals Chat Completions token for token.
- logprobs (Responses ``include``/``top_logprobs``, Ollama ``logprobs``/``top_logprobs``)
  equal Chat Completions' for the same greedy request within 1e-4.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import ollama
import openai
import pytest
from tests.support.fixtures_embed import MINILM_REPO_ID, unpack_minilm
from tests.support.fixtures_models import SMOLLM2_REPO_ID, build_smollm2, tiny_llama_dir
from tests.support.fixtures_server import ServeProcess, metric_value, module_hf_home, start_serve

pytestmark = pytest.mark.slow
KEY = "dialect-test-key"
MODEL = SMOLLM2_REPO_ID
THINKER = "mlxk-test/tiny-llama-think"   # random weights, a template that pre-opens <think>
ASK = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0}
WEATHER = {"name": "get_weather", "description": "weather of a city",
           "input_schema": {"type": "object", "properties": {
               "city": {"type": "string", "maxLength": 12}},
               "required": ["city"], "additionalProperties": False}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    home = module_hf_home(tmp_path_factory, {MODEL: build_smollm2(), MINILM_REPO_ID: unpack_minilm(),
                                             THINKER: tiny_llama_dir(think=True)})
    sp = start_serve(home, "--keep-alive", "-1", env={"MLXK_API_KEY": KEY}, log_dir=Path(home))
    yield sp
    assert sp.stop() == 0


@pytest.fixture(scope="module")
def claude(server: ServeProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=600)


@pytest.fixture(scope="module")
def oai(server: ServeProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key=KEY, max_retries=0, timeout=600)


@pytest.fixture(scope="module")
def olla(server: ServeProcess) -> ollama.Client:
    return ollama.Client(host=server.base_url, headers={"Authorization": f"Bearer {KEY}"},
                         timeout=600)


def chat_text(oai: openai.OpenAI, max_tokens: int, **kw: object) -> tuple[str, int, int]:
    r = oai.chat.completions.create(model=MODEL, messages=ASK, max_tokens=max_tokens,
                                    temperature=0, **kw)  # type: ignore[call-overload]
    return r.choices[0].message.content or "", r.usage.prompt_tokens, r.usage.completion_tokens


# --- Anthropic Messages --------------------------------------------------------------------------

def test_anthropic_create_matches_chat_completions(claude: anthropic.Anthropic,
                                                   oai: openai.OpenAI) -> None:
    msg = claude.messages.create(model=MODEL, max_tokens=8, messages=ASK, extra_body=GREEDY)
    text, prompt, completion = chat_text(oai, 8)
    assert msg.type == "message" and msg.role == "assistant" and msg.id.startswith("msg_")
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == text and "Paris" in text
    assert msg.stop_reason in ("end_turn", "max_tokens")
    assert msg.usage.output_tokens == completion
    assert msg.usage.input_tokens + (msg.usage.cache_read_input_tokens or 0) == prompt
    count = claude.messages.count_tokens(model=MODEL, messages=ASK)
    assert count.input_tokens == prompt


def test_anthropic_stream_event_sequence(claude: anthropic.Anthropic, oai: openai.OpenAI) -> None:
    with claude.messages.stream(model=MODEL, max_tokens=8, messages=ASK,
                                extra_body=GREEDY) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 1
    assert "content_block_delta" in kinds and "message_delta" in kinds
    assert final.content[0].text == chat_text(oai, 8)[0]
    assert final.stop_reason in ("end_turn", "max_tokens") and final.usage.output_tokens >= 1


def test_anthropic_stop_sequence(claude: anthropic.Anthropic, oai: openai.OpenAI) -> None:
    text = chat_text(oai, 8)[0]
    word = text.split()[1]
    msg = claude.messages.create(model=MODEL, max_tokens=8, messages=ASK, stop_sequences=[word],
                                 extra_body=GREEDY)
    assert msg.stop_reason == "stop_sequence" and msg.stop_sequence == word
    assert word not in msg.content[0].text


def test_anthropic_forced_tool_use_and_result_round_trip(claude: anthropic.Anthropic) -> None:
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    msg = claude.messages.create(model=MODEL, max_tokens=30, messages=ask, tools=[WEATHER],
                                 tool_choice={"type": "tool", "name": "get_weather"},
                                 extra_body=GREEDY)
    assert msg.stop_reason == "tool_use"
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert len(uses) == 1 and uses[0].name == "get_weather" and uses[0].id.startswith("toolu_")
    assert isinstance(uses[0].input, dict) and isinstance(uses[0].input["city"], str)
    # one call: the answer ends with it (with parallel calls allowed, 30 tokens cut the answer
    # right after the call, which is max_tokens)
    with claude.messages.stream(model=MODEL, max_tokens=30, messages=ask, tools=[WEATHER],
                                tool_choice={"type": "any", "disable_parallel_tool_use": True},
                                extra_body=GREEDY) as stream:
        streamed = stream.get_final_message()
    assert streamed.stop_reason == "tool_use"
    assert [b.input for b in streamed.content if b.type == "tool_use"] == [uses[0].input]
    follow = [*ask, {"role": "assistant", "content": [b.model_dump() for b in msg.content]},
              {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id,
                                            "content": "21 degrees and sunny"}]}]
    answer = claude.messages.create(model=MODEL, max_tokens=8, messages=follow, tools=[WEATHER],
                                    tool_choice={"type": "none"}, extra_body=GREEDY)
    assert answer.stop_reason in ("end_turn", "max_tokens")
    assert answer.content[0].type == "text" and answer.content[0].text


def test_anthropic_json_output_is_enforced(claude: anthropic.Anthropic) -> None:
    schema = {"type": "object", "properties": {"capital": {"type": "string", "maxLength": 10}},
              "required": ["capital"], "additionalProperties": False}
    msg = claude.messages.create(model=MODEL, max_tokens=30, messages=ASK, extra_body=GREEDY,
                                 output_config={"format": {"type": "json_schema", "schema": schema}})
    assert set(json.loads(msg.content[0].text)) == {"capital"}


def test_anthropic_errors(server: ServeProcess, claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as nf:
        claude.messages.create(model="nobody/nothing", max_tokens=4, messages=ASK)
    assert nf.value.body["type"] == "error"
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.create(model=MODEL, max_tokens=4, messages=ASK,
                               tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert bad.value.body["error"]["type"] == "invalid_request_error"
    assert "web_search_20250305" in bad.value.body["error"]["message"]
    wrong = anthropic.Anthropic(base_url=server.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as auth:
        wrong.messages.create(model=MODEL, max_tokens=4, messages=ASK)
    assert auth.value.body["error"]["type"] == "authentication_error"
    r = httpx.post(server.base_url + "/v1/messages", headers={"x-api-key": KEY},
                   json={"model": MODEL, "messages": ASK})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in r.json()["error"]["message"]


def test_metrics_count_per_dialect(server: ServeProcess) -> None:
    text = httpx.get(server.base_url + "/metrics", headers={"x-api-key": KEY}).text
    assert metric_value(text, "mlxk_dialect_requests_total", dialect="anthropic", status="200") >= 1


# --- Ollama --------------------------------------------------------------------------------------

def test_ollama_list_show_version(server: ServeProcess, olla: ollama.Client) -> None:
    assert httpx.get(server.base_url + "/api/version").json()["version"]  # public
    names = {m.model: m for m in olla.list().models}
    assert {MODEL, MINILM_REPO_ID} <= set(names)
    assert names[MODEL].size > 0 and names[MODEL].details.family == "llama"
    info = olla.show(MODEL + ":latest")
    assert "completion" in info.capabilities and info.details.parameter_size.endswith("M")
    assert info.modelinfo["llama.context_length"] > 0
    assert "<|im_start|>" in info.template  # the model's own chat template
    assert olla.show(MINILM_REPO_ID).capabilities == ["embedding"]


def test_ollama_chat_matches_chat_completions(olla: ollama.Client, oai: openai.OpenAI) -> None:
    text, prompt, completion = chat_text(oai, 8)
    r = olla.chat(model=MODEL, messages=ASK, options={"temperature": 0, "num_predict": 8})
    assert r.message.content == text and r.message.role == "assistant"
    assert (r.prompt_eval_count, r.eval_count) == (prompt, completion)
    assert r.done and r.done_reason in ("stop", "length")
    assert r.total_duration >= r.prompt_eval_duration + r.eval_duration > 0
    parts = list(olla.chat(model=MODEL, messages=ASK, stream=True,
                           options={"temperature": 0, "num_predict": 8}))
    assert "".join(p.message.content for p in parts) == text
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done
    assert parts[-1].eval_count == completion and parts[-1].eval_duration > 0


def test_ollama_generate_format_and_tools(olla: ollama.Client, oai: openai.OpenAI) -> None:
    r = olla.generate(model=MODEL, prompt=ASK[0]["content"], options={"temperature": 0, "num_predict": 8})
    assert r.response == chat_text(oai, 8)[0]
    schema = {"type": "object", "properties": {"capital": {"type": "string", "maxLength": 10}},
              "required": ["capital"], "additionalProperties": False}
    r = olla.chat(model=MODEL, messages=ASK, format=schema, options={"temperature": 0, "num_predict": 30})
    assert set(json.loads(r.message.content)) == {"capital"}
    tool = {"type": "function", "function": {"name": "get_weather", "description": "weather",
                                             "parameters": WEATHER["input_schema"]}}
    r = olla.chat(model=MODEL, messages=[{"role": "user", "content": "Weather in Paris? Use the tool."}],
                  tools=[tool], options={"temperature": 0, "num_predict": 30})
    calls = r.message.tool_calls or []
    for call in calls:  # the tiny model may answer in text; a call it makes must be well formed
        assert call.function.name == "get_weather" and isinstance(call.function.arguments, dict)
    follow = [{"role": "user", "content": "Weather in Paris?"},
              {"role": "assistant", "content": "", "tool_calls": [
                  {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
              {"role": "tool", "tool_name": "get_weather", "content": "21 degrees"}]
    r = olla.chat(model=MODEL, messages=follow, options={"temperature": 0, "num_predict": 6})
    assert r.message.content and r.done


def test_ollama_embed(olla: ollama.Client) -> None:
    r = olla.embed(model=MINILM_REPO_ID, input=["hello", "world"])
    assert len(r.embeddings) == 2 and len(r.embeddings[0]) == 384
    assert r.prompt_eval_count > 0
    old = olla.embeddings(model=MINILM_REPO_ID, prompt="hello")
    assert list(old.embedding) == pytest.approx(list(r.embeddings[0]), abs=1e-5)


def test_ollama_ps_and_keep_alive_zero_unloads(olla: ollama.Client) -> None:
    olla.generate(model=MODEL, prompt="Hi", options={"num_predict": 1})
    loaded = {m.model: m for m in olla.ps().models}
    assert MODEL in loaded and loaded[MODEL].size > 0 and loaded[MODEL].expires_at is not None
    r = olla.generate(model=MODEL, keep_alive=0)
    assert r.done_reason == "unload"
    assert MODEL not in {m.model for m in olla.ps().models}


def test_ollama_errors(server: ServeProcess, olla: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as nf:
        olla.chat(model="nobody/nothing", messages=ASK)
    assert nf.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as tag:
        olla.chat(model=MODEL + ":7b", messages=ASK)
    assert tag.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as pull:
        olla.pull(MODEL)
    assert pull.value.status_code == 403 and "mlxk pull" in pull.value.error
    with pytest.raises(ollama.ResponseError) as rm:
        olla.delete(MODEL)
    assert rm.value.status_code == 403 and "mlxk rm" in rm.value.error
    r = httpx.post(server.base_url + "/api/chat", json={"model": MODEL, "messages": ASK})
    assert r.status_code == 401 and set(r.json()) == {"error"}


# --- OpenAI Responses ----------------------------------------------------------------------------

FN_TOOL = {"type": "function", "name": "get_weather", "description": "weather of a city",
           "parameters": WEATHER["input_schema"], "strict": True}


def test_responses_create_matches_chat_and_chains(oai: openai.OpenAI) -> None:
    text, prompt, completion = chat_text(oai, 8)
    r = oai.responses.create(model=MODEL, input=ASK[0]["content"], max_output_tokens=8, temperature=0)
    assert r.id.startswith("resp_") and r.output_text == text
    assert r.output[0].type == "message" and r.output[0].content[0].type == "output_text"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (prompt, completion)
    assert r.status in ("completed", "incomplete")
    if r.status == "incomplete":
        assert r.incomplete_details.reason == "max_output_tokens"
    assert oai.responses.retrieve(r.id).output_text == text
    follow = oai.responses.create(model=MODEL, input="And of Germany?", previous_response_id=r.id,
                                  max_output_tokens=6, temperature=0)
    assert follow.usage.input_tokens > prompt + completion  # the earlier turn was replayed
    assert follow.usage.input_tokens_details.cached_tokens > 0  # ... from the prefix cache
    oai.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError) as nf:
        oai.responses.create(model=MODEL, input="x", previous_response_id=r.id)
    assert nf.value.body["param"] == "previous_response_id"


def test_responses_stream_events(oai: openai.OpenAI) -> None:
    events = list(oai.responses.create(model=MODEL, input=ASK[0]["content"], max_output_tokens=8,
                                       temperature=0, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    for k in ("response.output_item.added", "response.content_part.added",
              "response.output_text.delta", "response.output_text.done",
              "response.output_item.done"):
        assert k in kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == chat_text(oai, 8)[0] == events[-1].response.output_text
    with oai.responses.stream(model=MODEL, input=ASK[0]["content"], max_output_tokens=8,
                              temperature=0) as stream:
        assert stream.get_final_response().output_text == text


def test_responses_required_function_call_round_trip(oai: openai.OpenAI) -> None:
    ask = "What is the weather in Paris?"
    r = oai.responses.create(model=MODEL, input=ask, tools=[FN_TOOL], tool_choice="required",
                             max_output_tokens=30, temperature=0)
    calls = [o for o in r.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert isinstance(json.loads(calls[0].arguments)["city"], str)
    events = list(oai.responses.create(model=MODEL, input=ask, tools=[FN_TOOL], stream=True,
                                       tool_choice={"type": "function", "name": "get_weather"},
                                       max_output_tokens=30, temperature=0))
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [json.loads(e.arguments) for e in done] == [json.loads(calls[0].arguments)]
    answer = oai.responses.create(
        model=MODEL, tools=[FN_TOOL], max_output_tokens=6, temperature=0, tool_choice="none",
        input=[{"role": "user", "content": ask}, calls[0].model_dump(exclude_none=True),
               {"type": "function_call_output", "call_id": calls[0].call_id,
                "output": "21 degrees"}])
    assert answer.output_text and not [o for o in answer.output if o.type == "function_call"]


def test_responses_json_schema(oai: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"capital": {"type": "string", "maxLength": 10}},
              "required": ["capital"], "additionalProperties": False}
    r = oai.responses.create(model=MODEL, input=ASK[0]["content"], max_output_tokens=30, temperature=0,
                             text={"format": {"type": "json_schema", "name": "capital",
                                              "schema": schema, "strict": True}})
    assert set(json.loads(r.output_text)) == {"capital"}


def test_responses_errors(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as hosted:
        oai.responses.create(model=MODEL, input="x", tools=[{"type": "web_search"}])
    assert "web_search" in hosted.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve("resp_nope")
    with pytest.raises(openai.NotFoundError):
        oai.responses.create(model=MODEL, input="x", previous_response_id="resp_nope")


# --- logprobs on every dialect ---------------------------------------------------------------------

def _same_logprobs(got: list, want: list) -> None:
    """Same tokens, logprobs within 1e-4, same top alternatives (token and value)."""
    assert [t.token for t in got] == [t.token for t in want]
    for g, w in zip(got, want, strict=True):
        assert abs(g.logprob - w.logprob) <= 1e-4
        assert [a.token for a in g.top_logprobs] == [a.token for a in w.top_logprobs]
        assert all(abs(a.logprob - b.logprob) <= 1e-4
                   for a, b in zip(g.top_logprobs, w.top_logprobs, strict=True))


def test_logprobs_on_responses_and_ollama_equal_chat_completions(oai: openai.OpenAI,
                                                                 olla: ollama.Client) -> None:
    chat = oai.chat.completions.create(model=MODEL, messages=ASK, max_tokens=6, temperature=0,
                                       logprobs=True, top_logprobs=2)
    want, text = chat.choices[0].logprobs.content, chat.choices[0].message.content
    assert len(want) == chat.usage.completion_tokens and "".join(t.token for t in want) == text
    ask = {"model": MODEL, "input": ASK[0]["content"], "max_output_tokens": 6, "temperature": 0,
           "include": ["message.output_text.logprobs"], "top_logprobs": 2}
    part = oai.responses.create(**ask).output[0].content[0]
    assert part.text == text
    _same_logprobs(part.logprobs, want)
    events = list(oai.responses.create(**ask, stream=True))
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    streamed = [lp for e in deltas for lp in e.logprobs]
    assert "".join(lp.token for lp in streamed) == "".join(e.delta for e in deltas) == text
    _same_logprobs(streamed, want)
    done = next(e for e in events if e.type == "response.output_text.done")
    _same_logprobs(done.logprobs, want)
    plain = oai.responses.create(model=MODEL, input=ASK[0]["content"], max_output_tokens=6, temperature=0)
    assert plain.output[0].content[0].logprobs == []   # only when asked for

    opts = {"temperature": 0, "num_predict": 6}
    r = olla.chat(model=MODEL, messages=ASK, options=opts, logprobs=True, top_logprobs=2)
    assert r.message.content == text
    _same_logprobs(r.logprobs, want)
    parts = list(olla.chat(model=MODEL, messages=ASK, options=opts, logprobs=True, top_logprobs=2,
                           stream=True))
    _same_logprobs([lp for p in parts for lp in (p.logprobs or [])], want)
    assert olla.chat(model=MODEL, messages=ASK, options=opts).logprobs is None
    g = olla.generate(model=MODEL, prompt=ASK[0]["content"], options=opts, logprobs=True)
    assert g.response == text and [t.token for t in g.logprobs] == [t.token for t in want]
    assert all(abs(a.logprob - b.logprob) <= 1e-4 and a.top_logprobs == []
               for a, b in zip(g.logprobs, want, strict=True))


PHONE_TOOL = {"type": "custom", "name": "dial", "description": "dial a phone number",
              "format": {"type": "grammar", "syntax": "regex", "definition": r"\d{3}-\d{4}"}}
SUM_TOOL = {"type": "custom", "name": "add", "description": "add two numbers",
            "format": {"type": "grammar", "syntax": "lark",
                       "definition": 'start: NUM " + " NUM\nNUM: /[0-9]{1,3}/\n'}}


def test_responses_custom_tool_grammars_are_enforced(oai: openai.OpenAI) -> None:
    r = oai.responses.create(model=MODEL, input="Please call the office.", tools=[PHONE_TOOL, SUM_TOOL],
                             tool_choice={"type": "custom", "name": "dial"},
                             max_output_tokens=60, temperature=0)
    calls = [o for o in r.output if o.type == "custom_tool_call"]
    assert [c.name for c in calls] == ["dial"] and re.fullmatch(r"\d{3}-\d{4}", calls[0].input)
    events = list(oai.responses.create(model=MODEL, input="What is two plus three?", stream=True,
                                       tools=[PHONE_TOOL, SUM_TOOL],
                                       tool_choice={"type": "custom", "name": "add"},
                                       max_output_tokens=60, temperature=0))
    done = [e for e in events if e.type == "response.output_item.done"
            and e.item.type == "custom_tool_call"]
    assert [d.item.name for d in done] == ["add"]
    assert re.fullmatch(r"[0-9]{1,3} \+ [0-9]{1,3}", done[0].item.input), done[0].item.input
    auto = oai.responses.create(model=MODEL, input="Dial 555-1234 for me.", tools=[PHONE_TOOL],
                                max_output_tokens=40, temperature=0)
    assert auto.status in ("completed", "incomplete") and auto.output
    for call in (o for o in auto.output if o.type == "custom_tool_call"):  # the model may answer
        assert re.fullmatch(r"\d{3}-\d{4}", call.input), call.input
    with pytest.raises(openai.BadRequestError) as bad:
        oai.responses.create(model=MODEL, input="x", tools=[
            {**SUM_TOOL, "format": {**SUM_TOOL["format"], "definition": "start: nowhere"}}])
    assert "'add'" in bad.value.body["message"] and bad.value.body["param"] == "tools"


def test_anthropic_thinking_budget_ends_the_block(claude: anthropic.Anthropic) -> None:
    """Greedy, so every answer starts alike: unbudgeted, the random model thinks through all
    32 tokens; with budget_tokens 5 the thinking block is exactly the first 5 of them, and
    generation goes on after the forced </think> (this random model then only repeats
    </think>, so its answer text is empty)."""
    ask = {"model": THINKER, "messages": [{"role": "user", "content": "hi"}], "extra_body": GREEDY}

    def create(max_tokens: int, **kw: object) -> anthropic.types.Message:
        return claude.messages.create(max_tokens=max_tokens, **ask, **kw)  # type: ignore[arg-type]

    def thought(m: anthropic.types.Message) -> str:
        return "".join(b.thinking for b in m.content if b.type == "thinking")

    free = create(32, thinking={"type": "enabled", "budget_tokens": 100})
    assert free.stop_reason == "max_tokens" and [b.type for b in free.content] == ["thinking"]
    first5 = thought(create(5))
    budgeted = create(32, thinking={"type": "enabled", "budget_tokens": 5})
    assert thought(budgeted) == first5 and len(first5) < len(thought(free))
    assert budgeted.usage.output_tokens == 32           # it went on after the block ended
    with pytest.raises(anthropic.BadRequestError):
        create(8, thinking={"type": "enabled", "budget_tokens": 0})
