"""OpenAI conformance plumbing on a real `mlxk serve` with the tiny random model.

Cancellation (a client that leaves frees its batch slot within a second, streaming
or not), ``response_format`` keys, CORS preflights with an API key, ``n > 1``
and the completions prompt forms. One server per module (API key and CORS on).
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
LONG = {"max_tokens": 1900, "temperature": 0, "logit_bias": {str(EOS): -100}}


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
    # It was cancelled, not finished: a finished request would have reported its tokens.
    assert metric_value(metrics(server), "mlxk_completion_tokens_total", model=M) == tokens_before


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
