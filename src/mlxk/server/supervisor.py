"""The supervisor: ``mlxk serve`` runs the HTTP server in a child process and watches it.

- The child runs in its own session, so a terminal Ctrl-C reaches only the
  supervisor, which forwards exactly one SIGTERM: uvicorn stops accepting, lets
  in-flight streams finish (up to ``stop_timeout``), unloads, exits.
- A second SIGINT/SIGTERM, or the child outliving ``stop_timeout`` + grace, kills it.
- The child holds the read end of a pipe whose write end only the supervisor
  holds; if the supervisor dies, the child sees EOF and shuts down (no orphans).
- A child that exits on its own is a crash: reported with its exit code, and
  restarted when ``restart`` is set (at most ``MAX_RESTARTS`` within a minute).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from mlxk.errors import ExecutionError, MlxkError
from mlxk.server.settings import ServerSettings

KILL_GRACE_S = 5.0
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
_ERROR_TYPES: dict[str, type[MlxkError]] = {}


def _error_from(data: dict[str, Any]) -> MlxkError:
    import mlxk.errors as errs

    if not _ERROR_TYPES:
        for obj in vars(errs).values():
            if isinstance(obj, type) and issubclass(obj, MlxkError):
                _ERROR_TYPES.setdefault(obj.code, obj)
    data = dict(data)
    code = data.pop("type", "execution_error")
    message = data.pop("message", "server failed to start")
    cls = _ERROR_TYPES.get(code, ExecutionError)
    try:
        return cls(message, **data)
    except TypeError:
        return ExecutionError(message)


class Supervisor:
    def __init__(self, settings: ServerSettings, on_ready: Callable[[dict[str, Any]], None],
                 warn: Callable[[str], None], python: str = sys.executable) -> None:
        self.settings = settings
        self.on_ready = on_ready
        self.warn = warn
        self.python = python
        self.proc: subprocess.Popen | None = None
        self.signals = 0
        self.kill_at: float | None = None
        self.announced = False

    # --- signals -----------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.signals += 1
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        if self.signals == 1:
            self.kill_at = time.monotonic() + self.settings.stop_timeout + KILL_GRACE_S
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        else:
            proc.kill()

    # --- one child ---------------------------------------------------------------------
    def _spawn(self) -> tuple[subprocess.Popen, int, int]:
        ready_r, ready_w = os.pipe()
        parent_r, parent_w = os.pipe()
        cmd = [self.python, "-m", "mlxk.server.child", "--ready-fd", str(ready_w),
               "--parent-fd", str(parent_r)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, pass_fds=(ready_w, parent_r),
                                start_new_session=True)
        os.close(ready_w)
        os.close(parent_r)
        assert proc.stdin is not None
        proc.stdin.write(self.settings.to_json().encode())
        proc.stdin.close()
        return proc, ready_r, parent_w

    def _wait_ready(self, proc: subprocess.Popen, ready_r: int) -> dict[str, Any] | None:
        buf = b""
        while True:
            try:
                readable, _, _ = select.select([ready_r], [], [], 0.2)
            except InterruptedError:
                readable = []
            if readable:
                data = os.read(ready_r, 65536)
                if not data:
                    break
                buf += data
                if b"\n" in buf:
                    break
            self._maybe_kill(proc)
            if proc.poll() is not None and not readable:
                break
        os.close(ready_r)
        line = buf.split(b"\n", 1)[0].strip()
        return json.loads(line) if line else None

    def _maybe_kill(self, proc: subprocess.Popen) -> None:
        if self.kill_at is not None and time.monotonic() > self.kill_at and proc.poll() is None:
            proc.kill()

    def _wait_exit(self, proc: subprocess.Popen) -> int:
        while True:
            try:
                return proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                self._maybe_kill(proc)

    def run_once(self) -> tuple[int, bool]:
        """Run one child to its end. Returns (exit code, whether it ever became ready)."""
        proc, ready_r, parent_w = self._spawn()
        self.proc = proc
        try:
            msg = self._wait_ready(proc, ready_r)
            if msg is not None and "error" in msg:
                self._wait_exit(proc)
                raise _error_from(msg["error"])
            ready = msg is not None
            if ready and not self.signals and not self.announced:
                self.announced = True
                self.on_ready(msg)
            return self._wait_exit(proc), ready
        finally:
            if proc.poll() is None:  # never leave a child behind
                proc.kill()
                proc.wait()
            os.close(parent_w)

    # --- the supervisor loop -------------------------------------------------------------
    def run(self) -> int:
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        restarts: list[float] = []
        attempts = 0
        try:
            while True:
                try:
                    code, ready = self.run_once()
                except MlxkError:
                    if attempts:   # a restart failed to start (e.g. its --model is gone)
                        self.warn(f"giving up after {attempts} restart{'s' if attempts != 1 else ''}: "
                                  "the server could not start again")
                    raise
                if self.signals:
                    return 0
                self.warn(f"server process exited with code {code}")
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < RESTART_WINDOW_S]
                if self.settings.restart and ready and len(restarts) >= MAX_RESTARTS:
                    self.warn(f"giving up after {MAX_RESTARTS} restarts within "
                              f"{RESTART_WINDOW_S:.0f} seconds")
                    return 1
                if not self.settings.restart or not ready:
                    if not ready and attempts:
                        self.warn(f"giving up after {attempts} restart{'s' if attempts != 1 else ''}: "
                                  "the server could not start again")
                    if not ready:
                        raise ExecutionError(f"server process exited with code {code} before it "
                                             f"was ready", exit_code=code)
                    return 1
                restarts.append(now)
                attempts += 1
                self.warn(f"restarting the server ({len(restarts)}/{MAX_RESTARTS})")
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
