"""`mlxk pull`: download a model (or one revision of it) from the Hub into the cache."""

from __future__ import annotations

import argparse

from mlxk.cli.options import add_dry_run_flag
from mlxk.output.console import Output
from mlxk.output.human import size_str, table

NAME = "pull"
HELP = "download a model from the HuggingFace Hub into the cache"
DESCRIPTION = (
    "Download a model into the HuggingFace cache. The Hub is asked first, so a gated,\n"
    "private or missing model leaves no trace in the cache. An interrupted download\n"
    "resumes; a healthy cached revision is not downloaded again.\n"
    "Honours HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE."
)
EXAMPLE = ("Examples:\n  mlxk pull mlx-community/Qwen3-0.6B-4bit\n"
           "  mlxk pull Qwen3-0.6B-4bit            (short name: mlx-community/ on the Hub)\n"
           "  mlxk pull org/model@1a2b3c4           (one revision)\n"
           "  mlxk pull Qwen3-0.6B-4bit --dry-run  (files, bytes to download, fits on disk?)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="org/name[@revision], or a short name looked up as mlx-community/<name>")
    add_dry_run_flag(p, "after the Hub preflight, list the files, what is cached, the bytes to "
                        "download and whether they fit; write nothing")


def _human(d: dict) -> str:
    if d["download_status"] != "dry_run":
        return d["message"]
    rows = [[f["path"], size_str(f["size_bytes"]), "cached" if f["cached"] else "to download"] for f in d["files"]]
    return table(["File", "Size", "State"], rows) + "\n" + d["message"]


def run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.operations.pull import pull

    data = pull(args.model, progress=not out.json_mode, info=out.info, dry_run=args.dry_run)
    out.result(data, _human)
    return 0
