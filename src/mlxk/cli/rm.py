"""`mlxk rm`: delete a cached model, or one revision with @hash."""

from __future__ import annotations

import argparse

from mlxk.cli.options import add_dry_run_flag, add_force_flag, add_model_arg
from mlxk.output.console import Output

NAME = "rm"
ALIASES = ("delete",)
HELP = "delete a model (or one revision) from the cache"
DESCRIPTION = ("Delete a cached model, or only the revision given as org/name@hash (blobs shared with\n"
               "other revisions stay). An exact org/name asks [y/N] on a terminal; a partial name or a\n"
               "non-interactive call needs --force. Refuses while another process holds the model's\n"
               "download locks.")
EXAMPLE = "Examples:\n  mlxk rm mlx-community/Qwen3-4B-4bit\n  mlxk rm org/name@1a2b3c --dry-run\n  mlxk rm qwen3 -f"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arg(p, "org/name[@hash] of the cached model to delete")
    add_force_flag(p, "delete without asking (also for partial names and while locks are held)")
    add_dry_run_flag(p, "show what would be deleted and the bytes freed")


def run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.operations.remove import remove_model

    data = remove_model(args.model, force=args.force, dry_run=args.dry_run, confirm=out.confirm)
    out.result(data, lambda d: d["message"])
    return 0
