"""KV-cache controls on the real SmolLM2: `--kv-bits` keeps the answers and the perplexity while
cutting cache memory, `--max-kv-size` bounds memory over a long conversation.

Quality and memory are measured with single forward passes (cheap on a CPU); the `run` code
path (``engine.generate.stream`` with ``lm.cache_options``) and the CLI flags are checked on
short greedy generations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.support.cli import run_mlxk
from tests.support.kv_quality import PROMPTS, TEXT, perplexity

from mlxk.engine.types import CacheOptions, GenerationRequest, SamplingParams


@pytest.fixture(scope="module")
def lm(smollm2_dir: Path) -> Any:
    from mlxk.engine import blas

    blas.use_fast_blas()   # before mlx loads: the reference BLAS makes a 500-token pass minutes
    from mlxk.engine.loader import load_model

    return load_model(smollm2_dir, name="SmolLM2")


def greedy(lm: Any, prompt: str, opts: CacheOptions | None, n: int = 32) -> tuple[str, int]:
    from mlxk.engine.generate import complete

    lm.cache_options = opts
    try:
        done = complete(lm, GenerationRequest(messages=[{"role": "user", "content": prompt}],
                                              sampling=SamplingParams(temperature=0), max_tokens=n))
    finally:
        lm.cache_options = None
    return done.text, done.completion_tokens


def fill(lm: Any, opts: CacheOptions | None, n: int, step: int = 100) -> tuple[list, list[int]]:
    """Feed ``n`` tokens' worth of keys/values of this model's shape into a cache made for
    ``opts`` (what a prefill stores, without the matmuls); the bytes held after each step."""
    import mlx.core as mx

    from mlxk.engine.kvcache import cache_nbytes, make_cache

    cfg = lm.config
    heads = cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
    dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    cache = make_cache(lm.model, opts)
    held = []
    for done in range(0, n, step):
        k = mx.random.normal((1, heads, min(step, n - done), dim)).astype(mx.float16)
        for c in cache:
            c.update_and_fetch(k, k)
        mx.eval([c.state for c in cache])
        held.append(cache_nbytes(cache))
    return cache, held


def test_kv8_same_greedy_tokens_as_full_precision(lm: Any) -> None:
    """Default group size (64). Not every prompt holds for 32 tokens: "Write a haiku about the
    sea." meets a near tie at token 28 ("beneath." vs "beneath,") that 8-bit KV flips."""
    for prompt in PROMPTS:
        assert greedy(lm, prompt, CacheOptions(kv_bits=8)) == greedy(lm, prompt, None)


def test_kv4_perplexity_on_500_tokens(lm: Any) -> None:
    """The issue's bar: at most +5% at `--kv-bits 4` (default group size 64). With 4-bit keys
    this model (3 KV heads) loses +13.0%; `--kv-bits 4` keeps keys at 5 bits (+2.1%, engine.kvcache)."""
    tokens = lm.tokenizer.encode(TEXT)[:500]
    assert len(tokens) == 500
    full = perplexity(lm, tokens, None)
    four = perplexity(lm, tokens, CacheOptions(kv_bits=4))
    assert four != full                      # the quantized cache was really used
    assert four <= full * 1.05, (full, four)


def test_kv_memory_at_2000_tokens(lm: Any) -> None:
    sizes = {bits: fill(lm, CacheOptions(kv_bits=bits) if bits else None, 2000)[1][-1]
             for bits in (None, 8, 4)}
    assert sizes[None] >= 3 * sizes[4], sizes
    assert sizes[None] > sizes[8] > sizes[4], sizes


def test_max_kv_size_keeps_memory_in_the_window(lm: Any) -> None:
    """1,000 tokens through a 256-token rotating cache in 100-token turns: it stops growing at
    the window plus one turn (every token of a turn sees the full window)."""
    cache, held = fill(lm, CacheOptions(max_kv_size=256), 1000)
    assert cache[0].offset == 1000
    assert max(held) == held[-1] and held[4] == held[-1]    # flat from 500 tokens on
    _, plain = fill(lm, None, 1000)
    per_token = plain[-1] / 1024             # the plain cache grows in steps of 256 tokens
    assert held[-1] <= per_token * (256 + 100) < plain[-1] / 2


def test_run_cli_kv_bits_8_matches_plain(smollm2_cached: str) -> None:
    args = ("run", smollm2_cached, PROMPTS[0], "--temperature", "0", "--max-tokens", "12", "--json")
    plain = run_mlxk(*args)
    eight = run_mlxk(*args, "--kv-bits", "8")
    assert plain.returncode == 0 and eight.returncode == 0, eight.stderr
    assert eight.json["data"]["response"] == plain.json["data"]["response"]


def test_run_cli_refuses_quantized_rotating_cache(tiny_cached: str) -> None:
    r = run_mlxk("run", tiny_cached, "hi", "--kv-bits", "4", "--max-kv-size", "64")
    assert r.returncode != 0 and "do not combine" in r.stderr
    r = run_mlxk("run", tiny_cached, "hi", "--max-kv-size", "4")
    assert r.returncode != 0 and "at least 16" in r.stderr
