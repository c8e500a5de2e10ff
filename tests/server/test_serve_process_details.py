"""`mlxk serve` as a process: MLXK_HOST/MLXK_PORT, and a --restart whose model was removed
ends with one error line and "giving up", not a traceback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.support.cli import mlxk_argv, mlxk_env
from tests.support.fixtures_server import free_port, get_json

from mlxk.cache import layout


def _startup_line(proc: subprocess.Popen, timeout: float = 240) -> dict:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    os.set_blocking(proc.stdout.fileno(), False)
    buf = b""
    while b"\n" not in buf:
        chunk = proc.stdout.read()
        if chunk:
            buf += chunk
        elif proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no startup line (exit {proc.poll()})")
        else:
            time.sleep(0.05)
    return json.loads(buf.split(b"\n", 1)[0])


def test_mlxk_host_and_port_from_the_environment(isolated_env: Path, tmp_path: Path) -> None:
    port = free_port()
    err = (tmp_path / "err").open("wb")
    proc = subprocess.Popen(mlxk_argv("serve", "--json"), stdout=subprocess.PIPE, stderr=err,
                            env=mlxk_env({"MLXK_HOST": "127.0.0.1", "MLXK_PORT": str(port)}))
    try:
        data = _startup_line(proc)["data"]
        assert data["port"] == port and data["host"] == "127.0.0.1"
        assert get_json(f"http://127.0.0.1:{port}/health")["ready"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    bad = subprocess.run(mlxk_argv("serve", "--json"), capture_output=True, text=True, timeout=60,
                         env=mlxk_env({"MLXK_PORT": "eighty"}))
    assert bad.returncode == 2 and "MLXK_PORT" in json.loads(bad.stdout)["error"]["message"]


@pytest.mark.slow
def test_restart_after_the_model_was_removed_gives_up_in_one_line(tiny_cached: str, tmp_path: Path) -> None:
    err_path = tmp_path / "serve.err"
    err = err_path.open("wb")
    proc = subprocess.Popen(mlxk_argv("serve", "--json", "--port", str(free_port()), "--model", tiny_cached,
                                      "--restart"), stdout=subprocess.PIPE, stderr=err, env=mlxk_env())
    try:
        child = _startup_line(proc)["data"]["pid"]
        shutil.rmtree(layout.repo_dir(tiny_cached))
        os.kill(child, signal.SIGKILL)
        assert proc.wait(120) == 1
        assert proc.stdout is not None
        envelope = json.loads(proc.stdout.read().decode().strip().splitlines()[-1])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = err_path.read_text(errors="replace")
    assert "Traceback" not in text, text
    assert "giving up after 1 restart" in text
    assert envelope["status"] == "error" and envelope["error"]["type"] == "model_not_found"
