"""`mlxk search`: find models on the Hugging Face Hub (MLX ones by default)."""

from __future__ import annotations

import argparse

from mlxk.output.console import Output
from mlxk.output.human import age_str, table

NAME = "search"
HELP = "search the Hugging Face Hub for models (MLX models by default)"
DESCRIPTION = ("Models on the Hub whose id contains QUERY, most downloaded first: id, downloads,\n"
               "likes, last modified, and whether each is already in the cache. Only MLX models\n"
               "(the Hub's mlx library/tag filter) unless --all. Honors HF_ENDPOINT, HF_TOKEN;\n"
               "with HF_HUB_OFFLINE set it fails with an error.")
EXAMPLE = ("Examples:\n  mlxk search qwen3\n  mlxk search llama --sort likes --limit 5\n"
           "  mlxk search smollm2 --all --json | jq -r '.data.models[].name'")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", help="text the model id must contain (case-insensitive)")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="at most N models (default 20)")
    p.add_argument("--sort", choices=("downloads", "likes", "modified"), default="downloads",
                   help="order, highest / newest first (default downloads)")
    p.add_argument("--all", action="store_true", help="every model, not only MLX ones")


def render(data: dict) -> str:
    if not data["models"]:
        where = "MLX models" if data["filter"] else "models"
        return f"No {where} on the Hub match '{data['query']}'."
    headers = ["Name", "Downloads", "Likes", "Modified", "Cached"]
    rows = [[m["name"], f"{m['downloads']:,}", f"{m['likes']:,}", age_str(m["last_modified"]),
             "yes" if m["cached"] else ""] for m in data["models"]]
    if data["filter"] is None:  # --all: say which ones are MLX models
        headers.insert(1, "MLX")
        for row, m in zip(rows, data["models"], strict=True):
            row.insert(1, "yes" if m["mlx"] else "")
    return table(headers, rows)


def run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.operations.search import search

    data = search(args.query, limit=args.limit, sort=args.sort, include_all=args.all,
                  quiet=out.json_mode)
    out.result(data, render)
    return 0
