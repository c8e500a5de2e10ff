"""Generation controls on SmolLM2-135M, in one run: KV-cache bits and speculative decoding.

    .venv/bin/python bench/bench_gen_controls.py [--model DIR] [--context 2000] [--tokens 32] [--rounds 3]
                                                 [--only kv,spec,batch]

1. KV bits at a long context: for each arm (float cache, ``--kv-bits 8``, ``--kv-bits 4``), a cache
   made by ``engine.kvcache.make_cache`` is filled with ``--context`` tokens of keys/values of the
   model's shape (decode cost depends on the cache's size, not its content, and this skips a
   minutes-long CPU prefill), then ``--tokens`` greedy decode steps are timed. Reports decode
   tok/s and the cache's bytes. Arms alternate round by round (a shared machine drifts).
2. Speculative: ``engine.generate.stream`` (the `mlxk run` path) on a code-edit prompt, plain
   versus ``--draft-model`` (a SmolLM2 copy with its layers' quantization scales perturbed by 5%
   noise, built like tests/e2e/test_speculative_real.py) and ``--prompt-lookup`` at 2 and 4 draft
   tokens; decode tok/s and the acceptance rate.
   Two code-edit prompts: one SmolLM2 answers with a rewrite, one it answers by copying the code.
3. Speculative in the server's batch: ``engine.batch.BatchScheduler`` (the `serve` path) with 4
   concurrent greedy requests (the two code edits, two chat questions), plain versus
   ``--prompt-lookup 4`` versus ``--draft-model`` k=3; aggregate tok/s, acceptance, same texts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

CODE_EDIT = (
    "Rename the variable `total` to `running_sum` in this function and return the code only:\n\n"
    "def accumulate(values):\n    total = 0\n    for v in values:\n        total += v\n"
    "        print(total)\n    return total\n"
)

# SmolLM2-135M answers CODE_EDIT with a rewrite of its own; it answers COPY_EDIT by printing the
# code again (unrenamed): the two ends of what prompt lookup sees.
COPY_EDIT = (
    "Rename the functions to plus, minus, times. Output the whole code.\n\n"
    "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n\n"
    "def mul(a, b):\n    return a * b\n"
)


def kv_arm(lm, opts, context: int, tokens: int) -> tuple[float, int]:
    import mlx.core as mx

    from mlxk.engine.kvcache import cache_nbytes, make_cache

    cfg = lm.config
    heads = cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
    dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    cache = make_cache(lm.model, opts)
    for done in range(0, context, 500):
        k = mx.random.normal((1, heads, min(500, context - done), dim)).astype(mx.float32)
        for c in cache:
            c.update_and_fetch(k, k)
    mx.eval([c.state for c in cache])
    token = mx.array([[1]])
    start = time.perf_counter()
    for _ in range(tokens):
        logits = lm.model(token, cache=cache)
        token = mx.argmax(logits[:, -1], axis=-1)[None]
        mx.eval(token)
    return tokens / (time.perf_counter() - start), cache_nbytes(cache)


def spec_arm(lm, draft, tokens: int, prompt: str = CODE_EDIT) -> tuple[float, float | None, str]:
    from mlxk.engine.generate import stream
    from mlxk.engine.types import GenerationRequest, SamplingParams

    lm.draft = draft
    try:
        req = GenerationRequest(messages=[{"role": "user", "content": prompt}],
                                sampling=SamplingParams(temperature=0), max_tokens=tokens)
        text, final = "", None
        for chunk in stream(lm, req):
            text += chunk.text
            final = chunk if chunk.finish_reason else final
    finally:
        lm.draft = None
    t = final.timing
    return t["generation_tps"], t.get("acceptance_rate"), text


BATCH_PROMPTS = [CODE_EDIT, COPY_EDIT, "What is the capital of France?", "Name three colors."]


def batch_arm(path: Path, tokens: int, **spec: object) -> tuple[float, float | None, list[str]]:
    import asyncio

    from mlxk.engine.batch import BatchScheduler
    from mlxk.engine.generate import prepare
    from mlxk.engine.loader import load_model
    from mlxk.engine.types import GenerationRequest, SamplingParams

    async def go() -> tuple[float, float | None, list[str]]:
        sched = BatchScheduler(lambda: load_model(path, name="SmolLM2"), name="SmolLM2", **spec)
        lm = await sched.ready()

        async def one(text: str) -> tuple[str, int]:
            p = prepare(lm, GenerationRequest(messages=[{"role": "user", "content": text}],
                                              sampling=SamplingParams(temperature=0), max_tokens=tokens))
            h, out = sched.submit(p), []
            while True:
                d = await h.queue.get()
                if isinstance(d, Exception):
                    raise d
                out.append(d.chunk.text)
                if d.chunk.finish_reason:
                    return "".join(out), d.chunk.completion_tokens

        start = time.perf_counter()
        res = await asyncio.gather(*(one(t) for t in BATCH_PROMPTS))
        wall = time.perf_counter() - start
        c = sched.spec_counts
        sched.close()
        rate = c.accepted / c.drafted if c.drafted else None
        return sum(n for _, n in res) / wall, rate, [t for t, _ in res]

    return asyncio.run(go())


def batch_section(path: Path, draft_path: Path, rounds: int) -> None:
    arms = {"plain": {}, "prompt-lookup 4": {"prompt_lookup": 4}}
    if draft_path is not None:
        from mlxk.engine.loader import load_model

        arms["draft k=3"] = {"draft_load": lambda: load_model(draft_path, name="draft"), "num_draft": 3}
    res = interleaved(arms, rounds, lambda kw: batch_arm(path, 48, **kw))
    table(f"Speculative decoding in the serve batch, 4 concurrent greedy requests, 48 tokens, median of {rounds}",
          "aggregate tok/s", res)


def interleaved(arms: dict, rounds: int, run_one) -> dict[str, list[tuple]]:
    """Each arm once per round, the order rotated round by round (a shared machine drifts)."""
    res: dict[str, list[tuple]] = {a: [] for a in arms}
    for r in range(rounds):
        names = list(arms)[r % len(arms):] + list(arms)[:r % len(arms)]
        for name in names:
            res[name].append(run_one(arms[name]))
    return res


def table(title: str, speed: str, res: dict[str, list[tuple]]) -> None:
    """Rows of (tok/s, acceptance, output): median speed, vs the "plain" arm, same output."""
    print("\n" + title)
    print(f"| arm | {speed} | acceptance | vs plain | same output |")
    print("|---|---|---|---|---|")
    plain_t = statistics.median(x[0] for x in res["plain"])
    plain_out = res["plain"][0][2]
    for name, rows in res.items():
        t = statistics.median(x[0] for x in rows)
        acc = rows[0][1]
        print(f"| {name} | {t:.2f} | {'-' if acc is None else f'{acc:.0%}'} | {t / plain_t:.2f}x | "
              f"{all(x[2] == plain_out for x in rows)} |")


def main() -> None:
    from mlxk.engine import blas

    blas.use_fast_blas()
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--context", type=int, default=2000)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="kv,spec,batch", help="sections: kv, spec, batch")
    args = ap.parse_args()
    only = set(args.only.split(","))
    from tests.e2e.test_speculative_real import build_draft
    from tests.support.fixtures_models import build_smollm2

    from mlxk.engine.loader import load_model

    path = Path(args.model) if args.model else build_smollm2()
    lm = load_model(path, name="SmolLM2")
    if "kv" in only:
        kv_section(lm, args)
    draft_path = build_draft(path, Path(tempfile.mkdtemp()) / "draft") if only & {"spec", "batch"} else None
    if "spec" in only:
        spec_section(lm, draft_path, args.rounds)
    if "batch" in only:
        batch_section(path, draft_path, args.rounds)


def kv_section(lm, args: argparse.Namespace) -> None:
    from mlxk.engine.types import CacheOptions

    arms = {"float cache": None, "--kv-bits 8": CacheOptions(kv_bits=8), "--kv-bits 4": CacheOptions(kv_bits=4)}
    tps: dict[str, list[float]] = {a: [] for a in arms}
    size: dict[str, int] = {}
    for r in range(args.rounds):
        names = list(arms)[r % 3:] + list(arms)[:r % 3]
        for name in names:
            t, b = kv_arm(lm, arms[name], args.context, args.tokens)
            tps[name].append(t)
            size[name] = b
    print(f"KV cache at a {args.context}-token context, {args.tokens} decode steps, median of {args.rounds}")
    print("| arm | decode tok/s | KV cache MB | vs float: speed / memory |")
    print("|---|---|---|---|")
    base_t, base_b = statistics.median(tps["float cache"]), size["float cache"]
    for name in arms:
        t = statistics.median(tps[name])
        print(f"| {name} | {t:.2f} | {size[name] / 1e6:.1f} | {t / base_t:.2f}x / {base_b / size[name]:.2f}x smaller |")


def spec_section(lm, draft_path: Path, rounds: int) -> None:
    from mlxk.engine.loader import load_model
    from mlxk.engine.speculative import Draft, Lookup

    draft_lm = load_model(draft_path, name="draft")
    spec = {"plain": None, "draft k=2": Draft(lm=draft_lm, num_draft=2),
            "draft k=4": Draft(lm=draft_lm, num_draft=4),
            "prompt-lookup 2": Lookup(num_draft=2), "prompt-lookup 4": Lookup(num_draft=4)}
    for label, prompt in (("a rewrite", CODE_EDIT), ("a copy of the code", COPY_EDIT)):
        res = interleaved(spec, rounds, lambda d, p=prompt: spec_arm(lm, d, 48, p))
        table(f"Speculative decoding in run, code-edit prompt answered with {label}, 48 tokens greedy, "
              f"median of {rounds}", "decode tok/s", res)


if __name__ == "__main__":
    main()
