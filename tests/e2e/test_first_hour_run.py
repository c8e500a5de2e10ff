"""`run` tells the user what it did: which model a substring picked, and that an answer was cut.

Uses the random-weight tiny llama (fast; its words are noise, only counts matter). Greedy noise
never ends on its own, so the default --max-tokens is what stops it.
"""

from __future__ import annotations

import pytest
from tests.support.cli import run_mlxk
from tests.support.schema import assert_valid

from mlxk import config

pytestmark = pytest.mark.slow
LIMIT = config.DEFAULT_RUN_MAX_TOKENS


def test_default_limit_cut_and_substring_pick_are_said_on_stderr(tiny_cached: str) -> None:
    r = run_mlxk("run", "tiny-ll", "hello", "--temperature", "0")
    assert r.returncode == 0, r.stderr
    assert f"Using {tiny_cached} ('tiny-ll' matched it)" in r.stderr
    assert f"[answer cut at {LIMIT} tokens (--max-tokens)" in r.stderr
    # an explicit limit in a pipeline (stderr is no terminal) and --json stay quiet
    quiet = run_mlxk("run", tiny_cached, "hello", "--max-tokens", "3")
    assert quiet.returncode == 0 and quiet.stderr == ""
    j = run_mlxk("run", tiny_cached, "hello", "--temperature", "0", "--json")
    assert j.returncode == 0 and j.stderr == ""
    data = assert_valid(j.json)["data"]
    assert data["usage"]["completion_tokens"] == LIMIT and data["finish_reason"] == "length"
    help_text = " ".join(run_mlxk("run", "--help").stdout.split())
    assert f"(default {LIMIT};" in help_text
