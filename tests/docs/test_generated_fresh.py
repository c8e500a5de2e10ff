"""The generated docs are fresh: docs/commands.md equals the CLI's --help right now, and the
schema/error tables of docs/json-api.md equal what the shipped schemas and mlxk.errors say.

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
