"""`mlxk run`'s engine path versus raw ``mlx_lm.stream_generate``: same model, prompt,
max_tokens and sampling, in one run.

    .venv/bin/python bench/bench_run.py [--model DIR] [--tokens 128] [--rounds 5]

DIR defaults to SmolLM2-135M-Instruct converted from the PyPI GGUF by our convert code
(built under ``.cache/test-models/`` like the test fixture does). One loaded model is
shared by both arms, so only the generation path differs. Arms alternate round by round
(a shared, busy machine drifts); medians count.

- engine: ``generate.prepare`` + ``generate.stream`` (template, tokenization, sampler,
  SequenceDecoder with detokenizer, stop/reasoning handling) - what `mlxk run` calls.
- raw:    ``tokenizer.apply_chat_template`` + ``mlx_lm.stream_generate``.

TTFT: from the call to the first generated token. Decode tok/s: tokens after the first
over the time after the first. Targets: decode ratio >= 0.98, TTFT overhead <= 50 ms.

First, the engine's own additions are timed directly, without the model's forward pass
(robust on a busy machine): ``prepare()`` versus ``apply_chat_template``, and
``SequenceDecoder.feed`` versus mlx-lm's streaming detokenizer over the same tokens.
``--rounds 0`` prints only that.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

PROMPT = "Write a long story about a dragon who lives in a castle."


def default_model() -> Path:
    from tests.support.fixtures_models import build_smollm2

    return build_smollm2()


def run_engine(lm, max_tokens: int) -> tuple[float, float, int]:
    from mlxk.engine.generate import prepare, stream
    from mlxk.engine.types import GenerationRequest, SamplingParams

    req = GenerationRequest(messages=[{"role": "user", "content": PROMPT}],
                            sampling=SamplingParams(temperature=0.0), max_tokens=max_tokens)
    times: list[float] = []
    t0 = time.perf_counter()
    p = prepare(lm, req)
    feed = p.decoder.feed

    def timed_feed(token: int):
        times.append(time.perf_counter())
        return feed(token)

    p.decoder.feed = timed_feed
    for _ in stream(lm, req, prepared=p):
        pass
    return _stats(t0, times)


def run_raw(lm, max_tokens: int) -> tuple[float, float, int]:
    from mlx_lm import stream_generate
    from mlx_lm.sample_utils import make_sampler

    tok = lm.tokenizer
    times: list[float] = []
    t0 = time.perf_counter()
    prompt = tok.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True)
    for r in stream_generate(lm.model, tok, prompt, max_tokens=max_tokens, sampler=make_sampler(0.0)):
        if len(times) < r.generation_tokens:
            times.append(time.perf_counter())
    return _stats(t0, times)


def direct_overhead(lm, max_tokens: int, reps: int = 20) -> tuple[float, float, float]:
    """What the engine adds on top of raw mlx_lm, timed without the model's forward pass:
    (prepare - raw template/tokenize) seconds, and (decoder.feed - raw detokenizer) per token."""
    from mlx_lm import stream_generate
    from mlx_lm.sample_utils import make_sampler

    from mlxk.engine.generate import prepare
    from mlxk.engine.text.decoder import SequenceDecoder
    from mlxk.engine.types import GenerationRequest, SamplingParams

    tok = lm.tokenizer
    msgs = [{"role": "user", "content": PROMPT}]
    prompt = tok.apply_chat_template(msgs, add_generation_prompt=True)
    responses = list(stream_generate(lm.model, tok, prompt, max_tokens=max_tokens,
                                     sampler=make_sampler(0.0)))
    tokens = [r.token for r in responses]
    req = GenerationRequest(messages=msgs, sampling=SamplingParams(temperature=0.0), max_tokens=max_tokens)

    def best(fn) -> float:
        out = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
        return statistics.median(out)

    def raw_detok() -> None:
        d = tok.detokenizer
        for t in tokens:
            d.add_token(t)
            _ = d.last_segment
        d.finalize()

    def engine_decode() -> None:
        d = SequenceDecoder(tok, lm.eos_token_ids, hidden_token_ids=lm.hidden_token_ids)
        for t in tokens:
            d.feed(t)
        d.finish("length")

    prep = best(lambda: prepare(lm, req)) - best(lambda: tok.apply_chat_template(msgs, add_generation_prompt=True))
    per_token = (best(engine_decode) - best(raw_detok)) / max(1, len(tokens))
    return prep, per_token, responses[-1].generation_tps


def _stats(t0: float, times: list[float]) -> tuple[float, float, int]:
    ttft = times[0] - t0
    n = len(times)
    tps = (n - 1) / (times[-1] - times[0]) if n > 1 else 0.0
    return ttft, tps, n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5, help="0: only the direct overhead measurement")
    args = ap.parse_args()

    import mlx.core as mx

    from mlxk.engine.loader import load_model

    model_dir = args.model or default_model()
    lm = load_model(model_dir, model_dir.name)
    # mlx_lm's own loop must stop at the same tokens: the engine set them on the tokenizer.
    print(f"model {model_dir.name} on {mx.default_device()}, prompt {PROMPT!r}, "
          f"max_tokens {args.tokens}, greedy, {args.rounds} rounds (+1 warm-up)")
    run_raw(lm, 8)
    run_engine(lm, 8)
    prep_s, per_tok_s, raw_gen_tps = direct_overhead(lm, args.tokens)
    print(f"direct: prepare() costs {prep_s * 1000:+.2f} ms more than apply_chat_template; "
          f"SequenceDecoder.feed costs {per_tok_s * 1e6:+.1f} us/token more than mlx-lm's detokenizer")
    raw_tok_s = 1.0 / raw_gen_tps if raw_gen_tps else float("inf")
    print(f"  at raw mlx_lm's {raw_gen_tps:.2f} tok/s this bounds the decode ratio at "
          f"{raw_tok_s / (raw_tok_s + per_tok_s):.4f} and the TTFT overhead at {prep_s * 1000:.2f} ms")
    if args.rounds <= 0:
        return 0
    raw_runs, eng_runs = [], []
    for i in range(args.rounds):
        arms = [("raw", run_raw, raw_runs), ("engine", run_engine, eng_runs)]
        if i % 2:
            arms.reverse()
        for name, fn, acc in arms:
            ttft, tps, n = fn(lm, args.tokens)
            acc.append((ttft, tps, n))
            print(f"  round {i + 1} {name:6s}: ttft {ttft * 1000:7.1f} ms  decode {tps:7.2f} tok/s  ({n} tokens)")
    raw_ttft = statistics.median(r[0] for r in raw_runs)
    eng_ttft = statistics.median(r[0] for r in eng_runs)
    raw_tps = statistics.median(r[1] for r in raw_runs)
    eng_tps = statistics.median(r[1] for r in eng_runs)
    ratio = eng_tps / raw_tps if raw_tps else 0.0
    overhead_ms = (eng_ttft - raw_ttft) * 1000
    best_raw_tps, best_eng_tps = max(r[1] for r in raw_runs), max(r[1] for r in eng_runs)
    best_raw_ttft, best_eng_ttft = min(r[0] for r in raw_runs), min(r[0] for r in eng_runs)
    print()
    print(f"end to end, best rounds (least disturbed by other load): raw {best_raw_tps:.2f} tok/s "
          f"ttft {best_raw_ttft * 1000:.1f} ms | engine {best_eng_tps:.2f} tok/s ttft "
          f"{best_eng_ttft * 1000:.1f} ms | ratio {best_eng_tps / best_raw_tps:.3f}, "
          f"ttft overhead {(best_eng_ttft - best_raw_ttft) * 1000:+.1f} ms")
    print(f"end to end (medians of {args.rounds} alternating rounds):")
    print(f"raw mlx_lm.stream_generate: decode {raw_tps:.2f} tok/s, ttft {raw_ttft * 1000:.1f} ms")
    print(f"mlxk engine (run path):     decode {eng_tps:.2f} tok/s, ttft {eng_ttft * 1000:.1f} ms")
    print(f"decode tok/s ratio engine/raw: {ratio:.3f}  (target >= 0.98)  "
          f"{'OK' if ratio >= 0.98 else 'BELOW TARGET'}")
    print(f"TTFT overhead: {overhead_ms:+.1f} ms  (target <= 50 ms)  "
          f"{'OK' if overhead_ms <= 50 else 'ABOVE TARGET'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
