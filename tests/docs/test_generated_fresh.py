"""The generated docs are fresh: docs/commands.md equals the CLI's --help right now, and the
schema/error tables of docs/json-api.md equal what the shipped schemas and mlxk.errors say.

argparse lays out --help differently from one Python version to the next, so the verbatim
comparison runs on the Python the file was generated with. What does not depend on argparse's
layout is checked on every Python: every command and flag name (test_docs_sync.py) and every
flag's help text (here), so a flag added or reworded without regenerating fails everywhere.

When one fails: run `python scripts/gen_docs.py` and commit the result.
"""

from __future__ import annotations

import re

import pytest
from scripts import gen_docs

FIX = "run `python scripts/gen_docs.py` and commit the result"


def _generated_with() -> str | None:
    m = re.search(r"\(Python (\d+\.\d+) argparse", gen_docs.COMMANDS_MD.read_text())
    return m.group(1) if m else None


def test_commands_md_matches_fresh_help() -> None:
    recorded = _generated_with()
    if recorded != gen_docs.python_version():
        pytest.skip(f"docs/commands.md was generated with Python {recorded}; argparse formats "
                    f"help differently on {gen_docs.python_version()}")
    fresh = gen_docs.render_commands_md()
    assert gen_docs.COMMANDS_MD.read_text() == fresh, f"docs/commands.md is out of date: {FIX}"


def _words(text: str) -> str:
    return " ".join(text.split())


def test_commands_md_has_every_flags_help_text() -> None:
    """Runs on every Python (no argparse layout involved)."""
    from mlxk.cli.cli_spec import cli_spec

    reference = gen_docs.COMMANDS_MD.read_text()
    sections = {m.group(1): m.start() for m in re.finditer(r"^## mlxk (\S+)$", reference, re.M)}
    ends = sorted([*sections.values(), len(reference)])
    for cmd in cli_spec().commands:
        assert cmd.name in sections, f"`mlxk {cmd.name}` has no section: {FIX}"
        start = sections[cmd.name]
        body = _words(reference[start:next(e for e in ends if e > start)])
        for flag in cmd.flags:
            if flag.help and "%" not in flag.help:
                assert _words(flag.help) in body, f"help of `mlxk {cmd.name} {flag.long}` differs: {FIX}"


def test_json_api_generated_tables_are_fresh() -> None:
    current = gen_docs.JSON_API_MD.read_text()
    assert gen_docs.GEN_BEGIN in current
    assert current == gen_docs.render_json_api_md(current), f"docs/json-api.md is out of date: {FIX}"


def test_reference_is_what_a_real_mlxk_process_prints() -> None:
    """The generator captures --help in-process; a real `mlxk CMD --help` prints the same."""
    from mlxk.cli.cli_spec import cli_spec
    from tests.support.cli import run_mlxk

    if _generated_with() != gen_docs.python_version():
        pytest.skip("docs/commands.md was generated with another Python")
    reference = gen_docs.COMMANDS_MD.read_text()
    env = {"COLUMNS": str(gen_docs.COLUMNS), "NO_COLOR": "1", "PYTHON_COLORS": "0"}
    for argv in ([], *([c.name] for c in cli_spec().commands)):
        res = run_mlxk(*argv, "--help", env=env)
        assert res.returncode == 0, res.stderr
        assert res.stdout.rstrip() in reference, f"`mlxk {' '.join(argv)} --help` differs: {FIX}"
