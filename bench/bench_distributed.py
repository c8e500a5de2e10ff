"""Distributed overhead: two ranks on loopback versus one process, same model, same prompt.

On one 2-core machine two ranks cannot be faster than one (they share the cores);
what this measures is what sharding costs and saves:

* per-token decode time, one process vs two ranks (tensor and pipeline); the
  difference is the per-token cost of the collectives and of the lockstep,
* the latency of a single ``all_sum`` of one token's hidden state on the ring
  backend (tensor parallelism does two per layer per token),
* weights memory per rank vs the single process (MLX active memory after load).

Usage: .venv/bin/python bench/bench_distributed.py [--tokens 48] [--hidden 512] [--layers 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

PROMPT = "Explain in one paragraph why the sky is blue."


def build(out: Path, hidden: int, layers: int) -> Path:
    from tests.support.dist_models import build_tiny_model

    if not (out / "model.safetensors").exists():
        build_tiny_model(out, "qwen2", heads=8, kv_heads=4, layers=layers, hidden=hidden,
                         intermediate=hidden * 3)
    return out


def _request(tokens: int):
    from mlxk.engine.types import GenerationRequest, SamplingParams

    return GenerationRequest(messages=[{"role": "user", "content": PROMPT}],
                             sampling=SamplingParams(temperature=0.0, seed=0), max_tokens=tokens)


def _decode_ms(chunks_at: list[float], n_tokens: int) -> float:
    """ms per token after the first one (decode only, prefill excluded)."""
    if n_tokens < 2:
        return float("nan")
    return (chunks_at[-1] - chunks_at[0]) * 1000 / (n_tokens - 1)


class Single:
    def __init__(self, path: Path) -> None:
        import mlx.core as mx
        from mlx_lm.utils import load_model

        from mlxk.engine import loader

        model, config = load_model(path)
        mx.eval(model.parameters())
        self.lm = loader.load_model(path, "bench", model=model, config=config)
        self.memory = [mx.get_active_memory()]

    def stream(self, request):
        from mlxk.engine.generate import stream

        return stream(self.lm, request)

    def close(self) -> None:
        pass


class Sharded:
    def __init__(self, path: Path, mode: str) -> None:
        from mlxk.engine.distributed.launch import parse_hosts, preflight
        from mlxk.engine.distributed.session import DistributedSession
        from mlxk.operations.distributed import RANK_ENTRY

        hs = parse_hosts("127.0.0.1,127.0.0.1", None, None)
        preflight(hs)
        spec = {"command": "run", "model": str(path), "name": "bench", "mode": mode, "backend": "ring",
                "seed": 0}
        self.session = DistributedSession(hs, spec, RANK_ENTRY)
        try:
            ready = self.session.wait_ready()
        except BaseException:
            self.session.group.shutdown(2.0)
            raise
        self.memory = [k * 1024 for k in ready["memory_kib"]]

    def stream(self, request):
        return self.session.stream(request)

    def close(self) -> None:
        self.session.close()


def timed(engine: Single | Sharded, tokens: int) -> tuple[float, int]:
    stamps, n = [], 0
    for chunk in engine.stream(_request(tokens)):
        stamps.append(time.perf_counter())
        if chunk.finish_reason:
            n = chunk.completion_tokens
    return _decode_ms(stamps, n), n


ALLSUM_SCRIPT = r"""
import json, sys, time
import mlx.core as mx
g = mx.distributed.init(backend="ring", strict=True)
x = mx.ones((1, int(sys.argv[1])), dtype=mx.float32)
for _ in range(20):
    mx.eval(mx.distributed.all_sum(x))
best = float("inf")
for _ in range(5):
    t = time.perf_counter()
    for _ in range(200):
        mx.eval(mx.distributed.all_sum(x))
    best = min(best, (time.perf_counter() - t) / 200)
if g.rank() == 0:
    print(json.dumps({"us": best * 1e6}), flush=True)
"""


def allsum_latency_us(hidden: int) -> float:
    from mlxk.engine.distributed.launch import _free_port_run

    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(ALLSUM_SCRIPT)
    port = _free_port_run(2)
    launch = "import sys; from mlx._distributed_utils.launch import main; sys.argv[0] = 'mlx.launch'; main()"
    out = subprocess.run([sys.executable, "-c", launch, "--hosts",
                          "127.0.0.1,127.0.0.1", "--starting-port", str(port), sys.executable, f.name,
                          str(hidden)], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    Path(f.name).unlink()
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            return float(json.loads(line)["us"])
    raise RuntimeError(out.stderr)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    path = build(ROOT / ".cache" / "bench-distributed" / f"qwen2-h{a.hidden}-l{a.layers}", a.hidden, a.layers)
    weights = (path / "model.safetensors").stat().st_size
    print(f"model: tiny qwen2, hidden {a.hidden}, {a.layers} layers, {weights / 2**20:.1f} MiB fp32 weights; "
          f"{a.tokens} tokens, temperature 0; {a.rounds} interleaved rounds (min and median)")
    setups = {"1 process": Single(path), "2 ranks tensor": Sharded(path, "tensor"),
              "2 ranks pipeline": Sharded(path, "pipeline")}
    times: dict[str, list[float]] = {k: [] for k in setups}
    counts: dict[str, int] = {}
    try:
        for _ in range(a.rounds):
            for name, eng in setups.items():
                ms, n = timed(eng, a.tokens)
                times[name].append(ms)
                counts[name] = n
    finally:
        for eng in setups.values():
            eng.close()
    base_min = min(times["1 process"])
    base_mem = setups["1 process"].memory[0]
    print(f"{'setup':<18}{'tokens':>7}{'min ms/tok':>12}{'median':>9}{'overhead (min)':>16}   memory per rank")
    for name, ts in times.items():
        mem_txt = ", ".join(f"{m / 2**20:.1f} MiB ({m / base_mem:.2f}x)" for m in setups[name].memory)
        print(f"{name:<18}{counts[name]:>7}{min(ts):>12.2f}{statistics.median(ts):>9.2f}"
              f"{min(ts) - base_min:>+13.2f} ms   {mem_txt}")
    us = allsum_latency_us(a.hidden)
    print(f"ring all_sum of one token's hidden state ({a.hidden} floats, synchronous, min of 5x200): {us:.0f} us; "
          f"tensor parallelism does {2 * a.layers} per token (pipelined with compute in generation)")


if __name__ == "__main__":
    main()
