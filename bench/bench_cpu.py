"""mlxk's CPU quantized-matmul kernel versus MLX's own CPU path, in one run.

    .venv/bin/python bench/bench_cpu.py [--model DIR] [--tokens 64] [--rounds 3] [--no-e2e]

DIR defaults to SmolLM2-135M-Instruct converted from the PyPI GGUF by our convert code (4-bit
group-32 layers, 8-bit tied embedding head), built under ``.cache/test-models/`` like the tests.

1. Per call: every distinct quantized layer shape of the model (and the 8-bit tied head) at
   1, 4, 16 and 128 rows, ``mx.quantized_matmul`` versus the kernel; CPU time per call
   (process time, robust on a busy machine), and the ratio.
2. End to end, one loaded model, three arms alternating round by round (a shared machine
   drifts; each round rotates the order), same long prompt, greedy, ``--tokens`` new tokens:
   - ``mlxk+kernel``: the `mlxk run` engine path (``generate.prepare`` + ``generate.stream``)
     with the model's quantized layers on the kernel (the default on Linux CPU);
   - ``mlxk pure``:   the same path on MLX's own layers (``MLXK_CPU_KERNELS=off``);
   - ``raw mlx-lm``:  ``mlx_lm.stream_generate`` on MLX's own layers.
   Prefill tok/s = prompt tokens / time to first token; decode tok/s = tokens after the first
   over the time after the first. CPU: process CPU time of the prompt alone (a request for one
   token) and per decoded token (the rest of a full request), robust when other jobs share the
   machine. Medians, and the ratios to raw mlx-lm (targets >= 3).

llama.cpp is not compared here: ``llama-cpp-python`` builds from source for minutes on this
machine (docs/cpu-kernels.md quotes the issue's measurement of it instead).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PROMPT = ("You are a careful storyteller. Write a long, detailed story about an old lighthouse "
          "keeper on a rocky island who finds a message in a bottle, the storm that follows, the "
          "ship he guides to safety, and what the message turns out to say. Describe the island, "
          "the sea, the light itself and the keeper's daily routine before the storm begins, and "
          "give the people on the ship names and voices of their own.")


def default_model() -> Path:
    from tests.support.fixtures_models import build_smollm2

    return build_smollm2()


def cpu_ms(fn, reps: int) -> float:
    """Median process CPU time of ``fn`` in ms (after one warm-up)."""
    fn()
    out = []
    for _ in range(reps):
        c = time.process_time()
        fn()
        out.append(time.process_time() - c)
    return statistics.median(out) * 1000


def per_call(model, qmm) -> None:
    import mlx.core as mx

    from mlxk.engine.cpu_kernels import runtime

    shapes: dict[tuple[int, int, int, int], tuple[str, object]] = {}
    for name, mod in model.named_modules():
        if runtime.covered(mod):
            n, k = mod["weight"].shape[0], mod["weight"].shape[1] * 32 // mod.bits
            shapes.setdefault((n, k, mod.bits, mod.group_size), (name.split(".")[-1], mod))
    print("per call, CPU ms (median): rows | layer N x K bits/group | mx.quantized_matmul | "
          "kernel | ratio")
    for (n, k, bits, group), (name, mod) in sorted(shapes.items(), key=lambda kv: -kv[0][0] * kv[0][1]):
        w, s, b = mod["weight"], mod["scales"], mod["biases"]
        for rows in (1, 4, 16, 128):
            x = mx.random.normal((1, rows, k)).astype(s.dtype)
            mx.eval(x)
            reps = 3 if n * rows > 1_000_000 else 10

            args = (x, w, s, b)

            def theirs(a=args, g=group, q=bits):
                mx.eval(mx.quantized_matmul(*a, transpose=True, group_size=g, bits=q))

            def ours(a=args, g=group, q=bits):
                mx.eval(qmm(*a, g, q))

            a, c = cpu_ms(theirs, reps), cpu_ms(ours, reps)
            print(f"  {rows:4d} | {name:12s} {n:6d} x {k:5d} {bits}/{group:<3d} | {a:9.2f} | "
                  f"{c:7.2f} | {a / c:6.1f}x", flush=True)


def end_to_end(lm, tokens: int, rounds: int) -> None:
    import bench_run  # the same timed arms as bench_run.py, with this script's longer prompt
    from mlxk.engine.cpu_kernels import runtime

    bench_run.PROMPT = PROMPT
    n_prompt = len(lm.tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}],
                                                    add_generation_prompt=True))

    def kernel_on(on: bool) -> None:
        if on:
            runtime.patch_model(lm.model)
        else:
            runtime.unpatch_model(lm.model)

    arms = [("mlxk+kernel", True, bench_run.run_engine), ("mlxk pure", False, bench_run.run_engine),
            ("raw mlx-lm", False, bench_run.run_raw)]
    results: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name, _, _ in arms}
    print(f"\nend to end: prompt {n_prompt} tokens, {tokens} new tokens, greedy, {rounds} rounds "
          f"(+ warm-up), arms rotate each round; load average {os.getloadavg()[0]:.1f}")
    for _name, on, fn in arms:   # warm-up
        kernel_on(on)
        fn(lm, 4)
    for i in range(rounds):
        order = arms[i % 3:] + arms[:i % 3]
        for name, on, fn in order:
            kernel_on(on)
            cpu = time.process_time()
            fn(lm, 1)                              # the prompt alone: its CPU time
            cpu_prefill = time.process_time() - cpu
            cpu = time.process_time()
            ttft, decode, n = fn(lm, tokens)
            cpu_token = (time.process_time() - cpu - cpu_prefill) / max(1, n - 1)
            prefill = n_prompt / ttft
            results[name].append((prefill, decode, cpu_prefill, cpu_token))
            print(f"  round {i + 1} {name:12s}: prefill {prefill:7.1f} tok/s  decode "
                  f"{decode:6.2f} tok/s  ({n} tokens) | CPU: prompt {cpu_prefill:5.2f} s, "
                  f"{cpu_token * 1000:6.1f} ms/token | load {os.getloadavg()[0]:.1f}", flush=True)

    def med(name: str, i: int) -> float:
        return statistics.median(r[i] for r in results[name])

    raw = [med("raw mlx-lm", i) for i in range(4)]
    print(f"\nmedians of {rounds} rounds | wall: prefill tok/s, decode tok/s | CPU: prompt s, "
          "decode ms/token | ratios to raw mlx-lm (wall prefill, wall decode, CPU prompt, "
          "CPU decode)")
    for name, _, _ in arms:
        v = [med(name, i) for i in range(4)]
        print(f"  {name:12s} | {v[0]:6.1f} {v[1]:6.2f} | {v[2]:6.2f} {v[3] * 1000:6.1f} | "
              f"{v[0] / raw[0]:5.2f}x {v[1] / raw[1]:5.2f}x {raw[2] / v[2]:5.2f}x "
              f"{raw[3] / v[3]:5.2f}x")
    print("targets: mlxk+kernel >= 3x raw mlx-lm in both prefill and decode")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-e2e", action="store_true", help="only the per-call comparison")
    args = ap.parse_args()

    import mlx.core as mx

    from mlxk.engine import cpu_kernels
    from mlxk.engine.cpu_kernels import runtime
    from mlxk.engine.loader import load_model

    model_dir = args.model or default_model()
    lm = load_model(model_dir, model_dir.name)
    verdict = cpu_kernels.status()
    print(f"model {model_dir.name} on {mx.default_device()}; CPU kernels: {verdict.state} "
          f"({verdict.reason}); load average {os.getloadavg()[0]:.1f}")
    if verdict.state != "active":
        print("the kernel is not active here: nothing to compare")
        return 1
    per_call(lm.model, runtime.extension().quantized_matmul)
    if not args.no_e2e:
        end_to_end(lm, args.tokens, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
