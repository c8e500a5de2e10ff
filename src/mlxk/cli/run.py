"""`mlxk run` (not yet implemented)."""

from __future__ import annotations

import argparse

from mlxk.errors import ExecutionError
from mlxk.output.console import Output

NAME = "run"
HELP = "run (not yet implemented)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from mlxk.cli.options import add_distributed_flags, add_sampling_flags

    p.add_argument("rest", nargs="*")
    add_sampling_flags(p)
    add_distributed_flags(p)


def run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.cli.options import distributed_requested

    if distributed_requested(args):
        from mlxk.cli import distributed

        return distributed.run_cli(args, out)
    raise ExecutionError("'run' is not implemented yet")
