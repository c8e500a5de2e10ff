"""`mlxk serve` as a real process: signals, crash reporting, restart, orphans, the startup line."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import jsonschema
import pytest
from tests.support.cli import REPO_ROOT, run_mlxk
from tests.support.fixtures_server import get_json, port_is_free

SCHEMA = json.loads((REPO_ROOT / "src/mlxk/schemas/serve.json").read_text())


def _gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie of someone else's is still "gone" for our purpose
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split()[2] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_child_and_frees_port(serve_factory, isolated_env: Path, sig: int) -> None:
    sp = serve_factory(isolated_env)
    jsonschema.validate(sp.startup, SCHEMA)
    data = sp.startup["data"]
    assert data["host"] == "127.0.0.1" and data["port"] == sp.port
    child = data["pid"]
    assert child != sp.proc.pid
    assert sp.stop(sig) == 0
    assert _gone(child), "server child survived the supervisor"
    assert port_is_free(sp.port)


def test_crash_is_reported_with_exit_code(serve_factory, isolated_env: Path) -> None:
    sp = serve_factory(isolated_env)
    os.kill(sp.startup["data"]["pid"], signal.SIGKILL)
    assert sp.proc.wait(60) == 1
    assert "exited with code -9" in sp.stderr_text()
    assert port_is_free(sp.port)


def test_restart_brings_a_crashed_server_back(serve_factory, isolated_env: Path) -> None:
    sp = serve_factory(isolated_env, "--restart")
    first = sp.startup["data"]["pid"]
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while True:
        try:
            if get_json(sp.base_url + "/health", timeout=2)["ready"]:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, sp.stderr_text()
        time.sleep(0.2)
    assert "restarting" in sp.stderr_text()
    assert sp.stop() == 0
    assert port_is_free(sp.port)


def test_killed_supervisor_leaves_no_orphan(serve_factory, isolated_env: Path) -> None:
    sp = serve_factory(isolated_env, "--stop-timeout", "2")
    child = sp.startup["data"]["pid"]
    sp.proc.kill()
    sp.proc.wait()
    assert _gone(child, timeout=60), "server child outlived its supervisor"
    assert port_is_free(sp.port)


def test_unknown_start_model_fails_fast_with_envelope(isolated_env: Path) -> None:
    r = run_mlxk("--json", "serve", "--model", "nobody/nothing", "--port", "0", timeout=60)
    assert r.returncode == 1
    env = json.loads(r.stdout)
    jsonschema.validate(env, SCHEMA)
    assert env["status"] == "error" and env["error"]["type"] == "model_not_found"


def test_non_loopback_bind_warns(serve_factory, isolated_env: Path) -> None:
    sp = serve_factory(isolated_env, "--host", "0.0.0.0")
    assert "exposes the server" in sp.stderr_text()
    assert sp.stop() == 0


def test_bad_flag_values_are_usage_errors(isolated_env: Path) -> None:
    r = run_mlxk("serve", "--max-loaded", "0", timeout=60)
    assert r.returncode == 1 and "max-loaded" in r.stderr
    r = run_mlxk("serve", "--prefill-chunk", "0", timeout=60)
    assert r.returncode == 1 and "--prefill-chunk must be at least 1" in r.stderr


def test_log_json_writes_structured_lines(serve_factory, isolated_env: Path) -> None:
    sp = serve_factory(isolated_env, "--log-json")
    assert sp.stop() == 0
    lines = [json.loads(x) for x in sp.stderr_text().splitlines() if x.startswith("{")]
    assert lines, sp.stderr_text()
    assert all({"ts", "level", "logger", "msg"} <= set(x) for x in lines)
    assert any("shutdown" in x["msg"].lower() for x in lines)
