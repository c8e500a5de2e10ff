#!/usr/bin/env python3
"""Run every ``bench/bench_*.py`` in turn (what `make bench` calls) and summarise the exit codes.

Each script prints its own side-by-side figures and ratios; this runner only sequences them
(one at a time: benchmarks that share a CPU measure each other). ``--only list,run`` picks some.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def scripts(only: list[str] | None = None) -> list[Path]:
    found = sorted(BENCH.glob("bench_*.py"))
    if only:
        found = [p for p in found if p.stem.removeprefix("bench_") in only]
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated names, e.g. list,run,serve")
    args = ap.parse_args(argv)
    only = [n.strip() for n in args.only.split(",") if n.strip()] or None
    results = []
    for script in scripts(only):
        print(f"\n=== {script.name} ===", flush=True)
        start = time.monotonic()
        code = subprocess.call([sys.executable, str(script)], cwd=BENCH.parent)
        results.append((script.name, code, time.monotonic() - start))
    print("\n=== summary ===")
    for name, code, seconds in results:
        print(f"{name:28s} {'ok' if code == 0 else f'exit {code}':8s} {seconds:7.1f} s")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
