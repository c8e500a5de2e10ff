"""`mlxk load`: preload a model on a running `mlxk serve`."""

from __future__ import annotations

import argparse

from mlxk.cli.options import add_keep_alive_flag, add_model_arg, add_server_flags
from mlxk.output.console import Output

NAME = "load"
HELP = "load a model on a running server now (preload)"
DESCRIPTION = ("Load a cached model on a running `mlxk serve` before the first request. With\n"
               "--keep-alive the model gets its own idle timeout instead of the server's.")
EXAMPLE = "Examples:\n  mlxk load Qwen3-0.6B-4bit\n  mlxk load Qwen3-0.6B-4bit --keep-alive 1h\n  mlxk load qwen --keep-alive -1"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arg(p, "org/name[@hash] of a cached model")
    add_keep_alive_flag(p, None, "how long it stays loaded when idle: seconds or 30s/5m/1h; "
                                 "0 = unload when idle, -1 = never (default: the server's --keep-alive)")
    add_server_flags(p)


def run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.operations.lifecycle import load_model

    data = load_model(args.model, args.keep_alive, args.server, args.api_key)
    out.result(data, _human)
    return 0


def _human(d: dict) -> str:
    from mlxk.cli.ps import until

    m = d["model"]
    return f"loaded {m['name']} on {d['server']} (unloads {until(m['expires_at'], m['pinned'])})"
