"""One prompt through every dialect of one `mlxk serve`, next to Chat Completions, in one run.

    python bench/bench_dialects.py [--model-dir DIR] [--max-tokens 48] [--rounds 5]

One server (model preloaded) gets the same greedy streaming request as Chat Completions
(``/v1/chat/completions``), Anthropic Messages (``/v1/messages``), OpenAI Responses
(``/v1/responses``) and Ollama (``/api/chat``), round after round with the order rotated so
load drift hits every dialect alike. Per dialect: median single-stream decode tokens/s
((tokens - 1) / (last text piece - first text piece)) and median time to first text piece,
with the ratio and the difference to Chat Completions (target: within 2% and +5 ms). The
model defaults to the SmolLM2-135M-Instruct the tests build from the PyPI GGUF.

A second table measures, in-process and without a model, what each dialect adds per token:
the CPU time to render one text delta as its wire bytes (Chat Completions: one chunk), which
is what differs between the dialects once the tokens are decoded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_serve import free_port, start_mlxk

PROMPT = "Write a long story about a lighthouse."
Sample = tuple[float, float | None, int]      # ttft, decode tok/s, completion tokens


def _sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.startswith("data: ") and line != "data: [DONE]":
            yield json.loads(line[6:])


def chat(model: str, n: int) -> tuple[str, dict, Callable[[dict], str], Callable[[dict], int | None]]:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": True,
            "temperature": 0, "max_tokens": n, "stream_options": {"include_usage": True}}
    return ("/v1/chat/completions", body,
            lambda e: "".join((c.get("delta") or {}).get("content") or "" for c in e.get("choices") or ()),
            lambda e: (e.get("usage") or {}).get("completion_tokens"))


def anthropic(model: str, n: int) -> tuple[str, dict, Callable[[dict], str], Callable[[dict], int | None]]:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": True,
            "temperature": 0, "max_tokens": n}
    return ("/v1/messages", body,
            lambda e: (e.get("delta") or {}).get("text") or "" if e["type"] == "content_block_delta" else "",
            lambda e: e["usage"]["output_tokens"] if e["type"] == "message_delta" else None)


def responses(model: str, n: int) -> tuple[str, dict, Callable[[dict], str], Callable[[dict], int | None]]:
    body = {"model": model, "input": PROMPT, "stream": True, "temperature": 0,
            "max_output_tokens": n, "store": False}
    return ("/v1/responses", body,
            lambda e: e.get("delta") or "" if e["type"] == "response.output_text.delta" else "",
            lambda e: (e["response"].get("usage") or {}).get("output_tokens")
            if e["type"] in ("response.completed", "response.incomplete") else None)


def ollama(model: str, n: int) -> tuple[str, dict, Callable[[dict], str], Callable[[dict], int | None]]:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": True,
            "options": {"temperature": 0, "num_predict": n}}
    return ("/api/chat", body, lambda e: (e.get("message") or {}).get("content") or "",
            lambda e: e.get("eval_count") if e.get("done") else None)


DIALECTS = {"chat": chat, "anthropic": anthropic, "responses": responses, "ollama": ollama}


def one(client: httpx.Client, base: str, name: str, model: str, n: int) -> tuple[Sample, str]:
    path, body, text_of, tokens_of = DIALECTS[name](model, n)
    t0 = time.perf_counter()
    first = last = None
    tokens = None
    text: list[str] = []
    with client.stream("POST", base + path, json=body) as r:
        r.raise_for_status()
        lines = r.iter_lines()
        events = (json.loads(x) for x in lines if x) if name == "ollama" else _sse(lines)
        for e in events:
            piece = text_of(e)
            if piece:
                last = time.perf_counter()
                first = first or last
                text.append(piece)
            tokens = tokens_of(e) or tokens
    ttft = (first or time.perf_counter()) - t0
    n_tok = tokens or 0
    tps = (n_tok - 1) / (last - first) if first and last and last > first and n_tok > 1 else None
    return (ttft, tps, n_tok), "".join(text)


def render_cost(n: int = 20000) -> dict[str, float]:
    """Microseconds of CPU per streamed text delta, per dialect (no model, no network)."""
    from types import SimpleNamespace

    from mlxk.server import core
    from mlxk.server.dialects import anthropic as ant
    from mlxk.server.dialects import ollama as oll
    from mlxk.server.dialects import openai_chat
    from mlxk.server.dialects import openai_responses as rsp

    run = SimpleNamespace(model="org/model", sequences=1, tokenizer=None, prompt_tokens=20)
    writer_c = openai_chat.StreamWriter(run, include_usage=False)  # type: ignore[arg-type]
    writer_a = ant.StreamWriter("msg_1", "org/model", 20)
    writer_a.feed([core.TextDelta("x")])
    req = rsp.ResponsesRequest.model_validate({"model": "m", "input": "x"})
    writer_r = rsp.StreamWriter(rsp.Builder(req, "org/model", frozenset(), len), lambda _: None)
    writer_r.feed([core.TextDelta("x")])
    writer_o = oll.StreamWriter("org/model", chat=True)
    delta = [core.TextDelta(" word")]
    renders: dict[str, Callable[[], bytes]] = {
        "chat": lambda: writer_c.feed(delta),
        "anthropic": lambda: writer_a.feed(delta),
        "responses": lambda: writer_r.feed(delta),
        "ollama": lambda: writer_o.feed(delta),
    }
    out = {}
    for name, fn in renders.items():
        t0 = time.process_time()
        for _ in range(n):
            fn()
        out[name] = (time.process_time() - t0) / n * 1e6
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if args.model_dir is None:
        from tests.support.fixtures_models import build_smollm2

        args.model_dir = build_smollm2()
    names = list(DIALECTS)
    samples: dict[str, list[Sample]] = {n: [] for n in names}
    texts: dict[str, set[str]] = {n: set() for n in names}
    with tempfile.TemporaryDirectory() as home:
        (Path(home) / "hub").mkdir()
        port = free_port()
        proc, model = start_mlxk(args.model_dir, port, Path(home))
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(timeout=1200) as client:
                for name in names:  # warm-up: compilation, the prompt's prefix cache entry
                    one(client, base, name, model, 4)
                for r in range(args.rounds):
                    for name in names[r % len(names):] + names[:r % len(names)]:
                        sample, text = one(client, base, name, model, args.max_tokens)
                        samples[name].append(sample)
                        texts[name].add(text)
        finally:
            proc.terminate()
            proc.wait(60)
    ref_tps = statistics.median(s[1] for s in samples["chat"] if s[1])
    ref_ttft = statistics.median(s[0] for s in samples["chat"])
    print(f"\nmodel: {args.model_dir.name}  max_tokens={args.max_tokens}  rounds={args.rounds}")
    print(f"{'dialect':10s} | {'tok/s':>7} {'ratio':>6} | {'TTFT ms':>8} {'diff ms':>8} | "
          f"{'tokens':>6} | same text as chat")
    for name in names:
        tps = statistics.median(s[1] for s in samples[name] if s[1])
        ttft = statistics.median(s[0] for s in samples[name])
        tokens = statistics.median(s[2] for s in samples[name])
        same = texts[name] == texts["chat"]
        print(f"{name:10s} | {tps:>7.2f} {tps / ref_tps:>6.3f} | {ttft * 1000:>8.1f} "
              f"{(ttft - ref_ttft) * 1000:>+8.1f} | {tokens:>6.0f} | {'yes' if same else 'NO'}")
    cost = render_cost()
    print(f"\n{'dialect':10s} | {'render us/token':>15} | {'vs chat us':>10}")
    for name in names:
        print(f"{name:10s} | {cost[name]:>15.1f} | {cost[name] - cost['chat']:>+10.1f}")
    return 0 if all(texts[n] == texts["chat"] for n in names) else 1


if __name__ == "__main__":
    raise SystemExit(main())
