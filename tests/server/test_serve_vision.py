"""Images through a real `mlxk serve` with the tiny Qwen2-VL, checked against ``mlx_vlm.generate``.

One server per module: the tiny vision model and the tiny text llama in its cache.
"""

from __future__ import annotations

import base64
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
from tests.support.tiny_vlm import (
    MAX_TOKENS,
    QUESTION,
    TINY_VLM_REPO_ID,
    reference,
    tiny_vlm_dir,
)

pytestmark = pytest.mark.slow
VLM = TINY_VLM_REPO_ID
LONG = 40          # tokens per request where requests must overlap in time


@pytest.fixture(scope="module")
def references(pictures: list[Path]) -> dict[int, tuple[str, int, int]]:
    return {n: reference(tiny_vlm_dir(), pictures[:n]) for n in (0, 1, 2)}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    home = module_hf_home(tmp_path_factory, {VLM: tiny_vlm_dir(), TINY_REPO_ID: tiny_llama_dir()})
    sp = start_serve(home, "--keep-alive", "-1", "--max-loaded", "2", log_dir=home)
    yield sp
    assert sp.stop() == 0


def data_uri(path: Path) -> str:
    mime = "image/png" if path.suffix == ".png" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def openai_content(pictures: list[Path], question: str = QUESTION) -> list[dict]:
    return [*({"type": "image_url", "image_url": {"url": data_uri(p)}} for p in pictures),
            {"type": "text", "text": question}]


def post_chat(sp: ServeProcess, content, model: str = VLM, **extra) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": content}],
            "max_tokens": MAX_TOKENS, "temperature": 0, **extra}
    return httpx.post(sp.base_url + "/v1/chat/completions", json=body, timeout=300)


@pytest.mark.parametrize("n_images", [0, 1, 2])
def test_openai_client_images_match_mlx_vlm(n_images: int, server: ServeProcess,
                                            pictures: list[Path], references: dict) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=server.base_url + "/v1", api_key="unused")
    content = openai_content(pictures[:n_images]) if n_images else QUESTION
    r = client.chat.completions.create(model=VLM, messages=[{"role": "user", "content": content}],
                                       max_tokens=MAX_TOKENS, temperature=0)
    text, prompt_tokens, gen_tokens = references[n_images]
    assert r.choices[0].message.content == text
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (prompt_tokens, gen_tokens)
    assert r.choices[0].finish_reason == "length"


def test_streamed_image_answer_is_the_same(server: ServeProcess, pictures: list[Path],
                                           references: dict) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=server.base_url + "/v1", api_key="unused")
    stream = client.chat.completions.create(
        model=VLM, messages=[{"role": "user", "content": openai_content(pictures[:1])}],
        max_tokens=MAX_TOKENS, temperature=0, stream=True, stream_options={"include_usage": True})
    parts, usage = [], None
    for ev in stream:
        if ev.choices and ev.choices[0].delta.content:
            parts.append(ev.choices[0].delta.content)
        usage = ev.usage or usage
    assert "".join(parts) == references[1][0]
    assert usage is not None and usage.prompt_tokens == references[1][1]


def test_concurrent_image_and_text_requests_get_their_own_answers(
        server: ServeProcess, pictures: list[Path], references: dict) -> None:
    text_ref = httpx.post(server.base_url + "/v1/chat/completions", timeout=300, json={
        "model": TINY_REPO_ID, "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": MAX_TOKENS, "temperature": 0}).json()["choices"][0]["message"]["content"]
    jobs = [("vlm", 2), ("llama", 0), ("vlm", 1), ("vlm", 0), ("vlm", 2), ("llama", 0)]

    def one(job: tuple[str, int]) -> tuple[tuple[str, int], httpx.Response]:
        kind, n = job
        if kind == "llama":
            return job, post_chat(server, "hello", model=TINY_REPO_ID)
        return job, post_chat(server, openai_content(pictures[:n]) if n else QUESTION)

    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(one, jobs))
    for (kind, n), r in results:
        assert r.status_code == 200, r.text
        body = r.json()
        got = body["choices"][0]["message"]["content"]
        if kind == "llama":
            assert got == text_ref
        else:
            assert got == references[n][0]
            assert body["usage"]["prompt_tokens"] == references[n][1]


def decode_counters(sp: ServeProcess) -> tuple[float, float]:
    """(tokens, steps) the vision model's decode loop produced so far."""
    text = httpx.get(sp.base_url + "/metrics", timeout=30).text
    return (metric_value(text, "mlxk_decode_tokens_total", model=VLM),
            metric_value(text, "mlxk_decode_steps_total", model=VLM))


def test_concurrent_vision_requests_decode_in_one_batch(server: ServeProcess, pictures: list[Path]) -> None:
    """Image requests (two different images, both) and text-only ones to the vision model,
    sent together: each gets ``mlx_vlm.generate``'s answer, and the model's decode made
    fewer steps than tokens (one at a time, every step makes one token)."""
    refs = {n: reference(tiny_vlm_dir(), pictures[:n], max_tokens=LONG) for n in (0, 1, 2)}
    jobs = [2, 0, 1, 0, 2, 1]
    tokens0, steps0 = decode_counters(server)

    def one(n: int) -> httpx.Response:
        return post_chat(server, openai_content(pictures[:n]) if n else QUESTION, max_tokens=LONG)

    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(one, jobs))
    for n, r in zip(jobs, results, strict=True):
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["choices"][0]["message"]["content"] == refs[n][0], n
        assert body["usage"]["prompt_tokens"] == refs[n][1]
    tokens1, steps1 = decode_counters(server)
    assert tokens1 - tokens0 == LONG * len(jobs)
    assert steps1 - steps0 < tokens1 - tokens0


