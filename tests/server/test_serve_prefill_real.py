"""Serving without stalls, on a real `mlxk serve` with real models.

- chunked prefill: two greedy streams keep producing tokens while a long prompt is
  prefilled, and their text is the text they produce alone (SmolLM2);
- a stream stopped after its first token leaves its KV in the prefix cache: the next
  turn of that conversation is served mostly from it (tiny model, metrics);
- ``--prompt-cache-dir``: after a restart the same long request is served from disk with
  the same greedy output; a truncated file is skipped with a warning (tiny model).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.fixtures_models import (
    SMOLLM2_REPO_ID,
    TINY_REPO_ID,
    build_smollm2,
    tiny_llama_dir,
)
from tests.support.fixtures_server import ServeProcess, metric_value, module_hf_home, start_serve

CHUNK = 16


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return module_hf_home(tmp_path_factory, {SMOLLM2_REPO_ID: build_smollm2(), TINY_REPO_ID: tiny_llama_dir()})


@pytest.fixture(scope="module")
def server(hf_home: Path) -> Iterator[ServeProcess]:
    sp = start_serve(hf_home, "--model", SMOLLM2_REPO_ID, "--keep-alive", "-1", "--max-batch", "4",
                     "--prefill-chunk", str(CHUNK), log_dir=hf_home)
    yield sp
    assert sp.stop() == 0


def metrics(sp: ServeProcess) -> str:
    return httpx.get(sp.base_url + "/metrics", timeout=60).text


class Stream(threading.Thread):
    """One streamed completion, each event's text with its arrival time."""

    def __init__(self, base: str, path: str, body: dict) -> None:
        super().__init__(daemon=True)
        self.url, self.body = base + path, {**body, "stream": True}
        self.events: list[tuple[float, str]] = []
        self.sent = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.sent = time.perf_counter()
            with httpx.stream("POST", self.url, json=self.body, timeout=600) as r:
                assert r.status_code == 200, r.read()
                for line in r.iter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    choice = json.loads(line[6:])["choices"][0]
                    text = choice.get("text") or (choice.get("delta") or {}).get("content") or ""
                    if text:
                        self.events.append((time.perf_counter(), text))
        except BaseException as exc:  # reported by the test
            self.error = exc

    @property
    def text(self) -> str:
        return "".join(t for _, t in self.events)


def completion(prompt: str, max_tokens: int) -> dict:
    return {"model": SMOLLM2_REPO_ID, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}


RUNNING = ["1, 2, 3, 4, 5, 6, 7,", "Monday, Tuesday, Wednesday, Thursday,"]
LONG = " ".join(f"Box {i} holds {i * 7 % 13} red stones." for i in range(16)) + " The total is"


def run_streams(base: str, with_long: bool) -> tuple[list[Stream], Stream | None]:
    streams = [Stream(base, "/v1/completions", completion(p, 30)) for p in RUNNING]
    for s in streams:
        s.start()
    long = None
    if with_long:
        deadline = time.monotonic() + 300
        while any(len(s.events) < 3 for s in streams) and time.monotonic() < deadline:
            time.sleep(0.01)
        long = Stream(base, "/v1/completions", completion(LONG, 1))
        long.start()
        long.join()
    for s in streams:
        s.join()
    return streams, long


def largest_gap(events: list[tuple[float, str]], start: float, end: float) -> tuple[float, int]:
    """The longest wait for a token inside [start, end], and how many tokens came in it."""
    times = [start, *(t for t, _ in events if start < t < end), end]
    last = max((t for t, _ in events), default=start)
    if last < end:  # the stream finished inside the window: it waits for nothing after that
        times = [t for t in times if t <= last] + [last]
    return max(b - a for a, b in itertools.pairwise(times)), len(times) - 2


