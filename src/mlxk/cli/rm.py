"""`mlxk rm`: delete a cached model, or one revision with @hash."""

from __future__ import annotations

import argparse

from mlxk.cli.options import add_dry_run_flag, add_force_flag
from mlxk.output.console import Output

NAME = "rm"
ALIASES = ("delete",)
HELP = "delete models (or one revision) from the cache"
DESCRIPTION = ("Delete cached models, or only the revision given as org/name@hash (blobs shared with\n"
               "other revisions stay). Names resolve as everywhere (short names, substrings), the same\n"
               "for --dry-run and the real run. On a terminal rm asks [y/N] once, naming every full\n"
               "repo id; a non-interactive call needs --force. Refuses while another process holds a\n"
               "model's download locks.")
EXAMPLE = ("Examples:\n  mlxk rm mlx-community/Qwen3-4B-4bit\n  mlxk rm org/name@1a2b3c --dry-run\n"
           "  mlxk rm qwen3 smollm2 -f")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", metavar="model",
                   help="org/name[@hash] (or a short name) of a cached model to delete; several allowed")
    add_force_flag(p, "delete without asking (also for partial names and while locks are held)")
    add_dry_run_flag(p, "show what would be deleted and the bytes freed")


def run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.errors import RequiresConfirmation
    from mlxk.operations.remove import remove_models

    try:
        data = remove_models(args.models, force=args.force, dry_run=args.dry_run, confirm=out.confirm)
    except RequiresConfirmation as exc:
        if not exc.extra.get("declined") or out.json_mode:
            raise
        out.text(exc.message)   # the user said no: an answer, not an error (exit 1: nothing deleted)
        return 1
    out.result(data, lambda d: d["message"])
    return 0
