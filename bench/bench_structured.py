"""Tokens/s with a JSON-schema constraint versus unconstrained, same model and prompt, one run.

    .venv/bin/python bench/bench_structured.py [--model DIR] [--tokens 64] [--rounds 3]

DIR defaults to the SmolLM2 test model the engine fixtures convert under
``.cache/test-models/``. Both arms run mlx-lm's ``generate_step`` with the same sampler
(greedy) and prompt; the constrained arm adds mlxk's llguidance logits processor. The
schema has no length limits, so both arms decode about ``--tokens`` tokens (EOS is
masked out in the unconstrained arm; the constrained arm counts what it decoded before
the grammar let it end). Arms alternate in paired rounds; the
median of the per-round ratios counts (robust to load from other processes). Target overhead <= 15%.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

# An array of records with free strings: the model can keep going for any budget.
SCHEMA = {"type": "array", "items": {"type": "object", "properties": {
    "name": {"type": "string"}, "city": {"type": "string"},
    "age": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["name", "city", "age", "tags"], "additionalProperties": False}}
PROMPT = "List some people as JSON records with name, city, age and tags."


def find_model() -> Path:
    hits = sorted((ROOT / ".cache" / "test-models").glob("*SmolLM2*"))
    hits = [h for h in hits if (h / "config.json").exists()]
    if not hits:
        sys.exit("no model: pass --model DIR (or run the engine tests once to build SmolLM2)")
    return hits[0]


class Timed:
    """Wraps a logits processor and accumulates the wall time spent inside it."""

    def __init__(self, inner) -> None:
        self.inner, self.seconds, self.calls = inner, 0.0, 0

    def __call__(self, tokens, logits):
        import mlx.core as mx

        mx.eval(tokens, logits)  # the model step itself is not the processor's cost
        t = time.perf_counter()
        out = self.inner(tokens, logits)
        mx.eval(out)
        self.seconds += time.perf_counter() - t
        self.calls += 1
        return out


def run_arm(model, prompt, tokens: int, processors, eos: set[int]) -> float:
    import mlx.core as mx
    from mlx_lm.generate import generate_step

    def no_eos(_tokens, logits):
        idx = mx.array(sorted(eos))
        return logits.at[..., idx].add(-float("inf"))

    procs = processors if processors else [no_eos]
    n = 0
    start = None
    for tok, _ in generate_step(mx.array(prompt), model, max_tokens=tokens + 1,
                                logits_processors=procs):
        if tok in eos:
            break
        if start is None:            # time decode only, after the first token
            start = time.perf_counter()
            continue
        n += 1
    elapsed = time.perf_counter() - start
    return n / elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    from mlx_lm import load

    from mlxk.engine.structured import grammar as C

    path = args.model or find_model()
    model, tokenizer = load(str(path))
    eos = set(tokenizer.eos_token_ids)
    lm = type("LM", (), {"tokenizer": tokenizer, "eos_token_ids": eos, "config": {}})()
    grammar = C.json_schema_grammar(SCHEMA)
    msgs = [{"role": "user", "content": PROMPT}]
    prompt = (tokenizer.apply_chat_template(msgs, add_generation_prompt=True)
              if tokenizer.has_chat_template else tokenizer.encode(PROMPT))
    C.processor_for_model(lm, grammar)  # build + cache the LLTokenizer outside the timing

    plain, constrained, per_call = [], [], []
    run_arm(model, prompt, 8, [], eos)  # warm-up
    for _ in range(args.rounds):  # paired rounds: the machine's load hits both arms alike
        plain.append(run_arm(model, prompt, args.tokens, [], eos))
        proc = C.processor_for_model(lm, grammar)
        constrained.append(run_arm(model, prompt, args.tokens, [proc], eos))
        if proc.error:
            print(f"grammar error: {proc.error}", file=sys.stderr)
        timed = Timed(C.processor_for_model(lm, grammar))
        run_arm(model, prompt, args.tokens, [timed], eos)
        per_call.append(timed.seconds / max(timed.calls, 1))
    ratios = sorted(c / p for p, c in zip(plain, constrained, strict=True))
    median_ratio = ratios[len(ratios) // 2]
    overhead = (1 - median_ratio) * 100
    best_overhead = (1 - max(constrained) / max(plain)) * 100
    mask_ms = statistics.median(per_call) * 1000
    step_ms = 1000 / statistics.median(plain)
    print(f"model: {path.name}   tokens per arm: {args.tokens}   rounds: {args.rounds}")
    print("unconstrained  tok/s: " + ", ".join(f"{x:.2f}" for x in plain))
    print("json-schema    tok/s: " + ", ".join(f"{x:.2f}" for x in constrained))
    print(f"overhead (median of paired rounds) {overhead:6.1f} %   (best vs best: "
          f"{best_overhead:.1f} %; target <= 15%)")
    print(f"mask cost      {mask_ms:6.2f} ms/token = {mask_ms / step_ms * 100:.1f} % of a "
          "median unconstrained step (the processor alone, inside the loop)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
