"""``POST /v1/embeddings`` on a real ``mlxk serve`` subprocess, driven by the official ``openai`` client."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from tests.support.cache_factory import add_repo, config_json
from tests.support.fixtures_embed import MINILM_REPO_ID
from tests.support.fixtures_server import ServeProcess, module_hf_home, start_serve

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "minilm_reference.json"
CHAT_REPO = "mlxk-test/fake-chat"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Path:
    home = module_hf_home(tmp_path_factory, {MINILM_REPO_ID: minilm_dir})
    # A chat model that is never loaded: requests for it must be refused before any load.
    add_repo(home / "hub", CHAT_REPO, {
        "config.json": config_json(),
        "tokenizer_config.json": json.dumps({"chat_template": "{{ messages }}"}),
        "model.safetensors": b"never loaded",
    })
    return home


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[ServeProcess]:
    sp = start_serve(home)
    yield sp
    sp.stop()


@pytest.fixture(scope="module")
def client(server: ServeProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


def _post(server: ServeProcess, body: dict) -> httpx.Response:
    return httpx.post(server.base_url + "/v1/embeddings", json=body, timeout=120)


def _cos(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_openai_client_embeddings_match_reference(client, reference) -> None:
    items = reference["items"][:4]
    resp = client.embeddings.create(model=MINILM_REPO_ID, input=[i["text"] for i in items])
    assert resp.model == MINILM_REPO_ID and resp.object == "list"
    assert [d.index for d in resp.data] == [0, 1, 2, 3]
    for item, d in zip(items, resp.data, strict=True):
        assert len(d.embedding) == 384
        assert _cos(d.embedding, item["embedding"]) >= 0.999
    assert resp.usage.prompt_tokens == resp.usage.total_tokens == sum(i["tokens"] for i in items)


def test_single_string_and_models_list(client) -> None:
    resp = client.embeddings.create(model=MINILM_REPO_ID, input="hello", encoding_format="float")
    assert len(resp.data) == 1 and resp.usage.prompt_tokens == 3
    assert abs(np.linalg.norm(resp.data[0].embedding) - 1.0) < 1e-5
    ids = [m.id for m in client.models.list().data]
    assert MINILM_REPO_ID in ids


def test_base64_round_trip(server) -> None:
    body = {"model": MINILM_REPO_ID, "input": ["base64 check", "second"]}
    floats = _post(server, {**body, "encoding_format": "float"}).json()
    b64 = _post(server, {**body, "encoding_format": "base64"}).json()
    for f, b in zip(floats["data"], b64["data"], strict=True):
        assert isinstance(b["embedding"], str)
        decoded = np.frombuffer(base64.b64decode(b["embedding"]), dtype="<f4")
        assert decoded.shape == (384,)
        assert np.array_equal(decoded, np.asarray(f["embedding"], dtype=np.float32))


def test_dimensions_truncates_and_renormalizes(client) -> None:
    full = client.embeddings.create(model=MINILM_REPO_ID, input="cut me short").data[0].embedding
    short = client.embeddings.create(model=MINILM_REPO_ID, input="cut me short",
                                     dimensions=64).data[0].embedding
    assert len(short) == 64
    prefix = np.asarray(full[:64])
    assert np.allclose(short, prefix / np.linalg.norm(prefix), atol=1e-6)
    with pytest.raises(openai.BadRequestError, match="384-dimensional"):
        client.embeddings.create(model=MINILM_REPO_ID, input="x", dimensions=385)


def test_token_array_input(server, client) -> None:
    text = client.embeddings.create(model=MINILM_REPO_ID, input="The cat sits on the mat.",
                                    encoding_format="float").data[0].embedding
    ids = [101, 1996, 4937, 7719, 2006, 1996, 13523, 1012, 102]  # the same sentence, BERT ids
    one = _post(server, {"model": MINILM_REPO_ID, "input": ids}).json()
    many = _post(server, {"model": MINILM_REPO_ID, "input": [ids, [*ids[:3], 102]]}).json()
    assert _cos(one["data"][0]["embedding"], text) > 0.99999
    assert len(many["data"]) == 2 and many["usage"]["prompt_tokens"] == 9 + 4


def test_too_long_input_is_400_unless_truncate(client) -> None:
    long_text = "word " * 300
    with pytest.raises(openai.BadRequestError, match="302 tokens") as info:
        client.embeddings.create(model=MINILM_REPO_ID, input=long_text)
    assert '"truncate": true' in info.value.body["message"]
    assert info.value.body["max_tokens"] == 256
    ok = client.embeddings.create(model=MINILM_REPO_ID, input=long_text, extra_body={"truncate": True})
    assert ok.usage.prompt_tokens == 256


def test_chat_model_for_embeddings_is_400(client) -> None:
    with pytest.raises(openai.BadRequestError, match="not an embedding model") as info:
        client.embeddings.create(model=CHAT_REPO, input="hello")
    assert info.value.body["param"] == "model"


def test_embedding_model_for_chat_is_400(client) -> None:
    with pytest.raises(openai.BadRequestError, match="embedding model"):
        client.chat.completions.create(model=MINILM_REPO_ID,
                                       messages=[{"role": "user", "content": "hi"}], max_tokens=4)


def test_unknown_and_path_like_models(client, server) -> None:
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="nobody/nothing", input="x")
    for bad in ("../etc", "/etc/passwd"):
        r = _post(server, {"model": bad, "input": "x"})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "model"


def test_bad_request_shapes(server) -> None:
    cases = [{"model": MINILM_REPO_ID, "input": []},
             {"model": MINILM_REPO_ID, "input": [1, "a"]},
             {"model": MINILM_REPO_ID, "input": "x", "encoding_format": "int8"},
             {"model": MINILM_REPO_ID, "input": "x", "bogus": 1},
             {"input": "x"},
             {"model": MINILM_REPO_ID, "input": [[101, 999999999, 102]]}]
    for body in cases:
        r = _post(server, body)
        assert r.status_code == 400, (body, r.text)
        assert set(r.json()["error"]) >= {"message", "type", "param", "code"}


def test_serve_model_flag_preloads_an_encoder(home: Path, serve_factory) -> None:
    """`serve --model <encoder>` loads it at start; requests without a model use it; the API key
    guards /v1/embeddings like every other route."""
    sp = serve_factory(home, "--model", "all-minilm-l6", "--api-key", "s3cret")
    assert sp.startup["data"]["model"] == MINILM_REPO_ID
    auth = {"Authorization": "Bearer s3cret"}
    url = sp.base_url + "/v1/embeddings"
    r = httpx.post(url, json={"input": ["no model named"]}, headers=auth, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["model"] == MINILM_REPO_ID and len(r.json()["data"][0]["embedding"]) == 384
    denied = openai.OpenAI(base_url=sp.base_url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        denied.embeddings.create(model=MINILM_REPO_ID, input="x")
    assert MINILM_REPO_ID in httpx.get(sp.base_url + "/health").json()["loaded_models"]
    cards = {m["id"]: m for m in httpx.get(sp.base_url + "/v1/models", headers=auth).json()["data"]}
    assert cards[MINILM_REPO_ID]["loaded"] is True
    assert cards[MINILM_REPO_ID]["model_type"] == "embedding"
    chat = httpx.post(sp.base_url + "/v1/chat/completions", timeout=60, headers=auth,
                      json={"messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 400


def test_concurrent_requests_get_their_own_vectors(server, reference) -> None:
    from concurrent.futures import ThreadPoolExecutor

    items = reference["items"][:8]

    def one(i: int) -> tuple[int, dict]:
        # Alternate truncating and non-truncating requests: the tokenizer is shared.
        long_words = 300 if i % 2 else 50 + 20 * i  # odd: over the 256-token limit, cut
        body = {"model": MINILM_REPO_ID, "input": [items[i]["text"], "word " * long_words],
                "truncate": bool(i % 2)}
        return i, _post(server, body).json()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    for i, resp in results:
        assert "data" in resp, resp
        assert _cos(resp["data"][0]["embedding"], items[i]["embedding"]) >= 0.999
