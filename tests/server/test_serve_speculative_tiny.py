"""`serve --prompt-lookup N`: speculative decoding inside the batch. One server holds the tiny
model twice: `mlxk-test/tiny-llama` drafts (the flag), `mlxk-test/tiny-plain` does not
(`prompt_lookup: null` in --model-options). Concurrent greedy requests give the same tokens
from both; a repetition-penalty request (a logits processor: decoded plainly inside the
verify step) too; /metrics counts drafted and accepted tokens. A second server drafts with a
tiny draft model (the tiny model's weights perturbed, same tokenizer) inside its batch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from tests.support.cli import run_mlxk
from tests.support.draft_models import perturbed_copy
from tests.support.fixtures_models import TINY_REPO_ID, tiny_llama_dir
from tests.support.fixtures_server import ServeProcess, metric_value, module_hf_home, start_serve

PLAIN = "mlxk-test/tiny-plain"
DRAFT = "mlxk-test/tiny-draft"
PROMPTS = ["def add(a, b):\n    return a + b\n" * 3, "Hello world, hello world, hello world",
           "The capital of France is Paris. The capital of", "0 1 2 3 4 5 6 7 8 9 0 1 2 3"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    home = module_hf_home(tmp_path_factory, {TINY_REPO_ID: tiny_llama_dir(), PLAIN: tiny_llama_dir()})
    opts = Path(home) / "models.json"
    opts.write_text(json.dumps({PLAIN: {"prompt_lookup": None}}))
    sp = start_serve(home, "--keep-alive", "-1", "--prompt-lookup", "4", "--model-options", str(opts),
                     log_dir=Path(home))
    yield sp
    assert sp.stop() == 0


@pytest.fixture(scope="module")
def draft_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    draft = perturbed_copy(tiny_llama_dir(), tmp_path_factory.mktemp("draft") / "m")
    home = module_hf_home(tmp_path_factory, {PLAIN: tiny_llama_dir(), DRAFT: draft})
    sp = start_serve(home, "--keep-alive", "-1", "--model", PLAIN, "--draft-model", DRAFT,
                     "--num-draft-tokens", "3", log_dir=Path(home))
    yield sp
    assert sp.stop() == 0


def _ask(server: ServeProcess, model: str, prompt: str, **extra: object) -> str:
    r = httpx.post(server.base_url + "/v1/completions", timeout=300,
                   json={"model": model, "prompt": prompt, "max_tokens": 32, "temperature": 0, **extra})
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["text"]


def test_concurrent_greedy_outputs_match_plain_decoding(server: ServeProcess) -> None:
    jobs = [(m, p, {}) for m in (TINY_REPO_ID, PLAIN) for p in PROMPTS]
    jobs += [(m, PROMPTS[1], {"repetition_penalty": 1.3}) for m in (TINY_REPO_ID, PLAIN)]
    jobs.append((TINY_REPO_ID, PROMPTS[0], {"temperature": 0.9, "seed": 7}))
    with ThreadPoolExecutor(len(jobs)) as pool:
        texts = list(pool.map(lambda j: _ask(server, j[0], j[1], **j[2]), jobs))
    n = len(PROMPTS)
    assert texts[:n] == texts[n:2 * n]
    assert texts[2 * n] == texts[2 * n + 1]            # repetition penalty: plain inside the batch
    assert texts[-1]                                   # sampled with drafts: an answer
    metrics = httpx.get(server.base_url + "/metrics").text
    drafted = metric_value(metrics, "mlxk_speculative_draft_tokens", model=TINY_REPO_ID)
    accepted = metric_value(metrics, "mlxk_speculative_accepted_tokens", model=TINY_REPO_ID)
    rate = metric_value(metrics, "mlxk_speculative_acceptance_rate", model=TINY_REPO_ID)
    assert drafted > 0 and 0 < accepted <= drafted
    assert rate == pytest.approx(accepted / drafted)
    assert f'mlxk_speculative_draft_tokens{{model="{PLAIN}"}}' not in metrics


def test_streamed_answer_equals_the_whole_one(server: ServeProcess) -> None:
    body = {"model": TINY_REPO_ID, "prompt": PROMPTS[3], "max_tokens": 24, "temperature": 0}
    pieces = []
    with httpx.stream("POST", server.base_url + "/v1/completions", json={**body, "stream": True},
                      timeout=300) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                pieces += [c["text"] for c in json.loads(line[6:])["choices"]]
    assert "".join(pieces) == _ask(server, PLAIN, PROMPTS[3], max_tokens=24)


def test_bad_speculation_flags_are_refused_at_start() -> None:
    r = run_mlxk("serve", "--prompt-lookup", "0")
    assert r.returncode != 0 and "--prompt-lookup must be between 1 and 16" in r.stderr
    r = run_mlxk("serve", "--prompt-lookup", "2", "--draft-model", "x")
    assert r.returncode == 2 and "choose one" in r.stderr
    r = run_mlxk("serve", "--draft-model", "no-such-model")
    assert r.returncode != 0 and "no-such-model" in r.stderr


def test_draft_model_in_the_batch_keeps_greedy_outputs(server: ServeProcess,
                                                       draft_server: ServeProcess) -> None:
    with ThreadPoolExecutor(2 * len(PROMPTS)) as pool:
        spec = pool.map(lambda p: _ask(draft_server, PLAIN, p), PROMPTS)
        plain = pool.map(lambda p: _ask(server, PLAIN, p), PROMPTS)
        assert list(spec) == list(plain)
    metrics = httpx.get(draft_server.base_url + "/metrics").text
    drafted = metric_value(metrics, "mlxk_speculative_draft_tokens", model=PLAIN)
    assert drafted > 0
    assert 0 <= metric_value(metrics, "mlxk_speculative_accepted_tokens", model=PLAIN) <= drafted


def test_logprobs_of_accepted_tokens_match_plain(server: ServeProcess) -> None:
    def lps(model: str) -> list[tuple[str, float]]:
        r = httpx.post(server.base_url + "/v1/chat/completions", timeout=300, json={
            "model": model, "messages": [{"role": "user", "content": PROMPTS[1]}], "max_tokens": 16,
            "temperature": 0, "logprobs": True, "top_logprobs": 2})
        assert r.status_code == 200, r.text
        return [(e["token"], e["logprob"]) for e in r.json()["choices"][0]["logprobs"]["content"]]

    spec, plain = lps(TINY_REPO_ID), lps(PLAIN)
    assert [t for t, _ in spec] == [t for t, _ in plain]
    assert all(abs(a - b) < 1e-3 for (_, a), (_, b) in zip(spec, plain, strict=True))
