"""Server details found by a new user and a bad-input probe (issue 13), over real uvicorn.

The pool uses the real cache resolver against each test's temporary cache and the stand-in
text engine (tests/support/fake_engine.py), so nothing here loads a real model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support import cache_factory as cf
from tests.support.fake_engine import fake_prepare, load_fake
from tests.support.fixtures_server import ThreadedServer, metric_value, serve_app_in_thread

from mlxk.server.app import create_app
from mlxk.server.pool import ModelPool
from mlxk.server.settings import ServerSettings

KEY = "hostile-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
CHAT = "mlx-community/Tiny-Chat-4bit"


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    """The real cache resolver (each test's temporary cache), the stand-in engine."""
    settings = ServerSettings(api_key=KEY, keep_alive=-1, max_batch=2, max_queue=4)
    srv = serve_app_in_thread(create_app(settings, ModelPool(settings, loader=load_fake,
                                                             prepare=fake_prepare)))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server: ThreadedServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers=AUTH, timeout=60)


def _chat(model: str, **kw: object) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, **kw}


def _tokenizer_dir(cache: Path) -> str:
    repo_id = "broken-org/tokenizer-dir"
    cf.make_tokenizer_json_a_directory(cache, repo_id, cf.add_repo(cache, repo_id, cf.mlx_model_files()))
    return repo_id


def test_broken_models_are_not_listed_and_answer_4xx(client: httpx.Client, hub_cache: Path) -> None:
    cf.add_repo(hub_cache, CHAT, cf.mlx_model_files())
    broken = [cf.add_broken(hub_cache, v)[0] for v in ("broken_symlink", "truncated_safetensors")]
    broken.append(_tokenizer_dir(hub_cache))
    ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert ids == [CHAT]
    for repo_id in broken:
        r = client.post("/v1/chat/completions", json=_chat(repo_id))
        assert r.status_code == 400, (repo_id, r.text)
        err = r.json()["error"]
        assert err["code"] == "not_runtime_compatible" and "unhealthy" in err["message"]
        assert client.get(f"/v1/models/{repo_id}").status_code == 404


def test_model_card_by_short_name_and_context_length_before_loading(client: httpx.Client,
                                                                     hub_cache: Path) -> None:
    cf.add_repo(hub_cache, CHAT, cf.mlx_model_files())
    [card] = client.get("/v1/models").json()["data"]
    assert card["loaded"] is False and card["context_length"] == cf.LLAMA_CONFIG["max_position_embeddings"]
    r = client.get("/v1/models/Tiny-Chat-4bit")
    assert r.status_code == 200, r.text
    assert r.json()["id"] == CHAT and r.json()["context_length"] == 2048
    assert client.get("/v1/models/tiny-chat").json()["id"] == CHAT
    assert client.get("/v1/models/nothing-like-it").json()["error"]["code"] == "model_not_found"


def test_unknown_field_is_unsupported_parameter_naming_it(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json=_chat(CHAT, frobnicate=1))
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "unsupported_parameter" and err["param"] == "frobnicate"
    assert "frobnicate" in err["message"] and "pydantic" not in err["message"].lower()
    r = client.post("/v1/completions", json={"model": CHAT, "prompt": "x", "stream_options": {"bogus": 1}})
    assert r.json()["error"]["code"] == "unsupported_parameter"


def test_head_health_and_401_counted_and_no_created_series(client: httpx.Client,
                                                           server: ThreadedServer) -> None:
    r = httpx.head(server.base_url + "/health")
    assert r.status_code == 200
    before = metric_value(client.get("/metrics").text, "mlxk_requests_total", status="401")
    assert httpx.get(server.base_url + "/v1/models").status_code == 401
    after = client.get("/metrics").text
    assert metric_value(after, "mlxk_requests_total", status="401") == before + 1
    assert "_created" not in after


