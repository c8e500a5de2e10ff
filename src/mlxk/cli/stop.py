"""`mlxk stop`: unload a model from a running `mlxk serve`."""

from __future__ import annotations

import argparse

from mlxk.cli.options import add_force_flag, add_server_flags
from mlxk.output.console import Output

NAME = "stop"
HELP = "unload a model (or --all) from a running server"
DESCRIPTION = ("Unload a model from a running `mlxk serve`. Requests it is answering finish first\n"
               "(new ones for it get HTTP 503 meanwhile); --force cancels them instead (they end\n"
               "with an error). The next request for the model loads it again.")
EXAMPLE = "Examples:\n  mlxk stop Qwen3-0.6B-4bit\n  mlxk stop --all --force"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default=None, help="the loaded model's name (as `mlxk ps` shows it)")
    p.add_argument("--all", action="store_true", help="unload every loaded model")
    add_force_flag(p, "cancel the requests in flight instead of waiting")
    add_server_flags(p)


def run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.operations.lifecycle import stop_models

    data = stop_models(args.model, args.all, args.force, args.server, args.api_key)
    out.result(data, lambda d: "\n".join(f"stopped {n}" for n in d["stopped"]) or "nothing was loaded")
    return 0
