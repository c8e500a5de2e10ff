"""`mlxk serve` vs `mlx_lm.server` on the same model, same streaming load, in one run.

    python bench/bench_serve.py [--model-dir DIR] [--max-tokens 32] [--concurrency 1,4,8]

Both servers are started here on free ports (mlxk through its supervisor, with the
model preloaded; mlx_lm.server with ``--model``), warmed up, and then driven in
turn with the same requests: at each concurrency level ``c`` there are ``c`` client
threads, each sending ``--rounds`` streaming chat requests (distinct prompts,
temperature 0, ``max_tokens`` fixed). Reported per server and level: aggregate
decode tokens/s (all completion tokens / wall time), mean single-stream decode
tokens/s ((tokens - 1) / (last token - first token)), median time to first token.
The model defaults to the SmolLM2-135M-Instruct the tests build from the PyPI GGUF.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

TOPICS = ["a dragon", "the sea", "a robot", "a small town", "the moon", "a baker", "winter",
          "a lost key", "a river", "an old library", "a violin", "a mountain", "a train",
          "a garden", "a lighthouse", "a clock"]


@dataclass
class Result:
    ttft: float
    tokens: int
    decode_tps: float | None


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready")


def start_mlxk(model_dir: Path, port: int, home: Path) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, HF_HOME=str(home), PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen([sys.executable, "-m", "mlxk", "serve", "--json", "--port", str(port),
                             "--model", str(model_dir), "--max-batch", "16"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError("mlxk serve did not start")
    model = json.loads(line)["data"]["model"]
    wait_http(f"http://127.0.0.1:{port}/health", proc)
    return proc, model


def start_mlx_lm(model_dir: Path, port: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "mlx_lm.server", "--model", str(model_dir),
                             "--port", str(port), "--log-level", "WARNING"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/v1/models", proc)
    return proc, str(model_dir)


def one_request(client: httpx.Client, url: str, model: str, prompt: str, max_tokens: int) -> Result:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True,
            "temperature": 0.0, "max_tokens": max_tokens, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first = last = None
    pieces = 0
    usage = None
    with client.stream("POST", url, json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            ev = json.loads(line[6:])
            if ev.get("usage"):
                usage = ev["usage"].get("completion_tokens")
            for ch in ev.get("choices") or ():
                if (ch.get("delta") or {}).get("content"):
                    now = time.perf_counter()
                    first = first or now
                    last = now
                    pieces += 1
    tokens = usage or pieces
    ttft = (first or time.perf_counter()) - t0
    tps = (tokens - 1) / (last - first) if first and last and last > first and tokens > 1 else None
    return Result(ttft, tokens, tps)


def run_level(base: str, model: str, c: int, rounds: int, max_tokens: int, offset: int) -> dict:
    url = base + "/v1/chat/completions"
    results: list[Result] = []
    lock = threading.Lock()

    def worker(w: int) -> None:
        with httpx.Client(timeout=1200) as client:
            for k in range(rounds):
                topic = TOPICS[(offset + w * rounds + k) % len(TOPICS)]
                res = one_request(client, url, model, f"Write a long story about {topic}.", max_tokens)
                with lock:
                    results.append(res)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(c)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    tps = [r.decode_tps for r in results if r.decode_tps]
    return {"aggregate_tps": sum(r.tokens for r in results) / wall,
            "stream_tps": statistics.mean(tps) if tps else 0.0,
            "ttft_median": statistics.median(r.ttft for r in results),
            "tokens": sum(r.tokens for r in results)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--concurrency", default="1,4,8")
    ap.add_argument("--rounds", type=int, default=2, help="requests per client thread per level")
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = ap.parse_args()
    if args.model_dir is None:
        from tests.support.fixtures_models import build_smollm2

        args.model_dir = build_smollm2()
    levels = [int(x) for x in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory() as home:
        (Path(home) / "hub").mkdir()
        p1, p2 = free_port(), free_port()
        mlxk, mlxk_model = start_mlxk(args.model_dir, p1, Path(home))
        ref, ref_model = start_mlx_lm(args.model_dir, p2)
        servers = {"mlxk": (f"http://127.0.0.1:{p1}", mlxk_model),
                   "mlx_lm": (f"http://127.0.0.1:{p2}", ref_model)}
        try:
            for base, model in servers.values():  # warm-up (compilation, first allocations)
                with httpx.Client(timeout=1200) as cl:
                    one_request(cl, base + "/v1/chat/completions", model, "Hello!", 4)
            table: dict[str, dict[int, dict]] = {name: {} for name in servers}
            for c in levels:  # alternate servers per level so load drift hits both alike
                for name, (base, model) in servers.items():
                    table[name][c] = run_level(base, model, c, args.rounds, args.max_tokens, c)
                    print(f"  {name:7s} c={c}: {table[name][c]}", file=sys.stderr, flush=True)
        finally:
            for proc in (mlxk, ref):
                proc.terminate()
                proc.wait(60)
    print(f"\nmodel: {args.model_dir.name}  max_tokens={args.max_tokens}  rounds={args.rounds}")
    print(f"{'c':>3} | {'mlxk agg tok/s':>14} {'mlx_lm agg tok/s':>16} {'ratio':>6} | "
          f"{'mlxk stream tok/s':>17} {'mlx_lm stream':>13} {'ratio':>6} | "
          f"{'mlxk TTFT med':>13} {'mlx_lm TTFT med':>15}")
    for c in levels:
        a, b = table["mlxk"][c], table["mlx_lm"][c]
        print(f"{c:>3} | {a['aggregate_tps']:>14.2f} {b['aggregate_tps']:>16.2f} "
              f"{a['aggregate_tps'] / b['aggregate_tps']:>6.2f} | {a['stream_tps']:>17.2f} "
              f"{b['stream_tps']:>13.2f} {a['stream_tps'] / max(b['stream_tps'], 1e-9):>6.2f} | "
              f"{a['ttft_median']:>12.3f}s {b['ttft_median']:>14.3f}s")
    if args.json:
        print(json.dumps(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
