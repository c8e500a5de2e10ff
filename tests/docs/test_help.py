"""Every command's --help has one line of purpose, an example, and consistent flag names."""

from __future__ import annotations

import re

import pytest

from mlxk.cli.cli_spec import cli_spec
from mlxk.cli.main import build_parser

# Spellings of the shared concepts that must not appear (use --json, --force, --dry-run, --max-tokens).
_BANNED = {"--dryrun", "--dry_run", "--max_tokens", "--maxtokens", "--max-new-tokens", "--num-tokens",
           "--yes", "--force-delete", "--json-output", "--as-json", "--output-json", "--no-confirm"}
_KEBAB = re.compile(r"^--[a-z0-9]+(-[a-z0-9]+)*$")


def _subparsers() -> dict:
    parser, _ = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


@pytest.mark.parametrize("name", [c.name for c in cli_spec().commands])
def test_command_help_has_purpose_and_example(name: str) -> None:
    cmd = cli_spec().command(name)
    p = _subparsers()[name]
    assert cmd.help and "\n" not in cmd.help and len(cmd.help) <= 80, cmd.help
    assert "not yet implemented" not in cmd.help
    assert p.description and "not yet implemented" not in p.description
    assert p.epilog and re.search(r"(?im)^\s*examples?:", p.epilog), f"{name}: no 'Example:' epilog"
    assert f"mlxk {name}" in p.epilog or any(f"mlxk {a}" in p.epilog for a in cmd.aliases)


def test_flag_names_are_consistent() -> None:
    spec = cli_spec()
    problems = []
    for cmd in spec.commands:
        for flag in cmd.flags:
            for n in flag.names:
                if n.startswith("--") and not _KEBAB.match(n):
                    problems.append(f"{cmd.name}: {n} is not lower-case kebab-case")
                if n in _BANNED:
                    problems.append(f"{cmd.name}: {n} (use the shared spelling)")
            if "-f" in flag.names and "--force" not in flag.names:
                problems.append(f"{cmd.name}: -f must mean --force")
        assert any(f.long == "--json" for f in cmd.flags), f"{cmd.name} lacks --json"
    assert problems == []


def test_top_level_help_has_an_example() -> None:
    parser, _ = build_parser()
    assert parser.epilog and "mlxk " in parser.epilog
