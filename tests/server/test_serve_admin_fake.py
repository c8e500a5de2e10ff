"""The admin API (`/mlxk/ps|load|stop`) over real uvicorn + real MLX batching (stand-in text).

The same commands run against a real `mlxk serve` with real tiny models in tests/e2e/test_lifecycle.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from tests.support.fake_server import AUTH, MODEL, assert_error, chat_body, make_server
from tests.support.fixtures_server import ThreadedServer

from mlxk.server.pool import ModelPool

OTHER = "fake/tiny-b"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[ThreadedServer, ModelPool]]:
    srv, pool = make_server(max_batch=2, max_queue=2)
    yield srv, pool
    srv.stop()


@pytest.fixture
def client(served: tuple[ThreadedServer, ModelPool]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[0].base_url, headers=AUTH, timeout=60) as c:
        yield c
        c.post("/mlxk/stop", json={"all": True, "force": True})


def test_admin_routes_need_the_key(served: tuple[ThreadedServer, ModelPool]) -> None:
    base = served[0].base_url
    assert_error(httpx.get(base + "/mlxk/ps"), 401)
    assert_error(httpx.post(base + "/mlxk/load", json={"model": MODEL}), 401)
    assert_error(httpx.post(base + "/mlxk/stop", json={"all": True}), 401)


def test_load_with_keep_alive_then_ps_then_stop(client: httpx.Client) -> None:
    row = client.post("/mlxk/load", json={"model": MODEL, "keep_alive": "5m"}).json()
    assert row["name"] == MODEL and row["state"] == "idle" and row["keep_alive_seconds"] == 300
    assert row["expires_at"] is not None and row["loaded_at"] is not None
    client.post("/mlxk/load", json={"model": OTHER})
    models = client.get("/mlxk/ps").json()["models"]
    assert [(m["name"], m["expires_at"]) for m in models] == [(MODEL, row["expires_at"]), (OTHER, None)]
    assert client.post("/mlxk/stop", json={"model": MODEL}).json() == {"stopped": [MODEL]}
    assert [m["name"] for m in client.get("/mlxk/ps").json()["models"]] == [OTHER]


def test_bad_admin_requests_are_400_or_404(client: httpx.Client) -> None:
    err = assert_error(client.post("/mlxk/load", json={"model": MODEL, "keep_alive": "soon"}), 400)
    assert "keep-alive" in err["message"]
    assert_error(client.post("/mlxk/stop", json={}), 400)
    assert_error(client.post("/mlxk/stop", json={"model": MODEL, "all": True}), 400)
    assert assert_error(client.post("/mlxk/stop", json={"model": MODEL}), 404)["code"] == "model_not_found"
    assert_error(client.post("/mlxk/load", json={"model": "../etc"}), 400)
    assert client.get("/mlxk/ps").json()["models"] == []


def _slow_stream(base: str, results: list) -> None:
    body = chat_body(stream=True, max_tokens=60, logit_bias={"0": -100},
                     messages=[{"role": "user", "content": "SLOW please"}])
    with httpx.Client(base_url=base, headers=AUTH, timeout=120) as c, \
            c.stream("POST", "/v1/chat/completions", json=body) as r:
        results.append("".join(r.iter_text()))


def _wait_busy(client: httpx.Client) -> None:
    deadline = time.monotonic() + 30
    while not any(m["state"] == "busy" for m in client.get("/mlxk/ps").json()["models"]):
        assert time.monotonic() < deadline, f"the request never started: {client.get('/mlxk/ps').json()}"
        time.sleep(0.02)


def test_stop_waits_for_requests_and_force_cancels(served: tuple[ThreadedServer, ModelPool],
                                                     client: httpx.Client) -> None:
    base = served[0].base_url
    for force in (False, True):
        client.post("/mlxk/load", json={"model": MODEL})
        results: list[str] = []
        t = threading.Thread(target=_slow_stream, args=(base, results))
        t.start()
        _wait_busy(client)
        assert client.post("/mlxk/stop", json={"model": MODEL, "force": force}).json() == {"stopped": [MODEL]}
        t.join(60)
        [text] = results
        if force:
            assert '"error"' in text       # cancelled: the stream ends with an error event
        else:
            assert text.rstrip().endswith("data: [DONE]") and '"error"' not in text
        assert client.get("/mlxk/ps").json()["models"] == []


def test_an_embedding_model_loads_and_shows_as_embedding() -> None:
    from pathlib import Path
    from types import SimpleNamespace

    from tests.support.fake_engine import fake_prepare, fake_resolver, load_fake
    from tests.support.fixtures_server import serve_app_in_thread

    from mlxk.errors import ModelNotFound
    from mlxk.server.app import create_app
    from mlxk.server.pool import Target
    from mlxk.server.settings import ServerSettings

    encoder = "fake/encoder"

    def embedding_resolver(name: str) -> Target:
        if name != encoder:
            raise ModelNotFound(f"The model '{name}' does not exist", param="model")
        return Target(name, Path("/nonexistent") / name, "embedding")

    settings = ServerSettings(keep_alive=-1)
    pool = ModelPool(settings, resolver=fake_resolver, loader=load_fake, prepare=fake_prepare,
                     embedding_resolver=embedding_resolver,
                     embedding_loader=lambda path, name: SimpleNamespace(name=name, path=path))
    srv = serve_app_in_thread(create_app(settings, pool))
    try:
        with httpx.Client(base_url=srv.base_url, timeout=60) as c:
            row = c.post("/mlxk/load", json={"model": encoder, "keep_alive": "1h"}).json()
            assert (row["name"], row["kind"], row["keep_alive_seconds"]) == (encoder, "embedding", 3600)
            c.post("/mlxk/load", json={"model": MODEL})
            kinds = {m["name"]: m["kind"] for m in c.get("/mlxk/ps").json()["models"]}
            assert kinds == {encoder: "embedding", MODEL: "chat"}
            assert c.post("/mlxk/stop", json={"model": encoder}).json() == {"stopped": [encoder]}
            err = c.post("/mlxk/load", json={"model": "fake/nothing-like-it"}).json()["error"]
            assert "fake/nothing-like-it" in err["message"]      # the text resolver's refusal
    finally:
        srv.stop()
