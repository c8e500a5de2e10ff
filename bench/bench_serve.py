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

``--scenarios`` adds the latency cases of issue 21 (default: all three):

- ``stall``: two greedy streams are running when a request with a ~``--long-tokens``
  prompt arrives. Reported: the long prompt's time to first token, the running streams'
  largest gap between two tokens while it was prefilled, and that gap / that TTFT
  (1.0 means the streams froze for the whole prefill).
- ``stop``: a chat with a long system prompt is stopped after its first token (the
  client closes the stream), then the next turn is sent; its TTFT is compared with the
  next turn of a conversation whose first reply ran to the end.
- ``restart`` (mlxk only, ``--prompt-cache-dir``): the same long request cold, then
  after a restart of the server; the warm TTFT / the cold one.
"""

from __future__ import annotations

import argparse
import itertools
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


def start_mlxk(model_dir: Path, port: int, home: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, HF_HOME=str(home), PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen([sys.executable, "-m", "mlxk", "serve", "--json", "--port", str(port),
                             "--model", str(model_dir), "--max-batch", "16", *extra], env=env,
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


class Timed(threading.Thread):
    """One streamed chat request, with the arrival time of each content piece."""

    def __init__(self, url: str, model: str, messages: list[dict], max_tokens: int,
                 stop_after_first: bool = False) -> None:
        super().__init__(daemon=True)
        self.url, self.model, self.messages, self.max_tokens = url, model, messages, max_tokens
        self.stop_after_first = stop_after_first
        self.sent = 0.0
        self.times: list[float] = []
        self.text = ""

    def run(self) -> None:
        body = {"model": self.model, "messages": self.messages, "stream": True, "temperature": 0.0,
                "max_tokens": self.max_tokens}
        self.sent = time.perf_counter()
        with httpx.Client(timeout=3600) as client, client.stream("POST", self.url, json=body) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if not line.startswith("data: {"):
                    continue
                for ch in json.loads(line[6:]).get("choices") or ():
                    piece = (ch.get("delta") or {}).get("content")
                    if piece:
                        self.times.append(time.perf_counter())
                        self.text += piece
                if self.stop_after_first and self.times:
                    return  # the Stop button: close the stream

    @property
    def ttft(self) -> float:
        return self.times[0] - self.sent if self.times else float("nan")


def long_text(n_tokens: int, seed: str) -> str:
    """About ``n_tokens`` tokens of distinct filler (SmolLM2's tokenizer: ~6 per sentence)."""
    return " ".join(f"{seed} note {i}: the {i % 7}th lamp is lit." for i in range(n_tokens // 10))


def largest_gap(times: list[float], start: float, end: float) -> float:
    inside = [start, *(t for t in times if start < t < end)]
    last = times[-1] if times else start
    inside.append(min(end, max(last, start)))
    return max(b - a for a, b in itertools.pairwise(inside))


def run_stall(base: str, model: str, long_tokens: int, tag: str) -> dict:
    url = base + "/v1/chat/completions"
    streams = [Timed(url, model, [{"role": "user", "content": f"{tag}: count from 1 to 200, comma "
                                   f"separated ({i})."}], 96) for i in range(2)]
    for t in streams:
        t.start()
    while any(len(t.times) < 3 for t in streams) and any(t.is_alive() for t in streams):
        time.sleep(0.01)
    long = Timed(url, model, [{"role": "user", "content": long_text(long_tokens, tag)
                               + " Summarise the notes."}], 1)
    long.start()
    long.join()
    for t in streams:
        t.join()
    end = long.times[0] if long.times else time.perf_counter()
    gap = max(largest_gap(t.times, long.sent, end) for t in streams)
    normal = [b - a for t in streams for a, b in itertools.pairwise(t.times)
              if b < long.sent or a > end]
    return {"long_ttft": long.ttft, "max_gap": gap, "gap_ratio": gap / long.ttft,
            "median_gap": statistics.median(normal) if normal else float("nan")}


def run_stop(base: str, model: str, long_tokens: int, tag: str) -> dict:
    url = base + "/v1/chat/completions"

    def turns(seed: str, stop: bool) -> float:
        system = {"role": "system", "content": long_text(long_tokens, seed)}
        first = [system, {"role": "user", "content": "Tell me a long story about a dragon."}]
        a = Timed(url, model, first, 64, stop_after_first=stop)
        a.run()
        time.sleep(0.5)  # the server notices the closed stream
        b = Timed(url, model, [*first, {"role": "assistant", "content": a.text},
                               {"role": "user", "content": "Make it shorter."}], 1)
        b.run()
        return b.ttft

    normal = turns(f"{tag} finished", stop=False)
    stopped = turns(f"{tag} stopped", stop=True)
    return {"next_turn_ttft": normal, "after_stop_ttft": stopped, "stop_ratio": stopped / normal}


def run_restart(model_dir: Path, home: Path, long_tokens: int) -> dict:
    """mlxk with --prompt-cache-dir: the same long request cold and after a restart."""
    ttft = []
    cache_dir = home / "prompt-cache"
    messages = [{"role": "user", "content": long_text(long_tokens, "restart") + " Summarise."}]
    for _ in range(2):
        port = free_port()
        proc, model = start_mlxk(model_dir, port, home, "--prompt-cache-dir", str(cache_dir))
        try:
            t = Timed(f"http://127.0.0.1:{port}/v1/chat/completions", model, messages, 1)
            t.run()
            ttft.append(t.ttft)
        finally:
            proc.terminate()
            proc.wait(60)
    return {"cold_ttft": ttft[0], "restart_ttft": ttft[1], "restart_ratio": ttft[1] / ttft[0]}


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
    ap.add_argument("--scenarios", default="throughput,stall,stop,restart",
                    help="comma-separated: throughput, stall, stop, restart")
    ap.add_argument("--long-tokens", type=int, default=650, help="the long prompt's size (stall, stop)")
    ap.add_argument("--mlxk-args", default="", help="extra `mlxk serve` flags, e.g. '--prefill-chunk 128'")
    args = ap.parse_args()
    if args.model_dir is None:
        from tests.support.fixtures_models import build_smollm2

        args.model_dir = build_smollm2()
    scenarios = set(args.scenarios.split(","))
    levels = [int(x) for x in args.concurrency.split(",")] if "throughput" in scenarios else []
    latency: dict[str, dict[str, dict]] = {"stall": {}, "stop": {}}
    with tempfile.TemporaryDirectory() as home:
        (Path(home) / "hub").mkdir()
        p1, p2 = free_port(), free_port()
        mlxk, mlxk_model = start_mlxk(args.model_dir, p1, Path(home), *args.mlxk_args.split())
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
            for scenario, fn in (("stall", run_stall), ("stop", run_stop)):
                if scenario in scenarios:
                    for name, (base, model) in servers.items():
                        latency[scenario][name] = fn(base, model, args.long_tokens, name)
                        print(f"  {name:7s} {scenario}: {latency[scenario][name]}", file=sys.stderr,
                              flush=True)
        finally:
            for proc in (mlxk, ref):
                proc.terminate()
                proc.wait(60)
        if "restart" in scenarios:
            latency["restart"] = {"mlxk": run_restart(args.model_dir, Path(home), args.long_tokens)}
    print(f"\nmodel: {args.model_dir.name}  max_tokens={args.max_tokens}  rounds={args.rounds}")
    print_latency(latency, args.long_tokens)
    if levels:
        print_levels(table, levels)
    if args.json:
        print(json.dumps({"throughput": table, **latency}))
    return 0


def print_latency(latency: dict[str, dict[str, dict]], long_tokens: int) -> None:
    rows = [("stall", "long_ttft", "long prompt TTFT (s)"), ("stall", "max_gap", "streams' largest gap (s)"),
            ("stall", "gap_ratio", "largest gap / long TTFT"), ("stall", "median_gap", "streams' median gap (s)"),
            ("stop", "next_turn_ttft", "next turn TTFT (s)"), ("stop", "after_stop_ttft", "after Stop TTFT (s)"),
            ("stop", "stop_ratio", "after Stop / next turn"),
            ("restart", "cold_ttft", "cold TTFT (s)"), ("restart", "restart_ttft", "after restart TTFT (s)"),
            ("restart", "restart_ratio", "after restart / cold")]
    rows = [r for r in rows if latency.get(r[0])]
    if not rows:
        return
    print(f"\nlatency, long prompt ~{long_tokens} tokens")
    print(f"{'scenario':<9}| {'measure':<26}| {'mlxk':>8} | {'mlx_lm':>8} | {'ratio':>6}")
    for scenario, key, label in rows:
        a = latency[scenario].get("mlxk", {}).get(key)
        b = latency[scenario].get("mlx_lm", {}).get(key)
        cell_b = f"{b:>8.3f}" if b is not None else f"{'-':>8}"
        ratio = f"{a / b:>6.2f}" if a is not None and b else f"{'-':>6}"
        print(f"{scenario:<9}| {label:<26}| {a:>8.3f} | {cell_b} | {ratio}")


def print_levels(table: dict[str, dict[int, dict]], levels: list[int]) -> None:
    print(f"{'c':>3} | {'mlxk agg tok/s':>14} {'mlx_lm agg tok/s':>16} {'ratio':>6} | "
          f"{'mlxk stream tok/s':>17} {'mlx_lm stream':>13} {'ratio':>6} | "
          f"{'mlxk TTFT med':>13} {'mlx_lm TTFT med':>15}")
    for c in levels:
        a, b = table["mlxk"][c], table["mlx_lm"][c]
        print(f"{c:>3} | {a['aggregate_tps']:>14.2f} {b['aggregate_tps']:>16.2f} "
              f"{a['aggregate_tps'] / b['aggregate_tps']:>6.2f} | {a['stream_tps']:>17.2f} "
              f"{b['stream_tps']:>13.2f} {a['stream_tps'] / max(b['stream_tps'], 1e-9):>6.2f} | "
              f"{a['ttft_median']:>12.3f}s {b['ttft_median']:>14.3f}s")


if __name__ == "__main__":
    raise SystemExit(main())
