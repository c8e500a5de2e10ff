"""`--kv-bits` at a 2,000-token context, in `run`'s engine and through `mlxk serve`, in one run.

    .venv/bin/python bench/bench_kv_serve.py [--model DIR] [--context 2000] [--tokens 32] [--rounds 2]

Arms: float cache, `--kv-bits 8`, `--kv-bits 4` (5-bit keys, 4-bit values), rotating order
round by round (a shared machine drifts).

0. quality: perplexity of the fixed 500-token text of tests/e2e/test_kv_cache_real.py (chunks
   of 128 tokens) per arm, and with 4-bit keys (what `--kv-bits 4` would be with equal widths).
1. run: ``bench_gen_controls.kv_arm`` (a cache made by ``engine.kvcache.make_cache`` filled with
   ``--context`` tokens of keys/values of the model's shape, then ``--tokens`` greedy decode
   steps timed); decode tok/s and the cache's bytes.
2. serve: one `mlxk serve` holding the model under three names, `--model-options` giving two of
   them their `kv_bits`. Per arm, a fresh ``--context``-token prompt is prefilled once (its KV
   state lands in the prefix cache: the growth of ``mlxk_prefix_cache_bytes`` is the memory of
   one 2,000-token sequence), then 4 concurrent streamed completions that share it (served from
   the prefix cache, distinct endings) decode ``--tokens`` tokens each: aggregate tok/s (all
   tokens / wall time, the short prefill of each ending included) and the mean per-stream
   decode rate (``bench_serve.one_request``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

ARMS = {"float cache": None, "--kv-bits 8": 8, "--kv-bits 4": 4}
NAMES = {"float cache": "bench/SmolLM2-full", "--kv-bits 8": "bench/SmolLM2-kv8",
         "--kv-bits 4": "bench/SmolLM2-kv4"}
WORDS = ["harbour", "lamp", "tide", "keeper", "gull", "rope", "lens", "storm", "anchor", "beacon",
         "shore", "ferry", "dawn", "mist", "signal", "island", "channel", "pier", "compass", "driftwood"]


def long_prompt(tokenizer: object, n_tokens: int, seed: int) -> str:
    """About ``n_tokens`` tokens of text, different for each ``seed``."""
    words = [WORDS[(i * 7 + seed * 13 + i // 5) % len(WORDS)] for i in range(n_tokens)]
    text = f"Log {seed}. " + " ".join(words)
    return tokenizer.decode(tokenizer.encode(text)[:n_tokens])


def prefix_bytes(base: str, model: str) -> float:
    from tests.support.fixtures_server import metric_value

    return metric_value(httpx.get(base + "/metrics", timeout=60).text, "mlxk_prefix_cache_bytes", model=model)


def serve_arm(base: str, name: str, prompt: str, tokens: int) -> tuple[float, float, int]:
    from bench_serve import one_request

    model = NAMES[name]
    url = base + "/v1/chat/completions"
    before = prefix_bytes(base, model)
    with httpx.Client(timeout=3600) as client:
        one_request(client, url, model, prompt, 1)     # the prefill; its KV lands in the prefix cache
        held = int(prefix_bytes(base, model) - before)
        start = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            runs = list(pool.map(lambda i: one_request(client, url, model, f"{prompt} Entry {i}:", tokens),
                                 range(4)))
        wall = time.perf_counter() - start
    per = statistics.mean(r.decode_tps for r in runs if r.decode_tps)
    return sum(r.tokens for r in runs) / wall, per, held


def quality(lm: object) -> None:
    from mlx_lm.models.cache import KVCache
    from tests.support.kv_quality import TEXT, perplexity

    from mlxk.engine.kv_quant import QuantizedKV, QuantSpec

    tokens = lm.tokenizer.encode(TEXT)[:500]
    makers = {"float cache": KVCache, "--kv-bits 8": lambda: QuantizedKV(QuantSpec(8, 8)),
              "--kv-bits 4 (5-bit keys)": lambda: QuantizedKV(QuantSpec(5, 4)),
              "4-bit keys and values": lambda: QuantizedKV(QuantSpec(4, 4))}
    print("Perplexity, fixed 500-token text, group size 64")
    print("| cache | perplexity | vs float |")
    print("|---|---|---|")
    base = None
    for name, make in makers.items():
        ppl = perplexity(lm, tokens, None, cache=[make() for _ in lm.model.layers])
        base = base or ppl
        print(f"| {name} | {ppl:.3f} | {100 * (ppl / base - 1):+.1f}% |")
    print()


def start_server(model_dir: Path, home: Path) -> tuple[object, str]:
    from tests.support.fixtures_server import start_serve

    from mlxk.cache.importer import import_directory

    (home / "hub").mkdir(parents=True, exist_ok=True)
    for name in NAMES.values():
        import_directory(model_dir, name, root=home / "hub")
    opts = home / "models.toml"
    opts.write_text("".join(f'["{NAMES[a]}"]\nkv_bits = {b}\n\n' for a, b in ARMS.items() if b))
    sp = start_serve(home, "--keep-alive", "-1", "--max-loaded", "3", "--max-batch", "4",
                     "--model-options", str(opts), log_dir=home)
    return sp, sp.base_url.rstrip("/")


def table(title: str, rows: dict[str, tuple[float, float | None, int]], base: str = "float cache") -> None:
    print(title)
    print("| arm | decode tok/s | per stream tok/s | KV MB (one sequence) | vs float: speed / memory |")
    print("|---|---|---|---|---|")
    bt, _, bb = rows[base]
    for name, (t, per, b) in rows.items():
        per_s = "-" if per is None else f"{per:.2f}"
        print(f"| {name} | {t:.2f} | {per_s} | {b / 1e6:.1f} | {t / bt:.2f}x / {bb / b:.2f}x smaller |")


def main() -> None:
    from mlxk.engine import blas

    blas.use_fast_blas()
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--context", type=int, default=2000)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    from tests.support.fixtures_models import build_smollm2

    from bench_gen_controls import kv_arm
    from mlxk.engine.loader import load_model
    from mlxk.engine.types import CacheOptions

    path = Path(args.model) if args.model else build_smollm2()
    lm = load_model(path, name="SmolLM2")
    quality(lm)
    order = list(ARMS)
    run: dict[str, list[tuple[float, int]]] = {a: [] for a in ARMS}
    for r in range(args.rounds):
        for name in order[r % 3:] + order[:r % 3]:
            bits = ARMS[name]
            run[name].append(kv_arm(lm, CacheOptions(kv_bits=bits) if bits else None, args.context, args.tokens))
    table(f"run (engine): KV cache at a {args.context}-token context, {args.tokens} decode steps, "
          f"median of {args.rounds}",
          {a: (statistics.median(t for t, _ in v), None, v[-1][1]) for a, v in run.items()})

    sp, base = start_server(path, Path(tempfile.mkdtemp()))
    try:
        served: dict[str, list[tuple[float, float, int]]] = {a: [] for a in ARMS}
        for r in range(args.rounds):
            for name in order[r % 3:] + order[:r % 3]:
                prompt = long_prompt(lm.tokenizer, args.context, seed=r * 3 + order.index(name))
                served[name].append(serve_arm(base, name, prompt, args.tokens))
    finally:
        sp.stop()
    table(f"\nserve: 4 concurrent streams sharing a {args.context}-token prompt, {args.tokens} tokens each, "
          f"median of {args.rounds}",
          {a: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v), v[-1][2])
           for a, v in served.items()})


if __name__ == "__main__":
    main()
