"""`/tokenize`, `/detokenize` and the values of `logprobs`, against the real SmolLM2 in a real
`mlxk serve` (API key on), checked against mlx-lm run independently in the test process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from tests.support.fixtures_models import SMOLLM2_REPO_ID, build_smollm2
from tests.support.fixtures_server import ServeProcess, module_hf_home, start_serve

KEY = "tokens-test-key"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
N = 8


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    home = module_hf_home(tmp_path_factory, {SMOLLM2_REPO_ID: build_smollm2()})
    # MLX's own quantized matmul, as in the reference: mlxk's CPU kernel sums in another order
    # (logprobs differ by ~3e-3 then); what is checked here is how logprobs are computed.
    sp = start_serve(home, "--keep-alive", "-1", "--model", SMOLLM2_REPO_ID,
                     env={"MLXK_API_KEY": KEY, "MLXK_CPU_KERNELS": "off"}, log_dir=Path(home))
    yield sp
    assert sp.stop() == 0


@pytest.fixture(scope="module")
def reference() -> Any:
    """SmolLM2 loaded by mlx-lm itself (not through mlxk)."""
    from mlx_lm import load

    return load(str(build_smollm2()))


def post(server: ServeProcess, path: str, body: dict, key: str | None = KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(server.base_url + path, json=body, headers=headers, timeout=300)


def reference_logprobs(reference: Any, prompt: list[int], n: int) -> tuple[list[int], Any]:
    """Greedy tokens and, from ONE forward pass over prompt + answer, the log-softmax rows."""
    import mlx.core as mx
    from mlx_lm.generate import generate_step

    model, _ = reference
    tokens = []
    for (t, _lp), _ in zip(generate_step(mx.array(prompt), model, max_tokens=n), range(n), strict=False):
        tokens.append(int(t))
    logits = model(mx.array(prompt + tokens[:-1])[None])[0, len(prompt) - 1:].astype(mx.float32)
    return tokens, logits - mx.logsumexp(logits, axis=-1, keepdims=True)


def test_tokenize_prompt_and_messages_match_the_tokenizer(server: ServeProcess, reference: Any) -> None:
    _, tok = reference
    r = post(server, "/tokenize", {"model": SMOLLM2_REPO_ID, "prompt": "Hello world"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tokens"] == tok.encode("Hello world") and body["count"] == len(body["tokens"])
    assert body["max_model_len"] == 8192
    r = post(server, "/tokenize", {"messages": MESSAGES})   # the server's default model
    assert r.json()["tokens"] == tok.apply_chat_template(MESSAGES, add_generation_prompt=True)
    back = post(server, "/detokenize", {"model": SMOLLM2_REPO_ID, "tokens": body["tokens"]})
    assert back.status_code == 200 and back.json() == {"prompt": "Hello world"}


def test_tokenize_errors_and_api_key(server: ServeProcess) -> None:
    assert post(server, "/tokenize", {"prompt": "x"}, key=None).status_code == 401
    assert post(server, "/detokenize", {"tokens": [1]}, key="wrong").status_code == 401
    both = post(server, "/tokenize", {"prompt": "x", "messages": MESSAGES})
    assert both.status_code == 400 and both.json()["error"]["message"]
    bad = post(server, "/detokenize", {"tokens": [10**9]})
    assert bad.status_code == 400 and "outside the vocabulary" in bad.json()["error"]["message"]
    unknown = post(server, "/tokenize", {"model": "nope/missing", "prompt": "x"})
    assert unknown.status_code in (400, 404)


def test_chat_logprobs_equal_independent_log_softmax(server: ServeProcess, reference: Any) -> None:
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key=KEY, timeout=300, max_retries=0)
    prompt = post(server, "/tokenize", {"messages": MESSAGES}).json()["tokens"]
    tokens, ref = reference_logprobs(reference, prompt, N)
    r = client.chat.completions.create(model=SMOLLM2_REPO_ID, messages=MESSAGES, temperature=0,
                                       max_tokens=N, logprobs=True, top_logprobs=5)
    content = r.choices[0].logprobs.content
    assert len(content) >= 2
    for i, entry in enumerate(content):
        assert entry.logprob == pytest.approx(float(ref[i, tokens[i]]), abs=1e-4)
        want = sorted((float(v) for v in ref[i].tolist()), reverse=True)[:5]
        got = [t.logprob for t in entry.top_logprobs]
        assert got == pytest.approx(want, abs=1e-4)


def test_completion_logprobs_equal_independent_log_softmax(server: ServeProcess, reference: Any) -> None:
    _, tok = reference
    prompt = tok.encode("The capital of France is")
    tokens, ref = reference_logprobs(reference, prompt, N)
    r = post(server, "/v1/completions", {"prompt": prompt, "max_tokens": N, "temperature": 0,
                                         "logprobs": 3})
    assert r.status_code == 200, r.text
    lp = r.json()["choices"][0]["logprobs"]
    assert len(lp["token_logprobs"]) >= 2
    for i, value in enumerate(lp["token_logprobs"]):
        assert value == pytest.approx(float(ref[i, tokens[i]]), abs=1e-4)
