"""Concurrency, admission and model lifecycle over real uvicorn + real MLX batching (stand-in text)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from tests.support.fake_server import AUTH, chat_body, make_server, sse_events
from tests.support.fixtures_server import metric_value


def _wait_metric(client: httpx.Client, name: str, value: float, **labels: str) -> None:
    deadline = time.monotonic() + 30
    while metric_value(client.get("/metrics").text, name, **labels) != value:
        assert time.monotonic() < deadline, f"{name}{labels} never reached {value}"
        time.sleep(0.05)


def test_concurrent_streams_are_batched_and_not_mixed_up() -> None:
    srv, _pool = make_server(max_batch=8)
    try:
        with httpx.Client(base_url=srv.base_url, headers=AUTH, timeout=120) as c:
            # Reference answers one at a time (greedy), then all 8 at once: each must match its own.
            prompts = [f"question number {i} about topic {i * 7}" for i in range(8)]
            bodies = [chat_body(messages=[{"role": "user", "content": p}], max_tokens=12,
                                logit_bias={"0": -100}) for p in prompts]
            alone = [c.post("/v1/chat/completions", json=b).json()["choices"][0]["message"]["content"]
                     for b in bodies]

            def stream(b: dict) -> str:
                r = c.post("/v1/chat/completions", json={**b, "stream": True})
                return "".join(e["choices"][0]["delta"].get("content", "")
                               for e in sse_events(r.text)[:-1] if e["choices"])

            with ThreadPoolExecutor(8) as ex:
                together = list(ex.map(stream, bodies))
            assert together == alone
            assert len(set(alone)) > 1
    finally:
        srv.stop()


def test_queue_cap_answers_503_with_retry_after() -> None:
    srv, _ = make_server(max_batch=1, max_queue=1)
    long_body = chat_body(stream=True, max_tokens=200, logit_bias={"0": -100},
                          messages=[{"role": "user", "content": "SLOW please"}])
    try:
        with httpx.Client(base_url=srv.base_url, headers=AUTH, timeout=120) as c:
            c.post("/v1/chat/completions", json=chat_body(max_tokens=1))  # load the model
            opened: list = []
            stop = threading.Event()

            def hold(body: dict) -> None:
                with httpx.Client(base_url=srv.base_url, headers=AUTH, timeout=120) as c2, \
                        c2.stream("POST", "/v1/chat/completions", json=body) as r:
                    opened.append(r.status_code)
                    for _ in r.iter_lines():
                        if stop.is_set():
                            break

            threads = [threading.Thread(target=hold, args=(long_body,)) for _ in range(2)]
            for t in threads:
                t.start()
                time.sleep(0.2)
            _wait_metric(c, "mlxk_queue_depth", 1, model="fake/tiny-a")
            r = c.post("/v1/chat/completions", json=chat_body())
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"]
            assert r.json()["error"]["code"] == "server_busy"
            stop.set()
            for t in threads:
                t.join(60)
            assert opened == [200, 200]
            assert "mlxk_rejected_requests_total" in c.get("/metrics").text
    finally:
        srv.stop()


def test_keep_alive_zero_unloads_after_each_request() -> None:
    srv, _pool = make_server(keep_alive=0)
    try:
        with httpx.Client(base_url=srv.base_url, headers=AUTH, timeout=60) as c:
            assert c.post("/v1/chat/completions", json=chat_body(max_tokens=2)).status_code == 200
            deadline = time.monotonic() + 30
            while httpx.get(srv.base_url + "/health").json()["loaded_models"]:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            _wait_metric(c, "mlxk_model_unloads_total", 1, model="fake/tiny-a")
    finally:
        srv.stop()


def test_two_models_alternate_without_reloading() -> None:
    srv, _pool = make_server(max_loaded=2)
    try:
        with httpx.Client(base_url=srv.base_url, headers=AUTH, timeout=60) as c:
            for model in ["fake/tiny-a", "fake/tiny-b"] * 3:
                r = c.post("/v1/chat/completions", json=chat_body(model=model, max_tokens=2))
                assert r.status_code == 200 and r.json()["model"] == model
            text = c.get("/metrics").text
            for model in ("fake/tiny-a", "fake/tiny-b"):
                assert metric_value(text, "mlxk_model_loads_total", model=model) == 1
            assert sorted(httpx.get(srv.base_url + "/health").json()["loaded_models"]) == \
                ["fake/tiny-a", "fake/tiny-b"]
    finally:
        srv.stop()


def test_max_loaded_one_evicts_lru() -> None:
    srv, _pool = make_server(max_loaded=1)
    try:
        with httpx.Client(base_url=srv.base_url, headers=AUTH, timeout=60) as c:
            for model in ["fake/tiny-a", "fake/tiny-b", "fake/tiny-a"]:
                assert c.post("/v1/chat/completions", json=chat_body(model=model, max_tokens=1)
                              ).status_code == 200
            text = c.get("/metrics").text
            assert metric_value(text, "mlxk_model_loads_total", model="fake/tiny-a") == 2
            assert httpx.get(srv.base_url + "/health").json()["loaded_models"] == ["fake/tiny-a"]
    finally:
        srv.stop()


def test_seeded_sampling_is_reproducible_inside_a_batch() -> None:
    srv, _pool = make_server()
    try:
        with httpx.Client(base_url=srv.base_url, headers=AUTH, timeout=60) as c:
            body = chat_body(temperature=1.0, seed=1234, max_tokens=10, logit_bias={"0": -100})
            first = c.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"]
            noise = chat_body(temperature=1.0, max_tokens=30, stream=True, logit_bias={"0": -100})
            with ThreadPoolExecutor(3) as ex:
                futs = [ex.submit(c.post, "/v1/chat/completions", json=noise) for _ in range(2)]
                again = ex.submit(c.post, "/v1/chat/completions", json=body).result()
                for f in futs:
                    f.result()
            assert again.json()["choices"][0]["message"]["content"] == first
    finally:
        srv.stop()


def test_bounded_load_has_zero_errors() -> None:
    srv, _ = make_server(max_batch=16, max_queue=64)
    try:
        with httpx.Client(base_url=srv.base_url, headers=AUTH, timeout=120,
                          limits=httpx.Limits(max_connections=16)) as c:
            def one(i: int) -> int:
                body = chat_body(messages=[{"role": "user", "content": f"load {i}"}], max_tokens=4,
                                 stream=bool(i % 2))
                r = c.post("/v1/chat/completions", json=body)
                if r.status_code == 200 and body["stream"]:
                    assert sse_events(r.text)[-1] == "[DONE]"
                return r.status_code

            with ThreadPoolExecutor(16) as ex:
                codes = list(ex.map(one, range(200)))
            assert codes == [200] * 200
            text = c.get("/metrics").text
            assert metric_value(text, "mlxk_requests_total", endpoint="/v1/chat/completions",
                                status="200") == 200
    finally:
        srv.stop()


def test_error_after_stream_began_is_an_sse_error_event() -> None:
    srv, pool = make_server()
    try:
        with httpx.Client(base_url=srv.base_url, headers=AUTH, timeout=60) as c:
            c.post("/v1/chat/completions", json=chat_body(max_tokens=1))
            body = chat_body(stream=True, max_tokens=200, logit_bias={"0": -100})
            with c.stream("POST", "/v1/chat/completions", json=body) as r:
                lines = r.iter_lines()
                next(lines)
                entry = pool.entry("fake/tiny-a")
                entry.scheduler.close()  # the model goes away mid-stream
                rest = "\n".join(lines)
            events = [json.loads(x[6:]) for x in rest.split("\n") if x.startswith("data: {")]
            assert "error" in events[-1]
            assert events[-1]["error"]["code"] == "server_busy"
    finally:
        srv.stop()


def test_prefix_cache_reuses_a_shared_prompt_and_answers_the_same() -> None:
    srv, _ = make_server()
    try:
        with httpx.Client(base_url=srv.base_url, headers=AUTH, timeout=60) as c:
            body = chat_body(messages=[{"role": "system", "content": "one two three four five six"},
                                       {"role": "user", "content": "seven eight"}],
                             max_tokens=6, logit_bias={"0": -100})
            first = c.post("/v1/chat/completions", json=body).json()
            hits = metric_value(c.get("/metrics").text, "mlxk_prefix_cache_tokens", model="fake/tiny-a")
            assert hits == 0
            again = c.post("/v1/chat/completions", json=body).json()
            hits = metric_value(c.get("/metrics").text, "mlxk_prefix_cache_tokens", model="fake/tiny-a")
            assert hits >= first["usage"]["prompt_tokens"] - 1
            assert again["choices"][0]["message"] == first["choices"][0]["message"]
    finally:
        srv.stop()
