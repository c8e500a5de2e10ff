"""``mlxk`` entry point: the parser, the command table, the one error boundary.

Each command lives in ``mlxk.cli.<module>`` and exposes ``NAME``, ``HELP``,
``ALIASES``, ``add_arguments(parser)`` and ``run(args, out) -> int``. Command
modules import nothing heavy at module level, so building the parser stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType

from mlxk import config
from mlxk.errors import InternalError, MlxkError, UsageError
from mlxk.output.console import Output

# Order here is the order in `mlxk --help`.
COMMAND_MODULES = (
    "list_cmd", "show", "health", "pull", "rm", "prune", "run", "serve", "ps", "load", "stop", "embed",
    "convert", "search", "push", "completion",
)


class _Parser(argparse.ArgumentParser):
    """Raises ``UsageError`` instead of exiting, so JSON mode can answer in an envelope."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message, usage=self.format_usage().strip())


def _load_commands(only: str | None = None) -> list[ModuleType]:
    names = [only] if only else COMMAND_MODULES
    return [importlib.import_module(f"mlxk.cli.{name}") for name in names]


_EPILOG = """\
Examples:
  mlxk list                                   runnable models in the cache
  mlxk pull mlx-community/Qwen3-0.6B-4bit     download one
  mlxk run Qwen3-0.6B-4bit "Hello"            one answer (no prompt: a chat)
  mlxk serve                                  OpenAI-compatible API on 127.0.0.1:8000
  mlxk list --json | jq '.data.models[].name'

Exit codes: 0 success, 1 error (or unhealthy models for health), 2 usage error.
Docs: docs/commands.md, docs/json-api.md, docs/server.md in the mlx-knife repository."""


def _module_for(word: str) -> str | None:
    """``list`` -> ``list_cmd``: the module of a command named in argv (aliases: None)."""
    for name in COMMAND_MODULES:
        if name.removesuffix("_cmd") == word:
            return name
    return None


def build_parser(only: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    """The full parser, or with ``only`` a parser that knows just that command module
    (so ``mlxk list`` does not import every other command)."""
    from mlxk.cli.options import add_json_flag

    parser = _Parser(
        prog="mlxk",
        description="Manage and run MLX models from the HuggingFace cache.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print version and system info")
    parser.add_argument("--json", dest="json", action="store_true", default=False,
                        help="JSON output (also accepted after the command)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser,
                                title="commands", description="mlxk COMMAND --help shows a command's flags")
    table: dict[str, ModuleType] = {}
    for module in _load_commands(only):
        p = sub.add_parser(module.NAME, aliases=list(getattr(module, "ALIASES", ())),
                           help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                           epilog=getattr(module, "EXAMPLE", None),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        add_json_flag(p)
        module.add_arguments(p)
        table[module.NAME] = module
        for alias in getattr(module, "ALIASES", ()):
            table[alias] = module
    return parser, table


def _guess_command(argv: Sequence[str]) -> str:
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return "mlxk"


def _version_data() -> dict:
    from mlxk import JSON_API_SPEC_VERSION, __version__
    from mlxk import platform as plat
    from mlxk.engine import cpu_kernels

    return {
        "cli_version": __version__,
        "json_api_spec_version": JSON_API_SPEC_VERSION,
        "system": {
            "platform": plat.system_name(),
            "memory_total_bytes": plat.memory_total_bytes(),
            "mlx_device": plat.mlx_device(),
            "cpu_kernels": cpu_kernels.status().as_dict(),
        },
    }


def _version_human(d: dict) -> str:
    s = d["system"]
    return (f"mlxk {d['cli_version']} (JSON API {d['json_api_spec_version']}) "
            f"on {s['platform']}, MLX device: {s['mlx_device']}\n"
            f"CPU kernels: {s['cpu_kernels']['state']} ({s['cpu_kernels']['reason']})")


def _wants_json(argv: Sequence[str]) -> bool:
    return "--json" in argv or config.json_mode_default()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    json_mode = _wants_json(argv)
    out = Output(_guess_command(argv), json_mode)
    try:
        if "--version" in argv and set(argv) <= {"--version", "--json"}:
            # fast path: no command modules, no parser (``mlxk --version`` must stay ~0.1 s)
            Output("version", json_mode).result(_version_data(), _version_human)
            return 0
        parser, table = build_parser(_module_for(_guess_command(argv)))
        args = parser.parse_args(argv)
        json_mode = bool(getattr(args, "json", False)) or json_mode
        if args.version:
            out = Output("version", json_mode)
            out.result(_version_data(), _version_human)
            return 0
        if not args.command:
            parser.print_help()
            return 2
        module = table[args.command]
        out = Output(module.NAME, json_mode)
        return int(module.run(args, out) or 0)
    except MlxkError as exc:
        if isinstance(exc, UsageError) and not out.json_mode and exc.extra.get("usage"):
            out.stderr.write(exc.extra["usage"] + "\n")
        out.error(exc, traceback.format_exc() if config.debug() else None)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except Exception as exc:  # the one catch-all: report, never a bare traceback
        err = InternalError(f"{type(exc).__name__}: {exc}")
        out.error(err, traceback.format_exc() if config.debug() else None)
        return 1


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    raise SystemExit(main())
