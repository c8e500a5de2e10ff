"""`mlxk prune`: reclaim the space cache garbage holds."""

from __future__ import annotations

import argparse

from mlxk.cli.options import add_dry_run_flag, add_force_flag
from mlxk.output.console import Output
from mlxk.output.human import size_str, table

NAME = "prune"
HELP = "remove detached revisions, orphan blobs, partial downloads and stale locks"
DESCRIPTION = ("Remove cache garbage: snapshots no ref points to (a repo without any ref keeps its\n"
               "newest), blobs no snapshot links to, abandoned .incomplete downloads, dangling refs\n"
               "and lock files nobody holds. A repo another process holds a lock on (a download in\n"
               "progress) is skipped whole. Asks [y/N] on a terminal; otherwise needs --force.")
EXAMPLE = "Examples:\n  mlxk prune --dry-run\n  mlxk prune -f --json | jq '.data.freed_bytes'"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_force_flag(p, "prune without asking")
    add_dry_run_flag(p, "list the garbage and the bytes it holds, delete nothing")


def run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.operations.prune import prune_cache

    data = prune_cache(force=args.force, dry_run=args.dry_run, confirm=out.confirm)
    out.result(data, render)
    return 0


def render(data: dict) -> str:
    rows = [[i["kind"], i["model"], i["path"], size_str(i["size_bytes"])] for i in data["items"]]
    parts = [table(["Kind", "Model", "Path", "Size"], rows)] if rows else []
    parts += [f"skipped {s['model']}: {s['reason']}" for s in data["skipped"]]
    return "\n".join([*parts, data["message"]])
