"""`mlxk health`: integrity of cached models (exit 1 when any is unhealthy)."""

from __future__ import annotations

import argparse

from mlxk.output.console import Output

NAME = "health"
HELP = "check the integrity of cached models"
DESCRIPTION = ("Check config, weights, shards, safetensors headers, symlinks, partial downloads and\n"
               "tokenizer files. --verify also recomputes every blob digest (offline). Exit 1 when\n"
               "any checked model is unhealthy.")
EXAMPLE = "Examples:\n  mlxk health\n  mlxk health qwen --verify\n  mlxk health org/name@1a2b --json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default=None,
                   help="substring of org/name, or a model reference with @hash / ./path")
    p.add_argument("--verify", action="store_true", help="recompute blob digests (sha256 / git sha1)")


def run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.operations.health import health_report

    if args.verify:
        out.info("verifying blob digests...")
    data = health_report(args.pattern, verify=args.verify)
    out.result(data, render)
    return 1 if data["summary"]["unhealthy_count"] else 0


def render(data: dict) -> str:
    lines = [f"[ok]      {e['name']}" for e in data["healthy"]]
    lines += [f"[broken]  {e['name']}: {e['reason']}" for e in data["unhealthy"]]
    s = data["summary"]
    lines.append(f"{s['total']} checked: {s['healthy_count']} healthy, {s['unhealthy_count']} unhealthy")
    return "\n".join(lines)
