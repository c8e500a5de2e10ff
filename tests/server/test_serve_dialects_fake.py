"""The dialects' HTTP surface over real uvicorn + real MLX batching with the stand-in text engine
(fast): auth headers, error shapes per dialect, stream framing, keep-alive 0, metrics.

The same paths run with the real SmolLM2 through the official clients in
test_serve_dialects_real.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from tests.support.fake_engine import fake_prepare, fake_resolver, load_fake
from tests.support.fixtures_server import ThreadedServer, metric_value, serve_app_in_thread

from mlxk.server.app import create_app
from mlxk.server.pool import ModelPool
from mlxk.server.settings import ServerSettings

KEY = "dialect-fake-key"
MODEL = "fake/tiny-a"
ASK = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    settings = ServerSettings(api_key=KEY, keep_alive=-1, max_batch=4, max_queue=4)
    pool = ModelPool(settings, resolver=fake_resolver, loader=load_fake, prepare=fake_prepare)
    srv = serve_app_in_thread(create_app(settings, pool))
    yield srv
    srv.stop()


@pytest.fixture
def client(server: ThreadedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers={"x-api-key": KEY}, timeout=60) as c:
        yield c


def named_events(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.split("\n\n"):
        if block.strip():
            name, data = block.split("\n", 1)
            out.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


def test_auth_per_dialect(server: ThreadedServer) -> None:
    base = server.base_url
    assert httpx.get(base + "/api/version").status_code == 200  # open: clients probe it first
    r = httpx.get(base + "/api/tags")
    assert r.status_code == 401 and set(r.json()) == {"error"}
    r = httpx.post(base + "/v1/messages", headers={"x-api-key": "wrong"},
                   json={"model": MODEL, "max_tokens": 4, "messages": ASK})
    assert r.status_code == 401
    assert r.json() == {"type": "error", "error": {"type": "authentication_error",
                                                   "message": r.json()["error"]["message"]}}
    r = httpx.post(base + "/v1/responses", json={"model": MODEL, "input": "x"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    for headers in ({"x-api-key": KEY}, {"Authorization": f"Bearer {KEY}"}):
        assert httpx.get(base + "/v1/models", headers=headers).status_code == 200


def test_error_shapes_per_dialect(client: httpx.Client) -> None:
    r = client.post("/v1/messages", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "invalid_request_error"
    r = client.post("/v1/messages", json={"model": "../etc", "max_tokens": 4, "messages": ASK})
    assert r.status_code == 400 and r.json()["type"] == "error"
    r = client.post("/api/chat", json={"model": MODEL, "messages": ASK, "options": {"top_k": "x"}})
    assert r.status_code == 400 and "options.top_k" in r.json()["error"]
    assert client.get("/api/nope").status_code == 404 and "error" in client.get("/api/nope").json()
    r = client.post("/v1/responses", json={"model": MODEL, "input": "x",
                                           "tools": [{"type": "file_search"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools"
    r = client.post("/api/copy", json={"source": MODEL, "destination": "x"})
    assert r.status_code == 403 and "repo id" in r.json()["error"]


def test_anthropic_stream_framing(client: httpx.Client) -> None:
    r = client.post("/v1/messages", json={"model": MODEL, "max_tokens": 3, "messages": ASK,
                                          "stream": True, "temperature": 0})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = named_events(r.text)
    names = [n for n, _ in events]
    assert names[:2] == ["message_start", "ping"] and names[-2:] == ["message_delta", "message_stop"]
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    assert events[-2][1]["usage"]["output_tokens"] == 3
    whole = client.post("/v1/messages", json={"model": MODEL, "max_tokens": 3, "messages": ASK,
                                              "temperature": 0}).json()
    streamed = "".join(b["delta"]["text"] for n, b in events if n == "content_block_delta")
    assert whole["content"][0]["text"] == streamed and whole["stop_reason"] == "max_tokens"


def test_responses_stream_framing(client: httpx.Client) -> None:
    r = client.post("/v1/responses", json={"model": MODEL, "input": "hello", "stream": True,
                                           "max_output_tokens": 3, "temperature": 0})
    events = named_events(r.text)
    assert [b["sequence_number"] for _, b in events] == list(range(len(events)))
    assert events[-1][0] == "response.incomplete"
    final = events[-1][1]["response"]
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert client.get(f"/v1/responses/{final['id']}").json()["output"] == final["output"]
    assert client.delete(f"/v1/responses/{final['id']}").json()["deleted"] is True
    assert client.get(f"/v1/responses/{final['id']}").status_code == 404


def test_ollama_ndjson_and_keep_alive_zero(client: httpx.Client) -> None:
    r = client.post("/api/generate", json={"model": MODEL, "prompt": "hello",
                                           "options": {"num_predict": 3, "temperature": 0}})
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert [x["done"] for x in lines].count(True) == 1 and lines[-1]["done"]
    assert lines[-1]["eval_count"] == 3 and lines[-1]["done_reason"] == "length"
    assert lines[-1]["total_duration"] >= lines[-1]["eval_duration"] > 0
    r = client.post("/api/generate", json={"model": MODEL, "prompt": "hello", "stream": False,
                                           "options": {"num_predict": 3, "presence_penalty": 0.5,
                                                       "frequency_penalty": 0.5, "num_ctx": 64}})
    assert r.status_code == 200 and r.json()["eval_count"] == 3  # penalties run as processors
    r = client.post("/api/generate", json={"model": MODEL, "prompt": "hello", "stream": False,
                                           "options": {"num_ctx": 1}})
    assert r.status_code == 400 and "num_ctx" in r.json()["error"]
    assert MODEL in [m["model"] for m in client.get("/api/ps").json()["models"]]
    r = client.post("/api/chat", json={"model": MODEL, "messages": [], "keep_alive": 0})
    assert r.json()["done_reason"] == "unload"
    assert client.get("/api/ps").json()["models"] == []


def test_metrics_per_dialect(client: httpx.Client) -> None:
    client.post("/api/chat", json={"model": MODEL, "messages": ASK, "stream": False,
                                   "options": {"num_predict": 1}})
    client.post("/v1/messages", json={"model": MODEL, "messages": ASK})  # 400: no max_tokens
    text = client.get("/metrics").text
    assert metric_value(text, "mlxk_dialect_requests_total", dialect="ollama", status="200") >= 1
    assert metric_value(text, "mlxk_dialect_requests_total", dialect="anthropic", status="400") >= 1