def test_one_log_line_per_request(client: httpx.Client, hub_cache: Path,
                                  caplog: pytest.LogCaptureFixture) -> None:
    cf.add_repo(hub_cache, CHAT, cf.mlx_model_files())
    with caplog.at_level(logging.INFO, logger="mlxk.server.access"):
        assert client.post("/v1/chat/completions", json=_chat(CHAT)).status_code == 200
        assert client.get("/v1/models/none-such").status_code == 404
        deadline = time.monotonic() + 5   # the line is written just after the response is sent
        while time.monotonic() < deadline and not any("none-such" in r.getMessage() for r in caplog.records):
            time.sleep(0.02)
    lines = [r.getMessage() for r in caplog.records if r.name == "mlxk.server.access"]
    chat = next(m for m in lines if "/v1/chat/completions" in m)
    assert chat.startswith("POST /v1/chat/completions 200") and f"model={CHAT}" in chat
    assert "tokens=" in chat and chat.rstrip().endswith("s")
    assert any(m.startswith("GET /v1/models/none-such 404") for m in lines)


def test_busy_message_names_the_memory_budget(hub_cache: Path) -> None:
    """The budget (not --max-loaded) is what stops a second model: the 503 says so."""
    from mlxk.errors import ServerBusy
    from mlxk.server.pool_loaders import weights_size

    other = "mlx-community/Tiny-Other-4bit"
    for repo in (CHAT, other):
        commit = cf.add_repo(hub_cache, repo, cf.mlx_model_files())
    size = weights_size(cf.revision_dir(hub_cache, other, commit))
    pool = ModelPool(ServerSettings(memory_budget_bytes=size + size // 2, max_loaded=4),
                     loader=load_fake, prepare=fake_prepare)

    async def scenario() -> str:
        await pool.acquire(CHAT)          # held: in use, cannot be evicted
        try:
            await pool.acquire(other)
        except ServerBusy as exc:
            return exc.message
        finally:
            await pool.close()
        return "no error"

    message = asyncio.run(scenario())
    assert "memory budget" in message and "--max-loaded" not in message


def test_schema_and_server_agree_on_the_probe_findings(client: httpx.Client, hub_cache: Path) -> None:
    """parallel_tool_calls without tools is accepted; what the server refuses, the schema forbids."""
    cf.add_repo(hub_cache, CHAT, cf.mlx_model_files())
    r = client.post("/v1/chat/completions", json=_chat(CHAT, parallel_tool_calls=False))
    assert r.status_code == 200, r.text
    spec = client.get("/openapi.json").json()["components"]["schemas"]
    embed_model = spec["EmbeddingRequest"]["properties"]["model"]
    assert {"type": "string", "minLength": 1, "maxLength": 512} in embed_model["anyOf"]
    assert "null" not in str(embed_model["anyOf"]) and "model" in spec["EmbeddingRequest"]["required"]
    assert any("stream_options" in str(rule) for rule in spec["CompletionRequest"]["allOf"])


def test_tokens_of_a_dropped_stream_are_counted(client: httpx.Client, server: ThreadedServer,
                                                hub_cache: Path) -> None:
    cf.add_repo(hub_cache, CHAT, cf.mlx_model_files())
    out_before = metric_value(client.get("/metrics").text, "mlxk_completion_tokens_total", model=CHAT)
    body = {"model": CHAT, "messages": [{"role": "user", "content": "SLOW story"}], "max_tokens": 200,
            "stream": True}
    with httpx.stream("POST", server.base_url + "/v1/chat/completions", json=body, headers=AUTH,
                      timeout=60) as r:
        seen = 0
        for line in r.iter_lines():
            seen += line.startswith("data: {")
            if seen >= 3:
                break                     # the client goes away mid-answer
    deadline = time.monotonic() + 10
    while True:
        text = client.get("/metrics").text
        after = metric_value(text, "mlxk_completion_tokens_total", model=CHAT)
        if after > out_before or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert 1 <= after - out_before < 200, text   # counted, and the answer did stop early
    assert metric_value(text, "mlxk_prompt_tokens_total", model=CHAT) > 0
