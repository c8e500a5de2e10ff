"""`mlxk run` (not yet implemented)."""

from __future__ import annotations

import argparse

from mlxk.errors import ExecutionError
from mlxk.output.console import Output

NAME = "run"
HELP = "run (not yet implemented)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("rest", nargs="*")


def run(args: argparse.Namespace, out: Output) -> int:
    raise ExecutionError("'run' is not implemented yet")
