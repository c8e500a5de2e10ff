"""OpenAI conformance plumbing on a real `mlxk serve` with the tiny random model.

Cancellation (a client that leaves frees its batch slot within a second, streaming
or not), ``response_format`` keys, CORS preflights with an API key, ``n > 1``,
the completions prompt forms and tool calls cut by the token limit in each dialect. One server per module (API key and CORS on).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from tests.support.fixtures_models import TINY_REPO_ID, tiny_llama_dir
from tests.support.fixtures_server import ServeProcess, metric_value, module_hf_home, start_serve

M = TINY_REPO_ID
KEY = "tiny-key"
ORIGIN = "http://app.example"
AUTH = {"Authorization": f"Bearer {KEY}"}
EOS = 2  # <|im_end|> in the tiny tokenizer (third special token)
NO_EOS = {str(EOS): -100}
LONG = {"max_tokens": 1900, "temperature": 0, "logit_bias": NO_EOS}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    home = module_hf_home(tmp_path_factory, {M: tiny_llama_dir()})
    sp = start_serve(home, "--keep-alive", "-1", "--api-key", KEY, "--cors-origins", ORIGIN,
                     log_dir=Path(home))
    yield sp
    assert sp.stop() == 0


@pytest.fixture(scope="module")
def client(server: ServeProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key=KEY, timeout=300, max_retries=0)


def metrics(sp: ServeProcess) -> str:
    return httpx.get(sp.base_url + "/metrics", headers=AUTH, timeout=30).text


def active(sp: ServeProcess) -> float:
    return metric_value(metrics(sp), "mlxk_active_sequences", model=M)


def raw_post(sp: ServeProcess, path: str, body: dict) -> socket.socket:
    data = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", sp.port), timeout=30)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
    return sock


def wait_for(check: object, timeout: float) -> float:
    """Seconds until ``check()`` is true; fails after ``timeout``."""
    t0 = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - t0 < timeout, f"not within {timeout}s"
        time.sleep(0.02)
    return time.monotonic() - t0


@pytest.mark.parametrize("path,body", [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "go"}]}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "go"}], "stream": True}),
    ("/v1/completions", {"prompt": "go"}),
], ids=["chat", "chat-stream", "completions"])
def test_a_client_that_leaves_frees_its_batch_slot_within_a_second(server: ServeProcess, path: str,
                                                                   body: dict) -> None:
    gone_before = metric_value(metrics(server), "mlxk_requests_total", status="499")
    tokens_before = metric_value(metrics(server), "mlxk_completion_tokens_total", model=M)
    sock = raw_post(server, path, {"model": M, **LONG, **body})
    wait_for(lambda: active(server) >= 1, 60)
    if body.get("stream"):
        assert sock.recv(64).startswith(b"HTTP/1.1 200")
    time.sleep(0.2)
    sock.close()
    assert wait_for(lambda: active(server) == 0, 1.0) < 1.0
    wait_for(lambda: metric_value(metrics(server), "mlxk_requests_total", status="499") > gone_before, 5)
    # It was cancelled, not finished: the tokens it did use are counted (issue 13), and they are
    # far fewer than the max_tokens it asked for.
    used = metric_value(metrics(server), "mlxk_completion_tokens_total", model=M) - tokens_before
    assert 0 <= used < LONG["max_tokens"]


def test_the_server_still_answers_after_clients_left(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model=M, messages=[{"role": "user", "content": "hi"}], max_tokens=3)
    assert r.choices[0].finish_reason in ("stop", "length")


@pytest.mark.parametrize("fmt,param", [
    ({"type": "json_object", "schema": 123}, "response_format.schema"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {}, "strict": True, "extra": 1}},
     "response_format.json_schema.extra"),
])
def test_response_format_unknown_keys_are_400_naming_the_key(client: openai.OpenAI, fmt: dict,
                                                             param: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=M, messages=[{"role": "user", "content": "hi"}],
                                       max_tokens=2, response_format=fmt)  # type: ignore[arg-type]
    assert err.value.body["param"] == param  # type: ignore[index]


def test_known_response_format_keys_still_work(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=M, messages=[{"role": "user", "content": "hi"}], max_tokens=8,
        response_format={"type": "json_schema", "json_schema": {
            "name": "x", "description": "d", "strict": True,
            "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}})
    assert r.choices[0].finish_reason in ("stop", "length")


def test_cors_preflight_needs_no_api_key(server: ServeProcess) -> None:
    pre = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization, content-type"}
    r = httpx.options(server.base_url + "/v1/chat/completions", headers=pre, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in r.headers["access-control-allow-headers"].lower()
    # The request itself still needs the key, and a browser sees the CORS headers on the 401.
    r = httpx.post(server.base_url + "/v1/chat/completions", headers={"Origin": ORIGIN}, timeout=30,
                   json={"model": M, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 401
    assert r.headers.get("access-control-allow-origin") == ORIGIN


# --- n > 1 ------------------------------------------------------------------------------

def hello(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"a fresh prompt number {i} for the n tests"}]


def test_n_choices_share_one_prefill_and_count_the_prompt_once(server: ServeProcess,
                                                               client: openai.OpenAI) -> None:
    sample = {"model": M, "messages": hello(1), "max_tokens": 6, "temperature": 1.0, "logit_bias": NO_EOS}
    cached = metric_value(metrics(server), "mlxk_prefix_cache_tokens", model=M)
    r = client.chat.completions.create(**sample, n=3, seed=7)
    shared = metric_value(metrics(server), "mlxk_prefix_cache_tokens", model=M) - cached
    assert [c.index for c in r.choices] == [0, 1, 2]
    one = client.chat.completions.create(**sample, seed=7)
    assert r.usage.prompt_tokens == one.usage.prompt_tokens
    assert r.usage.completion_tokens == 3 * 6
    # Copies 2 and 3 start from copy 1's prefill (all but the last prompt token); a few more
    # tokens may come from an earlier chat with the same template start.
    n_prompt = r.usage.prompt_tokens
    assert 2 * (n_prompt - 1) <= shared <= 2 * (n_prompt - 1) + 8, (shared, n_prompt)


def test_seeded_n_choices_differ_and_are_reproducible(client: openai.OpenAI) -> None:
    sample = {"model": M, "messages": hello(3), "max_tokens": 6, "temperature": 1.0, "logit_bias": NO_EOS}
    first = client.chat.completions.create(**sample, n=3, seed=11)
    again = client.chat.completions.create(**sample, n=3, seed=11)
    texts = [c.message.content for c in first.choices]
    assert texts == [c.message.content for c in again.choices]
    assert len(set(texts)) > 1  # choice i samples with seed + i


def test_n_streams_choices_with_their_index(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model=M, messages=hello(2), max_tokens=5, n=2,
                                                 logit_bias=NO_EOS, stream=True,
                                                 stream_options={"include_usage": True}))
    by_index: dict[int, list[str]] = {0: [], 1: []}
    finished = set()
    for ch in chunks:
        for c in ch.choices:
            by_index[c.index].append(c.delta.content or "")
            if c.finish_reason:
                finished.add(c.index)
    assert finished == {0, 1}
    assert all("".join(v) for v in by_index.values())
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage.completion_tokens == 10


def test_n_too_large_for_the_server_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=M, prompt="x", max_tokens=1, n=5000)
    assert err.value.body["param"] == "n"  # type: ignore[index]


# --- completions prompt forms -------------------------------------------------------------

def test_a_list_of_prompts_gives_one_choice_per_prompt_in_order(client: openai.OpenAI) -> None:
    prompts = ["alpha beta", "gamma", "delta epsilon zeta"]
    r = client.completions.create(model=M, prompt=prompts, max_tokens=3, temperature=0, n=2)
    assert [c.index for c in r.choices] == list(range(6))
    singles = [client.completions.create(model=M, prompt=p, max_tokens=3, temperature=0) for p in prompts]
    assert [c.text for c in r.choices] == [s.choices[0].text for s in singles for _ in range(2)]
    assert r.usage.prompt_tokens == sum(s.usage.prompt_tokens for s in singles)
    assert r.usage.completion_tokens == sum(s.usage.completion_tokens for s in singles) * 2


def test_token_id_prompts_match_their_text(client: openai.OpenAI) -> None:
    ids = _ids(client, "alpha beta")
    by_text = client.completions.create(model=M, prompt="alpha beta", max_tokens=4, temperature=0)
    by_ids = client.completions.create(model=M, prompt=ids, max_tokens=4, temperature=0)
    assert by_ids.choices[0].text == by_text.choices[0].text
    both = client.completions.create(model=M, prompt=[ids, ids[:1]], max_tokens=2, temperature=0)
    assert [c.index for c in both.choices] == [0, 1]
    assert both.usage.prompt_tokens == len(ids) + 1


def _ids(client: openai.OpenAI, text: str) -> list[int]:
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(str(tiny_llama_dir())).encode(text, add_special_tokens=False)
    r = client.completions.create(model=M, prompt=text, max_tokens=1, echo=True, logprobs=0)
    assert r.usage.prompt_tokens == len(ids)  # the server tokenizes the same way
    return ids


@pytest.mark.parametrize("prompt", [[5, 10_000], [[1, 2], [3, -1]], [], [[]]])
def test_bad_token_prompts_are_400(client: openai.OpenAI, prompt: list) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=M, prompt=prompt, max_tokens=1)
    assert err.value.body["param"] == "prompt"  # type: ignore[index]


# --- echo ---------------------------------------------------------------------------------

def test_echo_prepends_the_prompt(client: openai.OpenAI) -> None:
    r = client.completions.create(model=M, prompt="alpha beta", max_tokens=3, temperature=0, echo=True)
    plain = client.completions.create(model=M, prompt="alpha beta", max_tokens=3, temperature=0)
    assert r.choices[0].text == "alpha beta" + plain.choices[0].text


def test_echo_with_logprobs_scores_the_prompt_tokens(client: openai.OpenAI) -> None:
    r = client.completions.create(model=M, prompt="alpha beta gamma", max_tokens=3, temperature=0,
                                  echo=True, logprobs=2)
    c, lp = r.choices[0], r.choices[0].logprobs
    n = r.usage.prompt_tokens
    assert len(lp.tokens) == n + r.usage.completion_tokens
    assert "".join(lp.tokens) == c.text and c.text.startswith("alpha beta gamma")
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert all(v <= 0 for v in lp.token_logprobs[1:])
    assert all(1 <= len(t) <= 2 for t in lp.top_logprobs[1:n])  # two ids may read the same
    assert lp.text_offset == sorted(lp.text_offset) and lp.text_offset[0] == 0


def test_streamed_echo_with_logprobs(client: openai.OpenAI) -> None:
    chunks = list(client.completions.create(model=M, prompt="alpha beta", max_tokens=3, temperature=0,
                                            echo=True, logprobs=0, stream=True))
    text = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    tokens = [t for ch in chunks if ch.choices and ch.choices[0].logprobs for t in ch.choices[0].logprobs.tokens]
    first = chunks[0].choices[0]
    assert first.text == "alpha beta" and first.logprobs.token_logprobs[0] is None
    assert "".join(tokens) == text



# Forced tool calls, short ones: the random model writes ``mark`` {"n": 5}, keeps writing
# (whitespace, then the same call again, which ends the answer) instead of its end token.
MARK = {"name": "mark", "parameters": {"type": "object", "properties": {
    "n": {"type": "integer", "minimum": 0, "maximum": 9}}, "required": ["n"],
    "additionalProperties": False}}
CUT = 80  # falls inside the second call (about 40 tokens each, whitespace between)


def test_tool_calls_cut_by_the_token_limit_report_length_in_every_dialect(
        server: ServeProcess, client: openai.OpenAI) -> None:
    import anthropic

    ask = [{"role": "user", "content": "go"}]
    tools = [{"type": "function", "function": MARK}]
    whole = client.chat.completions.create(model=M, messages=ask, tools=tools, tool_choice="required",
                                           max_tokens=400, temperature=0)
    assert whole.choices[0].finish_reason == "tool_calls"   # ended on its own: tool_calls
    assert whole.usage.completion_tokens > CUT

    cut = client.chat.completions.create(model=M, messages=ask, tools=tools, tool_choice="required",
                                         max_tokens=CUT, temperature=0)
    choice = cut.choices[0]
    assert choice.finish_reason == "length"
    # the complete first call is delivered; the cut second one is not a call
    assert [(c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls] \
        == [("mark", {"n": 5})]
    assert '"name": "mark"' in (choice.message.content or "")

    stream = client.chat.completions.create(model=M, messages=ask, tools=tools, tool_choice="required",
                                            max_tokens=CUT, temperature=0, stream=True)
    chunks = [ch.choices[0] for ch in stream if ch.choices]
    assert [d.function.name for ch in chunks for d in ch.delta.tool_calls or []] == ["mark"]
    assert chunks[-1].finish_reason == "length"

    resp = client.responses.create(model=M, input="go", tools=[{"type": "function", **MARK}],
                                   tool_choice="required", max_output_tokens=CUT, temperature=0)
    assert resp.status == "incomplete" and resp.incomplete_details is not None
    assert resp.incomplete_details.reason == "max_output_tokens"
    assert [o.name for o in resp.output if o.type == "function_call"] == ["mark"]

    claude = anthropic.Anthropic(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=300)
    msg = claude.messages.create(model=M, messages=ask, max_tokens=CUT, extra_body={"temperature": 0},
                                 tools=[{"name": "mark", "input_schema": MARK["parameters"]}],
                                 tool_choice={"type": "any"})
    assert msg.stop_reason == "max_tokens"
    assert [b.input for b in msg.content if b.type == "tool_use"] == [{"n": 5}]
