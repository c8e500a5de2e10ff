"""Fixtures for the server area (loaded by tests/conftest.py).

- ``serve_app_in_thread(app)``: a real uvicorn on a free port in a thread (fast in-process tests).
- ``ServeProcess`` / ``start_serve(...)``: a real ``mlxk serve`` subprocess against a given
  cache (``HF_HOME``), started with ``--json`` and waited for on its startup line and /health,
  stopped with SIGTERM (SIGKILL only if it does not stop).
- ``serve_factory``: function-scoped starter that always cleans up.
- ``module_hf_home(tmp_path_factory, models)``: a module-level HF_HOME with model dirs imported.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import mlxk_argv, mlxk_env

START_TIMEOUT_S = 240.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def get_json(url: str, headers: dict[str, str] | None = None, timeout: float = 30) -> Any:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


@dataclass
class ThreadedServer:
    server: Any
    thread: threading.Thread
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def serve_app_in_thread(app: Any) -> ThreadedServer:
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("in-thread server did not start")
        time.sleep(0.02)
    return ThreadedServer(server, thread, port)


@dataclass
class ServeProcess:
    proc: subprocess.Popen
    port: int
    startup: dict[str, Any] = field(default_factory=dict)
    stderr_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_serve(hf_home: Path, *args: str, port: int | None = None, log_dir: Path | None = None,
                env: dict[str, str] | None = None, wait: bool = True) -> ServeProcess:
    """Start ``mlxk serve --json --port P ARGS`` with ``HF_HOME=hf_home``; wait until it is ready."""
    port = port or free_port()
    extra = {"HF_HOME": str(hf_home), **(env or {})}
    log_dir = log_dir or hf_home
    stderr_path = log_dir / f"serve-{port}.stderr"
    err = stderr_path.open("wb")
    proc = subprocess.Popen(mlxk_argv("serve", "--json", "--port", str(port), *args),
                            env=mlxk_env(extra), stdout=subprocess.PIPE, stderr=err)
    err.close()
    sp = ServeProcess(proc, port, stderr_path=stderr_path)
    if wait:
        _wait_startup(sp)
    return sp


def _wait_startup(sp: ServeProcess) -> None:
    assert sp.proc.stdout is not None
    line = b""
    deadline = time.monotonic() + START_TIMEOUT_S
    os.set_blocking(sp.proc.stdout.fileno(), False)
    while b"\n" not in line:
        chunk = sp.proc.stdout.read()
        if chunk:
            line += chunk
        elif sp.proc.poll() is not None:
            raise RuntimeError(f"mlxk serve exited ({sp.proc.returncode}) before it was ready:\n"
                               f"{line.decode(errors='replace')}\n{sp.stderr_text()}")
        elif time.monotonic() > deadline:
            sp.stop(signal.SIGKILL)
            raise RuntimeError(f"mlxk serve did not start in time:\n{sp.stderr_text()}")
        else:
            time.sleep(0.05)
    sp.startup = json.loads(line.split(b"\n", 1)[0])
    health = get_json(sp.base_url + "/health")
    assert health["ready"] is True, health


@pytest.fixture
def serve_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[ServeProcess] = []

    def start(hf_home: Path, *args: str, **kw: Any) -> ServeProcess:
        kw.setdefault("log_dir", tmp_path)
        sp = start_serve(hf_home, *args, **kw)
        started.append(sp)
        return sp

    yield start
    for sp in started:
        with contextlib.suppress(Exception):
            sp.stop()


def module_hf_home(tmp_path_factory: pytest.TempPathFactory, models: dict[str, Path]) -> Path:
    """A fresh HF_HOME holding ``models`` ({repo_id: model dir}) imported as real cache repos."""
    from mlxk.cache.importer import import_directory

    home = tmp_path_factory.mktemp("serve_hf_home")
    (home / "hub").mkdir()
    for repo_id, src in models.items():
        import_directory(Path(src), repo_id, root=home / "hub")
    return home
