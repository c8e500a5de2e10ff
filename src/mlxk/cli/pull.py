"""`mlxk pull`: download a model (or one revision of it) from the Hub into the cache."""

from __future__ import annotations

import argparse

from mlxk.output.console import Output

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
           "  mlxk pull org/model@1a2b3c4           (one revision)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="org/name[@revision], or a short name looked up as mlx-community/<name>")


def _human(d: dict) -> str:
    return d["message"]


def run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.operations.pull import pull

    data = pull(args.model, progress=not out.json_mode, info=out.info)
    out.result(data, _human)
    return 0
