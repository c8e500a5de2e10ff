"""`mlxk completion bash|zsh|fish`: print a shell completion script."""

from __future__ import annotations

import argparse
import os

from mlxk import config
from mlxk.errors import UsageError
from mlxk.output.console import Output

NAME = "completion"
HELP = "print a shell completion script (bash, zsh, fish)"
DESCRIPTION = """\
Print a completion script for bash, zsh or fish. It completes command names,
the flags of each command and the names of cached models (looked up when you
press TAB, so newly pulled models appear at once)."""
EXAMPLE = """\
Examples:
  eval "$(mlxk completion bash)"                                  # bash, this session
  mlxk completion bash > ~/.local/share/bash-completion/completions/mlxk
  mlxk completion zsh > "${fpath[1]}/_mlxk"                      # zsh (then restart it)
  mlxk completion fish > ~/.config/fish/completions/mlxk.fish     # fish"""

SHELLS = ("bash", "zsh", "fish")
_REPO_PREFIX = "models--"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("shell", nargs="?", choices=SHELLS, help="the shell to print a script for")
    # Hidden fast path the scripts call on TAB: cached model names starting with PREFIX.
    p.add_argument("--models", nargs="?", const="", default=None, metavar="PREFIX",
                   help=argparse.SUPPRESS)


def cached_model_names(prefix: str = "") -> list[str]:
    """``org/name`` of every repo in the hub cache (``name@hash`` once PREFIX has an ``@``).

    Reads directory names only: fast on a big cache, never touches a file's
    content, never imports the engine.
    """
    root = config.hub_cache()
    try:
        entries = [e.name for e in os.scandir(root) if e.name.startswith(_REPO_PREFIX)]
    except OSError:
        return []
    names = sorted(e[len(_REPO_PREFIX):].replace("--", "/") for e in entries)
    if "@" not in prefix:
        return _matching(names, prefix)
    base = prefix.rsplit("@", 1)[0]
    if base not in names:
        return []
    snapshots = root / (_REPO_PREFIX + base.replace("/", "--")) / "snapshots"
    try:
        commits = sorted(e.name for e in os.scandir(snapshots) if e.is_dir())
    except OSError:
        return []
    return [f"{base}@{c[:8]}" for c in commits if f"{base}@{c[:8]}".startswith(prefix)]


def _matching(names: list[str], prefix: str) -> list[str]:
    """Names starting with PREFIX; failing that, names whose model part (after the org)
    starts with it, then names containing it: ``Smol<TAB>`` finds ``mlx-community/SmolLM2-...``."""
    low = prefix.lower()
    for test in (lambda n: n.lower().startswith(low),
                 lambda n: n.lower().split("/", 1)[-1].startswith(low),
                 lambda n: low in n.lower()):
        hits = [n for n in names if test(n)]
        if hits:
            return hits
    return []


def script_for(shell: str) -> str:
    from mlxk import __version__
    from mlxk.cli import completion_scripts as scripts
    from mlxk.cli.cli_spec import cli_spec

    spec = cli_spec()
    render = {"bash": scripts.bash_script, "zsh": scripts.zsh_script, "fish": scripts.fish_script}
    return render[shell](spec, __version__)


def run(args: argparse.Namespace, out: Output) -> int:
    if args.models is not None:
        names = cached_model_names(args.models)
        out.result({"models": names}, lambda d: "\n".join(d["models"]))
        return 0
    if not args.shell:
        raise UsageError("choose a shell: mlxk completion bash|zsh|fish")
    out.result({"shell": args.shell, "script": script_for(args.shell)}, lambda d: d["script"])
    return 0
