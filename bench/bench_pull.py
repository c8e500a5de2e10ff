"""Pull throughput: `mlxk pull` vs plain `huggingface_hub.snapshot_download`, same repo, same run.

A local fake Hub (tests/support/hub_server.py) serves one repo with ~200 MB of LFS
safetensors shards. Each tool downloads it into a fresh cache as a subprocess (what a user
runs); runs alternate between the two tools and the median wall time of each is compared.

    .venv/bin/python bench/bench_pull.py [--size-mb 200] [--repeats 5]

Target: mlxk / snapshot_download throughput ratio >= 0.9.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.hub_repos import model_files, safetensors_bytes  # noqa: E402
from tests.support.hub_server import FakeHub  # noqa: E402

REPO = "bench/pull-model"
SNAPSHOT = ("import sys; from huggingface_hub import snapshot_download; "
            "snapshot_download(sys.argv[1], endpoint=sys.argv[2])")


def _env(hf_home: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "MLXK"))}
    env.update(HF_HOME=str(hf_home), HF_ENDPOINT=url, HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
               PYTHONPATH=str(ROOT / "src"))
    return env


def _run(tool: str, url: str, work: Path) -> float:
    hf_home = Path(tempfile.mkdtemp(prefix=f"{tool}-", dir=work))
    if tool == "mlxk":
        argv = [sys.executable, "-m", "mlxk", "pull", REPO, "--json"]
    else:
        argv = [sys.executable, "-c", SNAPSHOT, REPO, url]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=_env(hf_home, url), capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{tool} failed:\n{proc.stdout}\n{proc.stderr}")
    shutil.rmtree(hf_home, ignore_errors=True)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=200, help="total size of the LFS shards")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    total = args.size_mb * 1024 * 1024
    shards = 4
    files = model_files(big_bytes=4096, shards=1)
    del files["model-00001-of-00001.safetensors"]
    weight_map = {}
    for i in range(1, shards + 1):
        name = f"model-{i:05d}-of-{shards:05d}.safetensors"
        files[name] = safetensors_bytes({f"w{i}": total // shards}, seed=i)
        weight_map[f"w{i}"] = name
    files["model.safetensors.index.json"] = json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}).encode()
    nbytes = sum(len(v) for v in files.values())

    hub = FakeHub().start()
    hub.add_repo(REPO, files)
    times: dict[str, list[float]] = {"mlxk": [], "snapshot_download": []}
    with tempfile.TemporaryDirectory(prefix="bench-pull-") as tmp:
        work = Path(tmp)
        _run("snapshot_download", hub.url, work)  # warm-up: page cache, imports
        for i in range(args.repeats):
            order = ("mlxk", "snapshot_download") if i % 2 == 0 else ("snapshot_download", "mlxk")
            for tool in order:
                times[tool].append(_run(tool, hub.url, work))
    hub.stop()

    print(f"repo: {len(files)} files, {nbytes / 1e6:.1f} MB ({shards} LFS shards), "
          f"{args.repeats} runs each, median wall time of a subprocess")
    rates = {}
    for tool, ts in times.items():
        med = statistics.median(ts)
        rates[tool] = nbytes / med
        print(f"  {tool:18s} {med:6.2f} s  {rates[tool] / 1e6:7.1f} MB/s   "
              f"(runs: {', '.join(f'{t:.2f}' for t in ts)})")
    ratio = rates["mlxk"] / rates["snapshot_download"]
    print(f"  ratio mlxk/snapshot_download: {ratio:.3f}  (target >= 0.9: "
          f"{'PASS' if ratio >= 0.9 else 'FAIL'})")


if __name__ == "__main__":
    main()
