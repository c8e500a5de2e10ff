"""fan_out: forked map keeps order, matches the serial result, survives a dying child."""

from __future__ import annotations

import os

import pytest

from mlxk.operations import fanout
from mlxk.operations.models import list_models


def _square(x: int) -> dict:
    return {"x": x, "sq": x * x, "pid": os.getpid()}


@pytest.fixture
def forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fanout, "MIN_ITEMS", 2)
    monkeypatch.setattr(fanout, "_workers", lambda n: 3)


def test_forked_map_keeps_order(forced) -> None:
    out = fanout.fan_out(_square, list(range(50)))
    assert [o["sq"] for o in out] == [x * x for x in range(50)]
    assert len({o["pid"] for o in out}) == 3  # really ran in three processes


def test_child_failure_falls_back_to_serial(forced) -> None:
    parent = os.getpid()

    def flaky(x: int) -> int:
        if os.getpid() != parent and x == 7:
            raise RuntimeError("boom")
        return x + 1

    assert fanout.fan_out(flaky, list(range(20))) == [x + 1 for x in range(20)]


def test_list_models_same_with_and_without_fork(forced, model_zoo, two_revisions) -> None:
    forked = list_models()
    fanout.MIN_ITEMS = 10**9
    assert list_models() == forked and forked["count"] == len(model_zoo) + 1
