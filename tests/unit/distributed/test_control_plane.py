"""The distributed control plane without ranks: events, hosts and launch settings, the watchdog."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tests.support.cli import mlxk_env

from mlxk.engine.distributed import protocol
from mlxk.engine.distributed.launch import (
    HostSet,
    RankHost,
    backend_env,
    model_ref_for_ranks,
    worker_command,
)


def test_events_round_trip_and_other_output_is_not_an_event() -> None:
    line = protocol.encode_event("chunk", chunk={"text": "Grüße\n"})
    assert line.endswith("\n") and "\n" not in line[:-1]
    assert protocol.decode_event(line) == {"ev": "chunk", "chunk": {"text": "Grüße\n"}}
    assert protocol.decode_event("a log line from rank 0\n") is None


def test_ring_ports_follow_mlxk_dist_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLXK_DIST_PORT", "41000")
    hs = HostSet([RankHost(0, "10.0.0.1", ["10.0.0.1"]), RankHost(1, "10.0.0.2", ["10.0.0.2", "10.1.0.2"])],
                 "ring", ["A=1"])
    files, env = backend_env(hs)
    assert json.loads(files["MLX_HOSTFILE"]) == [["10.0.0.1:41000"], ["10.0.0.2:41001", "10.1.0.2:41002"]]
    assert "A=1" in env


def test_worker_command_and_model_reference() -> None:
    spec = {"command": "run", "model": "org/m@abc"}
    argv = worker_command(spec, "mlxk.operations.rank")
    assert argv[:2] == ["-m", "mlxk.operations.rank"] and json.loads(argv[2]) == spec
    assert model_ref_for_ranks("org/m", "abc", None, True) == "org/m@abc"  # type: ignore[arg-type]


# In a child process: the watchdog owns SIGALRM and the interval timer (pytest-timeout's too).
WATCHDOG = """
import time
from mlxk.engine.distributed.rank.group import LostPeer, Watchdog
w = Watchdog(rank=1)
try:
    with w.guard("a step", 30):
        raise RuntimeError("[ring] peer closed the connection")
except LostPeer as exc:
    print("lost:", exc)
try:
    with w.guard("a step", 30):
        raise RuntimeError("out of memory")
except LostPeer:
    print("wrong: not a peer error")
except RuntimeError as exc:
    print("plain:", exc)
with w.guard("a test step", 0.3):
    time.sleep(5)
print("not reached")
"""


def test_watchdog_names_lost_peers_and_ends_a_stalled_rank() -> None:
    r = subprocess.run([sys.executable, "-c", WATCHDOG], capture_output=True, text=True, env=mlxk_env(),
                       timeout=60)
    assert r.returncode == protocol.EXIT_LOST_PEER, r.stderr
    assert "lost: rank 1: lost the connection to another rank during a step" in r.stdout
    assert "plain: out of memory" in r.stdout and "wrong" not in r.stdout
    assert "rank 1: no answer from the other ranks for 0s during a test step" in r.stderr
    assert "not reached" not in r.stdout
