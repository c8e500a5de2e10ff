"""`run` tells the user what it did: which model a substring picked, and that an answer was cut.

Uses the random-weight tiny llama (fast; its words are noise, only counts matter).
"""

from __future__ import annotations

import pytest
from tests.support.cli import run_mlxk
from tests.support.schema import assert_valid

from mlxk import config

pytestmark = pytest.mark.slow


def test_substring_pick_and_cut_answer_are_said_on_stderr(tiny_cached: str) -> None:
    r = run_mlxk("run", "tiny-ll", "hello", "--max-tokens", "3", "--temperature", "0")
    assert r.returncode == 0, r.stderr
    assert f"Using {tiny_cached} ('tiny-ll' matched it)" in r.stderr
    assert "[answer cut at 3 tokens (--max-tokens)" in r.stderr
    exact = run_mlxk("run", tiny_cached, "hello", "--max-tokens", "3", "--json")
    assert exact.returncode == 0 and exact.stderr == ""


def test_default_max_tokens_is_a_sensible_answer_length(tiny_cached: str) -> None:
    r = run_mlxk("run", tiny_cached, "hello", "--json", "--temperature", "0")
    assert r.returncode == 0, r.stderr
    data = assert_valid(r.json)["data"]
    # greedy noise never ends on its own: the default is what stops it
    assert data["usage"]["completion_tokens"] == config.DEFAULT_RUN_MAX_TOKENS
    assert data["finish_reason"] == "length"
    help_text = " ".join(run_mlxk("run", "--help").stdout.split())
    assert f"(default {config.DEFAULT_RUN_MAX_TOKENS};" in help_text
