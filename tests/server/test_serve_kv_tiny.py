"""`serve` with a bounded KV cache: `--model-options` gives the tiny model a 256-token rotating
cache; four concurrent requests, one of them a 1,000-token conversation, run in the batch.
`--kv-bits` with `--max-kv-size` and bad option files are refused before the server starts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from tests.support.cli import run_mlxk
from tests.support.fixtures_models import TINY_REPO_ID, tiny_llama_dir
from tests.support.fixtures_server import ServeProcess, module_hf_home, start_serve

from mlxk.errors import ValidationError
from mlxk.server.model_options import options_for, read_file

WINDOW = 256


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    home = module_hf_home(tmp_path_factory, {TINY_REPO_ID: tiny_llama_dir()})
    opts = Path(home) / "models.toml"
    opts.write_text(f'["tiny-llama"]\nmax_kv_size = {WINDOW}\n')
    sp = start_serve(home, "--keep-alive", "-1", "--model", TINY_REPO_ID, "--model-options", str(opts),
                     log_dir=Path(home))
    yield sp
    assert sp.stop() == 0


def conversation(tokens_wanted: int) -> list[dict[str, str]]:
    turns, words = [], 0
    while words < tokens_wanted:
        turns += [{"role": "user", "content": "The capital of France is Paris. " * 8},
                  {"role": "assistant", "content": "Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100. " * 4}]
        words += 150
    return [*turns, {"role": "user", "content": "Hello world!"}]


def test_models_report_the_window(server: ServeProcess) -> None:
    card = httpx.get(server.base_url + f"/v1/models/{TINY_REPO_ID}").json()
    assert card["context_length"] == WINDOW
    assert card["kv_cache"] == {"max_kv_size": WINDOW, "kv_bits": None}


def test_four_concurrent_requests_one_longer_than_the_window(server: ServeProcess) -> None:
    long = conversation(1000)
    count = httpx.post(server.base_url + "/tokenize", json={"messages": long}).json()["count"]
    assert count >= 1000

    def ask(messages: list[dict[str, str]]) -> dict:
        r = httpx.post(server.base_url + "/v1/chat/completions", timeout=300,
                       json={"messages": messages, "max_tokens": 40, "temperature": 0})
        assert r.status_code == 200, r.text
        return r.json()

    shorts = [[{"role": "user", "content": f"Hello {i}"}] for i in range(3)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(ask, [long, *shorts]))
    assert results[0]["usage"]["prompt_tokens"] == count
    assert all(r["choices"][0]["finish_reason"] in ("stop", "length") for r in results)
    assert results[0]["usage"]["completion_tokens"] >= 1


def test_serve_refuses_quantized_rotating_cache_and_bad_options(tmp_path: Path) -> None:
    r = run_mlxk("serve", "--kv-bits", "4", "--max-kv-size", "64")
    assert r.returncode != 0 and "do not combine" in r.stderr
    bad = tmp_path / "o.json"
    bad.write_text(json.dumps({"m": {"max_kv_size": 8}}))
    r = run_mlxk("serve", "--model-options", str(bad))
    assert r.returncode != 0 and "at least 16" in r.stderr and "[m]" in r.stderr


def test_model_options_file_shapes(tmp_path: Path) -> None:
    good = tmp_path / "o.json"
    good.write_text(json.dumps({"org/big": {"max_kv_size": 4096}, "small": {"kv_bits": 8}}))
    per_model = read_file(str(good))
    assert options_for({"max_kv_size": None}, per_model, "org/big") == {"max_kv_size": 4096}
    assert options_for({}, per_model, "org/small") == {"kv_bits": 8}
    assert options_for({"max_kv_size": 64}, per_model, "org/other") == {"max_kv_size": 64}
    for text, msg in (('{"m": {"bogus": 1}}', "unknown option"), ('{"m": 3}', "tables of options"),
                      ('{"m": {"kv_bits": "8"}}', "integer"), ("{", "not valid")):
        good.write_text(text)
        with pytest.raises(ValidationError, match=msg):
            read_file(str(good))
