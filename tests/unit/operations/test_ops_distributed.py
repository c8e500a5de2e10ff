"""`serve --hosts` runs the local server's setting checks and honours --restart (issue 12).

The ranks themselves are exercised end to end in tests/e2e/distributed; here ``prepare`` and
``supervise`` are stand-ins so the order of checks and the restart rule are tested cheaply.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from mlxk.errors import ExecutionError, ValidationError
from mlxk.operations import distributed as dist
from mlxk.server.settings import ServerSettings

WHERE = dist.HostOptions(hosts="127.0.0.1,127.0.0.1")


class Calls:
    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = outcomes
        self.prepared = 0
        self.supervised = 0

    def prepare(self, model: str, where: dist.HostOptions, check_hosts: bool = True) -> Any:
        self.prepared += 1
        return SimpleNamespace(hosts="hosts", plan=None)

    def supervise(self, hs: Any, spec: Any, entry: str, on_event: Any, first_op: Any) -> int:
        assert entry == dist.RANK_ENTRY and first_op["op"] == "serve"
        self.supervised += 1
        outcome = self.outcomes.pop(0)
        if outcome == "crash-after-listening":
            on_event({"ev": "listening", "host": "127.0.0.1", "port": 1})
            raise ExecutionError("distributed server stopped: rank 1 was killed")
        if outcome == "crash-before-listening":
            raise ExecutionError("distributed server stopped: rank 1 failed to load")
        return outcome


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Any:
    def make(*outcomes: Any) -> Calls:
        c = Calls(list(outcomes))
        monkeypatch.setattr(dist, "prepare", c.prepare)
        monkeypatch.setattr(dist, "spec_for", lambda p, command: {"command": command})
        monkeypatch.setattr("mlxk.engine.distributed.session.supervise", c.supervise)
        return c

    return make


def _serve(settings: ServerSettings, warnings: list[str]) -> int:
    return dist.serve(settings, "org/model", WHERE, lambda p, ev: None, warnings.append)


@pytest.mark.parametrize("bad,message", [({"max_batch": 0}, "--max-batch"), ({"port": 70000}, "port"),
                                         ({"keep_alive": -5}, "--keep-alive")])
def test_bad_settings_fail_before_any_rank_starts(calls: Any, bad: dict, message: str) -> None:
    c = calls(0)
    with pytest.raises(ValidationError, match=message):
        _serve(ServerSettings(**bad), [])
    assert c.prepared == 0 and c.supervised == 0


def test_public_bind_without_key_warns_as_a_local_server_does(calls: Any) -> None:
    calls(0)
    warnings: list[str] = []
    assert _serve(ServerSettings(host="0.0.0.0"), warnings) == 0
    assert any("WITHOUT an API key" in w for w in warnings)


def test_restart_starts_the_ranks_again_after_a_crash(calls: Any) -> None:
    c = calls("crash-after-listening", 0)
    warnings: list[str] = []
    assert _serve(ServerSettings(restart=True), warnings) == 0
    assert c.supervised == 2 and any("restarting the ranks (1/" in w for w in warnings)


def test_without_restart_a_crash_is_the_error(calls: Any) -> None:
    c = calls("crash-after-listening", 0)
    with pytest.raises(ExecutionError, match="rank 1 was killed"):
        _serve(ServerSettings(), [])
    assert c.supervised == 1


def test_a_server_that_never_listened_is_not_restarted(calls: Any) -> None:
    c = calls("crash-before-listening", 0)
    with pytest.raises(ExecutionError, match="failed to load"):
        _serve(ServerSettings(restart=True), [])
    assert c.supervised == 1
