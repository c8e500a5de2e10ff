"""`serve --kv-bits` on the real SmolLM2, in the continuous batch (one server for the module).

The same weights are cached under three names; `--model-options` gives one 8-bit and one
4-bit KV cache, the third keeps full precision, so every comparison runs in one server:
- 8 bits: four concurrent greedy chats give the tokens the full-precision batch gives;
- 4 bits: the perplexity of a fixed 500-token text (from `echo` + `logprobs`, scored while
  three other requests run) is at most 5% above full precision;
- memory: after four concurrent requests (one of 2,000 tokens), the prefix cache holds their KV
  state in at least 3x fewer bytes than full precision would (`mlxk_prefix_cache_bytes`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.fixtures_models import SMOLLM2_REPO_ID, build_smollm2
from tests.support.fixtures_server import ServeProcess, metric_value, module_hf_home, start_serve
from tests.support.kv_quality import PROMPTS, TEXT

FULL, KV8, KV4 = SMOLLM2_REPO_ID, "mlxk-test/SmolLM2-kv8", "mlxk-test/SmolLM2-kv4"
CHUNK = 128


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    model = build_smollm2()
    home = module_hf_home(tmp_path_factory, {FULL: model, KV8: model, KV4: model})
    opts = Path(home) / "models.toml"
    opts.write_text(f'["{KV8}"]\nkv_bits = 8\n\n["{KV4}"]\nkv_bits = 4\n')
    sp = start_serve(home, "--keep-alive", "-1", "--max-loaded", "3", "--max-batch", "4",
                     "--prefill-chunk", str(CHUNK), "--model-options", str(opts), log_dir=Path(home))
    yield sp
    assert sp.stop() == 0


@pytest.fixture(scope="module")
def smollm2_config() -> dict[str, Any]:
    return json.loads((build_smollm2() / "config.json").read_text())


def post(sp: ServeProcess, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(sp.base_url + path, json=body, timeout=600)
    assert r.status_code == 200, r.text
    return r.json()


def concurrently(sp: ServeProcess, calls: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda c: post(sp, *c), calls))


def chat(model: str, content: str, max_tokens: int) -> tuple[str, dict[str, Any]]:
    return "/v1/chat/completions", {"model": model, "max_tokens": max_tokens, "temperature": 0,
                                    "messages": [{"role": "user", "content": content}]}


def test_kv8_same_greedy_tokens_as_full_precision_in_a_batch_of_four(server: ServeProcess) -> None:
    prompts = [*PROMPTS, "Name two planets of the solar system."]
    texts = {}
    for model in (FULL, KV8):
        out = concurrently(server, [chat(model, p, 32) for p in prompts])
        texts[model] = [(r["choices"][0]["message"]["content"], r["usage"]["completion_tokens"])
                        for r in out]
    assert texts[KV8] == texts[FULL]
    assert sum(n for _, n in texts[KV8]) >= 3 * 32 - 24     # most of them ran the 32 tokens


def perplexity(choice: dict[str, Any], n: int) -> float:
    lps = choice["logprobs"]["token_logprobs"][:n]
    assert lps[0] is None and len(lps) == n
    return math.exp(-sum(lps[1:]) / (n - 1))


def test_kv4_perplexity_within_5_percent_with_four_requests(server: ServeProcess) -> None:
    tokens = post(server, "/tokenize", {"model": FULL, "prompt": TEXT})["tokens"][:500]
    assert len(tokens) == 500

    def score(model: str) -> tuple[str, dict[str, Any]]:
        return "/v1/completions", {"model": model, "prompt": tokens, "max_tokens": 1,
                                   "temperature": 0, "echo": True, "logprobs": 0}

    full = perplexity(post(server, *score(FULL))["choices"][0], 500)
    out = concurrently(server, [score(KV4), *(chat(KV4, p, 8) for p in PROMPTS)])
    four = perplexity(out[0]["choices"][0], 500)
    assert four != full
    assert four <= full * 1.05, (full, four)


def test_kv4_memory_at_2000_tokens_is_3x_smaller(server: ServeProcess, smollm2_config: dict) -> None:
    """The four sequences' KV state in the prefix cache, against what the same tokens take in
    this model's full-precision (float32) cache: layers x (keys + values) x heads x head_dim x
    4 bytes per token (one 2,000-token prefill instead of two; tests/e2e/test_kv_cache_real.py
    measures both caches, in float16)."""
    long = " ".join(TEXT.split() * 4)
    url = server.base_url + "/metrics"
    before = metric_value(httpx.get(url).text, "mlxk_prefix_cache_bytes", model=KV4)
    out = concurrently(server, [chat(KV4, f"{long}\nSummarise in one line.", 2),
                                *(chat(KV4, f"Count to {i}.", 2) for i in (3, 4, 5))])
    held = metric_value(httpx.get(url).text, "mlxk_prefix_cache_bytes", model=KV4) - before
    prompt = [r["usage"]["prompt_tokens"] for r in out]
    assert prompt[0] >= 2000
    cfg = smollm2_config
    assert cfg["torch_dtype"] == "float32"
    per_token = cfg["num_hidden_layers"] * 2 * cfg["num_key_value_heads"] * cfg["head_dim"] * 4
    assert held > 0 and sum(prompt) * per_token >= 3 * held, (held, sum(prompt) * per_token)


def test_loaded_models_report_kv_bits(server: ServeProcess) -> None:
    card = httpx.get(server.base_url + f"/v1/models/{KV4}").json()
    assert card["kv_cache"] == {"max_kv_size": None, "kv_bits": 4}
