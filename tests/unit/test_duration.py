"""Keep-alive durations: one parser for serve, load and the admin API."""

from __future__ import annotations

import pytest

from mlxk.duration import NEVER, format_keep_alive, parse_keep_alive
from mlxk.errors import ValidationError


@pytest.mark.parametrize(("text", "seconds"), [
    ("300", 300.0), ("2.5", 2.5), ("0", 0.0), ("-1", NEVER), (-1, NEVER), (90, 90.0), ("30s", 30.0),
    ("5m", 300.0), ("1h", 3600.0), ("1h30m", 5400.0), ("2d", 172800.0), ("500ms", 0.5), (" 5M ", 300.0),
    ("-5", NEVER), ("-2m", NEVER), (-0.5, NEVER),   # any negative means never, as in Ollama
    # Go durations as Ollama clients send them
    ("10us", 1e-5), ("10µs", 1e-5), ("100ns", 1e-7), ("1.5h", 5400.0), ("1h0m0s", 3600.0),
    ("2m30.5s", 150.5), ("+5m", 300.0), (".5s", 0.5), ("0s", 0.0), ("-1ns", NEVER), ("-1h30m", NEVER),
    ("0.0", 0.0), (0, 0.0),
])
def test_accepted(text: str | int, seconds: float) -> None:
    assert parse_keep_alive(text) == seconds


@pytest.mark.parametrize("text", ["", "--5", "-+5", "5x", "m", "5 m", "1h-", "abc", "nan", "inf", "-inf", True,
                                  float("nan"), "- 5m", "1.h.5", "1e3s", "5mm", None, [5]])
def test_rejected_with_a_clear_message(text: str) -> None:
    with pytest.raises(ValidationError, match=r"keep-alive .* 5m"):
        parse_keep_alive(text)


def test_format() -> None:
    assert [format_keep_alive(s) for s in (300, 3600, 45, -1, 0)] == ["5m", "1h", "45s", "never", "0s"]


def test_serve_and_load_take_durations() -> None:
    from mlxk.cli.main import build_parser
    from mlxk.cli.serve import build_settings

    parser, _ = build_parser()
    assert build_settings(parser.parse_args(["serve", "--keep-alive", "5m"])).keep_alive == 300
    assert build_settings(parser.parse_args(["serve", "--keep-alive", "-1"])).keep_alive == NEVER
    assert build_settings(parser.parse_args(["serve"])).keep_alive == 300
    assert parser.parse_args(["load", "m", "--keep-alive", "1h"]).keep_alive == 3600
    assert parser.parse_args(["load", "m"]).keep_alive is None


def test_the_ollama_dialect_uses_the_same_parser() -> None:
    from mlxk.server.dialects.ollama import keep_alive_seconds

    for value in ("5m", "1h30m", "500ms", "10us", "0", 300, -1, "-1m"):
        assert keep_alive_seconds(value) == parse_keep_alive(value)
    assert keep_alive_seconds(None) is None
    with pytest.raises(ValidationError) as exc:
        keep_alive_seconds("soon")
    assert exc.value.extra["param"] == "keep_alive"
