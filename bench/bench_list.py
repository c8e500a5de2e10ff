"""How fast are `mlxk list --json` (500 and 5,000 cached models) and `mlxk --version`?

Builds synthetic but structurally real HuggingFace caches in a temporary folder
(blobs named by digest, relative symlinks, refs/main; each model has a config with a
quantization block, a tokenizer, a chat template and a real safetensors header),
then times the CLI as a subprocess, median of 5 runs (after one warm-up run).

    .venv/bin/python bench/bench_list.py [--sizes 500,5000] [--runs 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from tests.support.cache_factory import mlx_model_files  # noqa: E402

TARGETS = {"list 500": 0.35, "list 5000": 3.0, "--version": 0.12}


def _digest(name: str, data: bytes) -> str:
    if name.endswith(".safetensors"):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def build_cache(root: Path, count: int) -> None:
    """``count`` models; identical files are written once per repo, named by their digest."""
    base = {k: (v.encode() if isinstance(v, str) else v) for k, v in mlx_model_files().items()}
    digests = {k: _digest(k, v) for k, v in base.items()}
    cfg = json.loads(base["config.json"])
    for i in range(count):
        repo = root / f"models--org{i % 50}--model-{i:05d}-4bit"
        files = dict(base)
        names = dict(digests)
        files["config.json"] = json.dumps({**cfg, "_name_or_path": f"model-{i}"}).encode()
        names["config.json"] = _digest("config.json", files["config.json"])
        commit = hashlib.sha1(f"commit-{i}".encode()).hexdigest()
        (repo / "blobs").mkdir(parents=True)
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(commit)
        for name, data in files.items():
            (repo / "blobs" / names[name]).write_bytes(data)
            os.symlink(f"../../blobs/{names[name]}", snap / name)


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def time_cmd(args: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds of the process and its children)."""
    subprocess.run(args, env=env, capture_output=True, check=True)  # warm-up (page cache, pyc)
    walls, cpus = [], []
    for _ in range(runs):
        c0, t0 = _child_cpu(), time.perf_counter()
        proc = subprocess.run(args, env=env, capture_output=True)
        walls.append(time.perf_counter() - t0)
        cpus.append(_child_cpu() - c0)
        if proc.returncode != 0:
            raise SystemExit(f"{args} failed: {proc.stderr.decode()}")
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="500,5000")
    ap.add_argument("--runs", type=int, default=5)
    opts = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for k in [k for k in env if k.startswith(("HF_", "MLXK"))]:
        env.pop(k)
    mlxk = [sys.executable, "-m", "mlxk"]
    rows: list[tuple[str, tuple[float, float], float]] = []
    with tempfile.TemporaryDirectory(prefix="mlxk-bench-") as tmp:
        env["HF_HOME"] = str(Path(tmp) / "empty")
        rows.append(("--version", time_cmd([*mlxk, "--version"], env, opts.runs), TARGETS["--version"]))
        rows.append(("python -c pass", time_cmd([sys.executable, "-c", "pass"], env, opts.runs), 0.0))
        for n in (int(s) for s in opts.sizes.split(",")):
            hub = Path(tmp) / f"hub{n}"
            t0 = time.perf_counter()
            build_cache(hub, n)
            print(f"built {n} models in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
            env_n = {**env, "HF_HUB_CACHE": str(hub)}
            out = subprocess.run([*mlxk, "list", "--json"], env=env_n, capture_output=True, check=True)
            assert json.loads(out.stdout)["data"]["count"] == n
            rows.append((f"list {n}", time_cmd([*mlxk, "list", "--json"], env_n, opts.runs),
                         TARGETS.get(f"list {n}", 0.0)))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} cores, load average {load:.2f} (wall times grow with load; CPU does not)")
    print(f"{'case':<16}{'wall s':>9}{'cpu s':>9}{'target s':>10}{'wall/target':>13}  verdict")
    for name, (wall, cpu), target in rows:
        ratio = f"{wall / target:.2f}" if target else "-"
        verdict = ("ok" if wall <= target else "SLOW") if target else "(baseline)"
        tgt = f"{target:.2f}" if target else "-"
        print(f"{name:<16}{wall:>9.3f}{cpu:>9.3f}{tgt:>10}{ratio:>13}  {verdict}")


if __name__ == "__main__":
    main()
