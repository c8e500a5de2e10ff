"""`mlxk run` (not yet implemented)."""

from __future__ import annotations

import argparse

from mlxk.errors import ExecutionError
from mlxk.output.console import Output

NAME = "run"
HELP = "run (not yet implemented)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from mlxk.cli.options import add_distributed_flags, add_model_arg, add_sampling_flags

    add_model_arg(p)
    p.add_argument("prompt", nargs="?", default=None)
    add_sampling_flags(p)
    p.add_argument("--system", default=None)
    p.add_argument("--no-chat-template", action="store_true")
    p.add_argument("--no-stream", action="store_true")
    p.add_argument("--verbose", action="store_true")
    add_distributed_flags(p)


def run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.cli.options import distributed_requested

    if distributed_requested(args):
        from mlxk.cli import distributed

        prompt = out.stdin.read() if args.prompt == "-" else args.prompt
        return distributed.run_cli(args, out, prompt)
    raise ExecutionError("'run' is not implemented yet")
