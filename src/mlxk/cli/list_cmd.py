"""`mlxk list`: the models in the cache."""

from __future__ import annotations

import argparse

from mlxk.output.console import Output
from mlxk.output.human import age_str, size_str, table

NAME = "list"
ALIASES = ("ls",)
HELP = "list models in the HuggingFace cache"
DESCRIPTION = ("List cached models. Human output shows the runnable models; --all shows every\n"
               "repo with its framework and health. --json always lists every repo.")
EXAMPLE = "Examples:\n  mlxk list\n  mlxk list qwen --all\n  mlxk list --sort size\n  mlxk list --json | jq '.data.count'"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default=None, help="case-insensitive substring of org/name")
    p.add_argument("--all", action="store_true", help="show every repo, not only runnable models")
    p.add_argument("--health", action="store_true", help="add the health column")
    p.add_argument("--sort", choices=("name", "size", "modified"), default="name",
                   help="order: name (A-Z, default), size (largest first), modified (newest first)")


def run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.operations.models import list_models

    data = list_models(args.pattern, sort=args.sort)
    out.result(data, lambda d: render(d, show_all=args.all, health=args.health))
    return 0


def render(data: dict, show_all: bool = False, health: bool = False) -> str:
    models = data["models"]
    if not show_all:
        models = [m for m in models if m["health"] == "healthy" and m["runtime_compatible"]]
    headers = ["Name", "Hash", "Size", "Modified", "Type"]
    if show_all:
        headers += ["Framework", "Health", "Reason"]
    elif health:
        headers += ["Health"]
    rows = []
    for m in models:
        row = [m["name"], (m["hash"] or "-")[:8], size_str(m["size_bytes"]),
               age_str(m["last_modified"]), m["model_type"]]
        if show_all:
            row += [m["framework"], m["health"], m["reason"] or ""]
        elif health:
            row += [m["health"]]
        rows.append(row)
    text = table(headers, rows)
    hidden = data["count"] - len(models)
    if hidden and not show_all:
        text += f"\n({hidden} more not runnable; use --all to see them)"
    return text