def test_running_streams_keep_flowing_while_a_long_prompt_prefills(server: ServeProcess) -> None:
    alone, _ = run_streams(server.base_url, with_long=False)
    before = metric_value(metrics(server), "mlxk_prefill_tokens_total", model=SMOLLM2_REPO_ID)
    streams, long = run_streams(server.base_url, with_long=True)
    assert long is not None and long.error is None and long.events
    for s in [*alone, *streams]:
        assert s.error is None, s.error
    text = metrics(server)
    prefilled = metric_value(text, "mlxk_prefill_tokens_total", model=SMOLLM2_REPO_ID) - before
    assert prefilled > 6 * CHUNK  # the long prompt went through several chunks
    ttft = long.events[0][0] - long.sent
    for s in streams:
        gap, n = largest_gap(s.events, long.sent, long.events[0][0])
        assert n >= 2, f"only {n} tokens while the long prompt prefilled ({ttft:.2f}s)"
        assert gap <= 0.4 * ttft, f"largest gap {gap:.2f}s vs the long prompt's TTFT {ttft:.2f}s"
    assert [s.text for s in streams] == [s.text for s in alone]
    # the latency metrics saw these requests
    for name in ("mlxk_inter_token_latency_seconds_count", "mlxk_queue_time_seconds_count",
                 "mlxk_time_to_first_token_seconds_count", "mlxk_decode_tokens_total"):
        assert metric_value(text, name, model=SMOLLM2_REPO_ID) > 0, name


SYSTEM = "You are a patient storyteller. " + " ".join(f"rule {i} keep it short" for i in range(40))


def test_a_stopped_stream_leaves_its_prefix_for_the_next_turn(server: ServeProcess) -> None:
    base, model = server.base_url, TINY_REPO_ID
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": "Tell me a very long story about a dragon."}]
    first = ""
    with httpx.stream("POST", base + "/v1/chat/completions", timeout=600, json={
            "model": model, "messages": messages, "max_tokens": 1000, "temperature": 0,
            "stream": True}) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("data: {"):
                first += (json.loads(line[6:])["choices"][0].get("delta") or {}).get("content") or ""
                if first:
                    break  # the Stop button: close the stream after the first token
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = metrics(server)
        if metric_value(text, "mlxk_active_sequences", model=model) == 0:
            break
        time.sleep(0.1)
    completed = metric_value(text, "mlxk_completion_tokens_total", model=model)
    cached = metric_value(text, "mlxk_prefix_cache_tokens", model=model)
    prefilled = metric_value(text, "mlxk_prefill_tokens_total", model=model)
    r = httpx.post(base + "/v1/chat/completions", timeout=600, json={
        "model": model, "max_tokens": 1, "temperature": 0,
        "messages": [*messages, {"role": "assistant", "content": first},
                     {"role": "user", "content": "Shorter, please."}]})
    assert r.status_code == 200, r.text
    prompt_tokens = r.json()["usage"]["prompt_tokens"]
    after = metrics(server)
    served = metric_value(after, "mlxk_prefix_cache_tokens", model=model) - cached
    computed = metric_value(after, "mlxk_prefill_tokens_total", model=model) - prefilled
    assert prompt_tokens > 300
    assert served >= 0.8 * prompt_tokens, (served, prompt_tokens)
    assert computed <= 0.2 * prompt_tokens, (computed, prompt_tokens)
    # the first request was cancelled, not finished: it never reported its completion
    assert metric_value(after, "mlxk_completion_tokens_total", model=model) == completed + 1


TINY_PROMPT = " ".join(f"note {i} ok" for i in range(80))


def tiny_reply(sp: ServeProcess) -> str:
    r = httpx.post(sp.base_url + "/v1/completions", timeout=300, json={
        "model": TINY_REPO_ID, "prompt": TINY_PROMPT, "max_tokens": 8, "temperature": 0})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["prompt_tokens"] > 200
    return r.json()["choices"][0]["text"]


def test_prompt_cache_dir_survives_a_restart_and_skips_a_truncated_file(hf_home: Path,
                                                                        tmp_path: Path) -> None:
    cache_dir = tmp_path / "kv"
    args = ("--keep-alive", "-1", "--prompt-cache-dir", str(cache_dir))

    def once() -> tuple[str, float, ServeProcess]:
        sp = start_serve(hf_home, *args, log_dir=tmp_path)
        try:
            text = tiny_reply(sp)
            disk = metric_value(metrics(sp), "mlxk_prefix_cache_disk_tokens", model=TINY_REPO_ID)
        finally:
            assert sp.stop() == 0
        return text, disk, sp

    cold, disk, _ = once()
    assert disk == 0
    files = list(cache_dir.rglob("*.safetensors"))
    assert len(files) == 1
    warm, disk, _ = once()
    assert warm == cold
    assert disk > 200  # the prompt came from the file written before the restart
    files[0].write_bytes(files[0].read_bytes()[:-64])
    again, disk, sp = once()
    assert again == cold and disk == 0
    assert "skipping unreadable file" in sp.stderr_text()
