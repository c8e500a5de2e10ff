"""`mlxk push` (experimental): upload a local model folder to a private Hub repo."""

from __future__ import annotations

import argparse

from mlxk.cli.options import add_dry_run_flag
from mlxk.output.console import Output

NAME = "push"
HELP = "upload a model folder to a private Hub repo (experimental)"
DESCRIPTION = (
    "Upload a local model folder to a private HuggingFace repo (experimental).\n"
    "Enabled only with MLXK2_ENABLE_EXPERIMENTAL_PUSH=1; needs --private and HF_TOKEN.\n"
    "--check-only validates the folder offline; --dry-run lists what would change on the Hub."
)
EXAMPLE = ("Examples:\n  mlxk push ./my-model me/my-model --private --check-only\n"
           "  mlxk push ./my-model me/my-model --private --dry-run\n"
           "  mlxk push ./my-model me/my-model --private")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory", help="local model folder")
    p.add_argument("repo", help="target repo id org/name")
    p.add_argument("--private", action="store_true", help="required: create/write a private repo")
    add_dry_run_flag(p, "list files that would be added/changed/deleted; upload nothing")
    p.add_argument("--check-only", action="store_true",
                   help="check the folder locally (config, weights, index); no network")
    p.add_argument("-m", "--message", default=None, help="commit message")


def _human(d: dict) -> str:
    lines = [d["message"]]
    for problem in d["checks"]["problems"]:
        lines.append(f"  problem: {problem}")
    for warning in d["checks"]["warnings"]:
        lines.append(f"  warning: {warning}")
    changes = d.get("changes")
    if changes and d["action"] == "dry_run":
        for key, sign in (("added", "+"), ("changed", "~"), ("deleted", "-")):
            lines.extend(f"  {sign} {c['path']}" for c in changes[key])
    if d.get("url"):
        lines.append(f"  {d['url']}")
    return "\n".join(lines)


def run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.operations.push import push

    data, ok = push(args.directory, args.repo, private=args.private, dry_run=args.dry_run,
                    check_only=args.check_only, message=args.message)
    out.result(data, _human)
    return 0 if ok else 1
