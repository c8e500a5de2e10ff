"""Model lifecycle and a bounded load test on a real `mlxk serve` process with the real tiny model."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from tests.support.fixtures_models import TINY_REPO_ID, tiny_llama_dir
from tests.support.fixtures_server import (
    ServeProcess,
    get_json,
    metric_value,
    module_hf_home,
    start_serve,
)

TINY_B = "mlxk-test/tiny-llama-b"


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tiny = tiny_llama_dir()
    return module_hf_home(tmp_path_factory, {TINY_REPO_ID: tiny, TINY_B: tiny})


@pytest.fixture(scope="module")
def server(hf_home: Path) -> Iterator[ServeProcess]:
    sp = start_serve(hf_home, "--max-loaded", "2", "--keep-alive", "-1", "--max-batch", "16",
                     "--max-queue", "64", log_dir=hf_home)
    yield sp
    assert sp.stop() == 0


def chat(base: str, model: str, max_tokens: int = 2, stream: bool = False, i: int = 0) -> httpx.Response:
    return httpx.post(base + "/v1/chat/completions", timeout=300, json={
        "model": model, "messages": [{"role": "user", "content": f"hello {i}"}],
        "max_tokens": max_tokens, "stream": stream, "temperature": 0})


def metrics(sp: ServeProcess) -> str:
    return httpx.get(sp.base_url + "/metrics", timeout=60).text


def test_models_list_shows_cache_models(server: ServeProcess) -> None:
    data = get_json(server.base_url + "/v1/models")["data"]
    ids = {m["id"] for m in data}
    assert {TINY_REPO_ID, TINY_B} <= ids


def test_two_models_alternate_without_reloading(server: ServeProcess) -> None:
    for model in [TINY_REPO_ID, TINY_B] * 3:
        r = chat(server.base_url, model)
        assert r.status_code == 200, r.text
        assert r.json()["model"] == model
    text = metrics(server)
    for model in (TINY_REPO_ID, TINY_B):
        assert metric_value(text, "mlxk_model_loads_total", model=model) == 1
    assert sorted(get_json(server.base_url + "/health")["loaded_models"]) == [TINY_REPO_ID, TINY_B]
    loaded = {m["id"]: m["loaded"] for m in get_json(server.base_url + "/v1/models")["data"]}
    assert loaded[TINY_REPO_ID] and loaded[TINY_B]


def test_bounded_load_200_requests_at_concurrency_16(server: ServeProcess) -> None:
    with httpx.Client(timeout=600, limits=httpx.Limits(max_connections=16)) as c:
        def one(i: int) -> int:
            stream = bool(i % 2)
            r = c.post(server.base_url + "/v1/chat/completions", json={
                "model": TINY_REPO_ID, "messages": [{"role": "user", "content": f"load {i}"}],
                "max_tokens": 4, "stream": stream, "temperature": 0.5})
            if r.status_code == 200 and stream:
                assert r.text.rstrip().endswith("data: [DONE]")
            return r.status_code

        with ThreadPoolExecutor(16) as ex:
            codes = list(ex.map(one, range(200)))
    assert codes.count(200) == 200, {c: codes.count(c) for c in set(codes)}


def test_keep_alive_zero_unloads_but_keeps_the_pinned_model(hf_home: Path) -> None:
    tiny_dir = tiny_llama_dir()
    sp = start_serve(hf_home, "--keep-alive", "0", "--model", str(tiny_dir), log_dir=hf_home)
    try:
        pinned = sp.startup["data"]["model"]
        assert pinned == tiny_dir.name
        assert chat(sp.base_url, TINY_REPO_ID).status_code == 200
        deadline = time.monotonic() + 60
        while metric_value(metrics(sp), "mlxk_model_unloads_total", model=TINY_REPO_ID) < 1:
            assert time.monotonic() < deadline, "keep-alive 0 did not unload the model"
            time.sleep(0.1)
        assert get_json(sp.base_url + "/health")["loaded_models"] == [pinned]
        # The preloaded local directory answers by its name, and is never unloaded.
        assert chat(sp.base_url, pinned).status_code == 200
        assert chat(sp.base_url, "").status_code == 200  # no model: the server's default
        assert get_json(sp.base_url + "/health")["loaded_models"] == [pinned]
    finally:
        assert sp.stop() == 0
