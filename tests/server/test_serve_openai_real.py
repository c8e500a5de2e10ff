"""`mlxk serve` as a real process with the real SmolLM2, judged by the official `openai` client.

One server per module (loading is slow on a shared CPU); generations stay short.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from tests.support.fixtures_models import SMOLLM2_REPO_ID, build_smollm2
from tests.support.fixtures_server import ServeProcess, module_hf_home, start_serve

KEY = "real-test-key"
ORIGIN = "http://ok.example"
CAPITALS = {"France": "Paris", "Germany": "Berlin", "Japan": "Tokyo", "England": "London",
            "Russia": "Moscow", "Egypt": "Cairo", "China": "Beijing", "Greece": "Athens"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    home = module_hf_home(tmp_path_factory, {SMOLLM2_REPO_ID: build_smollm2()})
    sp = start_serve(home, "--keep-alive", "-1", "--cors-origins", ORIGIN,
                     env={"MLXK_API_KEY": KEY}, log_dir=Path(home))
    yield sp
    assert sp.stop() == 0


@pytest.fixture(scope="module")
def client(server: ServeProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key=KEY, timeout=600, max_retries=0)


def ask(country: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"What is the capital of {country}?"}]


def test_models_list(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list().data]
    assert SMOLLM2_REPO_ID in ids
    assert client.models.retrieve(SMOLLM2_REPO_ID).id == SMOLLM2_REPO_ID


def test_chat_non_stream(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model=SMOLLM2_REPO_ID, messages=ask("France"),
                                       temperature=0, max_tokens=12)
    assert "Paris" in r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 5 and 1 <= r.usage.completion_tokens <= 12
    assert "<|im_end|>" not in r.choices[0].message.content


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model=SMOLLM2_REPO_ID, messages=ask("France"),
                                            temperature=0, max_tokens=12, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in text
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish and finish[-1] in ("stop", "length")
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens >= 1


def test_completions_and_length(client: openai.OpenAI) -> None:
    r = client.completions.create(model=SMOLLM2_REPO_ID, prompt="The capital of France is",
                                  temperature=0, max_tokens=2)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 2
    assert r.choices[0].text.strip()


def test_stop_string_ends_before_it(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model=SMOLLM2_REPO_ID, messages=ask("France"),
                                       temperature=0, max_tokens=12, stop=["Paris"])
    assert r.choices[0].finish_reason == "stop"
    assert "Paris" not in r.choices[0].message.content
    assert "France" in r.choices[0].message.content


def test_errors_are_openai_exceptions(server: ServeProcess, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nobody/nothing", messages=ask("France"), max_tokens=1)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=SMOLLM2_REPO_ID, messages=ask("France"), n=10_000)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="../x", messages=ask("France"), max_tokens=1)
    wrong = openai.OpenAI(base_url=server.base_url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


@pytest.mark.parametrize("name", ["../x", "/etc", "/etc/passwd", "..%2F..%2Fetc"])
def test_path_like_names_over_raw_http(server: ServeProcess, name: str) -> None:
    r = httpx.post(server.base_url + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                   json={"model": name, "messages": ask("France"), "max_tokens": 1}, timeout=60)
    assert r.status_code in (400, 404), r.text
    assert r.json()["error"]["param"] == "model" or r.status_code == 404


def test_raw_http_errors(server: ServeProcess) -> None:
    h = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    url = server.base_url + "/v1/chat/completions"
    assert httpx.post(url, headers=h, content=b"{nope", timeout=60).status_code == 400
    r = httpx.post(url, headers=h, json={"model": SMOLLM2_REPO_ID, "messages": ask("x"),
                                         "max_tokens": "ten"}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"
    big = {"model": SMOLLM2_REPO_ID, "messages": [{"role": "user", "content": "x" * 5_000_000}]}
    assert httpx.post(url, headers=h, json=big, timeout=60).status_code == 413
    long = {"model": SMOLLM2_REPO_ID, "messages": [{"role": "user", "content": "word " * 9000}],
            "stream": True}
    r = httpx.post(url, headers=h, json=long, timeout=120)
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"


def test_cors_preflight(server: ServeProcess) -> None:
    pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    ok = httpx.options(server.base_url + "/v1/chat/completions", headers={"Origin": ORIGIN, **pre})
    assert ok.headers.get("access-control-allow-origin") == ORIGIN
    bad = httpx.options(server.base_url + "/v1/chat/completions",
                        headers={"Origin": "http://other.example", **pre})
    assert "access-control-allow-origin" not in bad.headers


def test_eight_concurrent_streams_each_get_their_own_answer(client: openai.OpenAI,
                                                            server: ServeProcess) -> None:
    slow_gone = threading.Event()

    def disconnecting() -> None:  # one client leaves mid-stream; the others must not stall
        with httpx.stream("POST", server.base_url + "/v1/chat/completions",
                          headers={"Authorization": f"Bearer {KEY}"}, timeout=600,
                          json={"model": SMOLLM2_REPO_ID, "messages": ask("Peru"), "max_tokens": 200,
                                "stream": True}) as r:
            for _ in r.iter_lines():
                break
        slow_gone.set()

    def one(country: str) -> str:
        stream = client.chat.completions.create(model=SMOLLM2_REPO_ID, messages=ask(country),
                                                temperature=0, max_tokens=10, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    leaver = threading.Thread(target=disconnecting)
    leaver.start()
    with ThreadPoolExecutor(8) as ex:
        answers = dict(zip(CAPITALS, ex.map(one, CAPITALS), strict=True))
    leaver.join(600)
    assert slow_gone.is_set()
    wrong = {k: v for k, v in answers.items() if CAPITALS[k] not in v}
    assert not wrong, answers