def test_n_choices_of_an_image_request_share_decode_steps(server: ServeProcess, pictures: list[Path],
                                                          references: dict) -> None:
    """``n`` sequences are admitted together, so they decode in one batch for certain."""
    tokens0, steps0 = decode_counters(server)
    r = post_chat(server, openai_content(pictures[:1]), n=3)
    assert r.status_code == 200, r.text
    assert [c["message"]["content"] for c in r.json()["choices"]] == [references[1][0]] * 3
    tokens1, steps1 = decode_counters(server)
    assert tokens1 - tokens0 == 3 * MAX_TOKENS
    assert steps1 - steps0 < tokens1 - tokens0


def test_bad_images_are_400s_and_the_server_stays_up(server: ServeProcess,
                                                     pictures: list[Path]) -> None:
    not_image = "data:image/png;base64," + base64.b64encode(b"plain text, no picture").decode()
    cases = {
        "not an image PIL can read": [{"type": "image_url", "image_url": {"url": not_image}}],
        "is not valid base64": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}],
        "image URLs are disabled": [{"type": "image_url",
                                     "image_url": {"url": "http://127.0.0.1:9/x.png"}}],
        "9 images in one request; the limit is 8": openai_content(pictures[:1] * 9),
    }
    for needle, content in cases.items():
        r = post_chat(server, [*content, {"type": "text", "text": "?"}])
        assert r.status_code == 400, (needle, r.text)
        assert needle in r.json()["error"]["message"]
    r = post_chat(server, openai_content(pictures[:1]), model=TINY_REPO_ID)
    assert r.status_code == 400
    assert "text-only model; it does not take images" in r.json()["error"]["message"]
    assert get_json(server.base_url + "/health")["ready"] is True
    assert post_chat(server, QUESTION).status_code == 200


def test_image_tokens_count_toward_the_context(server: ServeProcess, pictures: list[Path],
                                               references: dict) -> None:
    ctx = 4096
    room = ctx - references[0][1]      # what a text-only prompt leaves for the answer
    r = post_chat(server, openai_content(pictures[:1]), max_tokens=room - 1)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "context_length_exceeded"


def test_models_list_marks_vision(server: ServeProcess) -> None:
    cards = {m["id"]: m for m in get_json(server.base_url + "/v1/models")["data"]}
    assert "vision" in cards[VLM]["capabilities"]
    assert "vision" not in cards[TINY_REPO_ID]["capabilities"]


@pytest.mark.parametrize("n_images", [0, 1, 2])
def test_every_dialect_matches_mlx_vlm(n_images: int, server: ServeProcess, pictures: list[Path],
                                       references: dict) -> None:
    """Anthropic, OpenAI Responses and Ollama (chat and generate), each through its official
    client: the same greedy text and prompt token count as ``mlx_vlm.generate``."""
    import anthropic
    import ollama
    from openai import OpenAI

    text, prompt_tokens, _ = references[n_images]
    pics = pictures[:n_images]
    b64 = [base64.b64encode(p.read_bytes()).decode() for p in pics]
    media = ["image/png" if p.suffix == ".png" else "image/jpeg" for p in pics]

    claude = anthropic.Anthropic(base_url=server.base_url, api_key="unused", max_retries=0)
    blocks = [{"type": "image", "source": {"type": "base64", "media_type": m, "data": d}}
              for m, d in zip(media, b64, strict=True)]
    msg = claude.messages.create(model=VLM, max_tokens=MAX_TOKENS, extra_body={"temperature": 0}, messages=[
        {"role": "user", "content": [*blocks, {"type": "text", "text": QUESTION}]}])
    assert (msg.content[0].text, msg.usage.input_tokens) == (text, prompt_tokens)

    oai = OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)
    parts = [{"type": "input_image", "image_url": data_uri(p)} for p in pics]
    resp = oai.responses.create(model=VLM, max_output_tokens=MAX_TOKENS, temperature=0, input=[
        {"role": "user", "content": [*parts, {"type": "input_text", "text": QUESTION}]}])
    assert (resp.output_text, resp.usage.input_tokens) == (text, prompt_tokens)

    olla = ollama.Client(host=server.base_url)
    options = {"temperature": 0, "num_predict": MAX_TOKENS}
    chat = olla.chat(model=VLM, options=options, messages=[
        {"role": "user", "content": QUESTION, **({"images": b64} if b64 else {})}])
    assert (chat.message.content, chat.prompt_eval_count) == (text, prompt_tokens)
    gen = olla.generate(model=VLM, prompt=QUESTION, images=b64 or None, options=options)
    assert (gen.response, gen.prompt_eval_count) == (text, prompt_tokens)


def test_dialect_bad_images_are_400s(server: ServeProcess, pictures: list[Path]) -> None:
    import anthropic
    import ollama

    claude = anthropic.Anthropic(base_url=server.base_url, api_key="unused", max_retries=0)
    with pytest.raises(anthropic.BadRequestError, match="not an image PIL can read"):
        claude.messages.create(model=VLM, max_tokens=4, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": base64.b64encode(b"no picture").decode()}},
            {"type": "text", "text": "?"}]}])
    with pytest.raises(anthropic.BadRequestError, match="image URLs are disabled"):
        claude.messages.create(model=VLM, max_tokens=4, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "http://127.0.0.1:9/a.png"}},
            {"type": "text", "text": "?"}]}])
    olla = ollama.Client(host=server.base_url)
    with pytest.raises(ollama.ResponseError, match="text-only model"):
        olla.chat(model=TINY_REPO_ID, messages=[
            {"role": "user", "content": "?", "images": [base64.b64encode(
                pictures[0].read_bytes()).decode()]}])
    show = olla.show(VLM)
    assert "vision" in (show.capabilities or [])
    assert get_json(server.base_url + "/health")["ready"] is True
