"""The server process the supervisor starts: ``python -m mlxk.server.child --ready-fd N --parent-fd M``.

Settings arrive as JSON on stdin (so an API key never shows in ``ps``). Once the
app has started (the ``--model`` is loaded) and the socket listens, one JSON line
``{"host", "port", "pid"}`` goes to the ready pipe; a startup failure writes
``{"error": {...}}`` instead. When the supervisor disappears (the parent pipe
reaches EOF) the server shuts itself down, so it can never be orphaned.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import threading
import time
from typing import Any

from mlxk.errors import ExecutionError, InternalError, MlxkError

log = logging.getLogger("mlxk.server")


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _write(fd: int, obj: dict[str, Any]) -> None:
    try:
        os.write(fd, (json.dumps(obj) + "\n").encode())
        os.close(fd)
    except OSError:
        pass


def _watch_parent(fd: int, server: Any, grace: float) -> None:
    try:
        while os.read(fd, 1):
            pass
    except OSError:
        pass
    log.warning("supervisor went away; shutting down")
    server.should_exit = True
    time.sleep(grace)
    os._exit(1)


def serve(settings_json: str, ready_fd: int, parent_fd: int | None) -> int:
    import uvicorn

    from mlxk.server import logs
    from mlxk.server.app import create_app
    from mlxk.server.pool import ModelPool
    from mlxk.server.settings import ServerSettings

    settings = ServerSettings.from_json(settings_json)
    logs.configure(settings.log_json)
    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as exc:
        _write(ready_fd, {"error": ExecutionError(
            f"cannot bind {settings.host}:{settings.port}: {exc}").to_dict()})
        return 1
    host, port = sock.getsockname()[:2]
    pool = ModelPool(settings)
    app = create_app(settings, pool)

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                _write(ready_fd, {"host": host, "port": port, "pid": os.getpid(),
                                  "model": pool.default_model})

    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=int(settings.stop_timeout) or None,
                            timeout_keep_alive=5)
    server = _Server(config)
    if parent_fd is not None:
        threading.Thread(target=_watch_parent, args=(parent_fd, server, settings.stop_timeout + 2),
                         daemon=True).start()
    server.run(sockets=[sock])
    err = getattr(app.state, "startup_error", None)
    if err is not None or not server.started:
        exc = err if isinstance(err, MlxkError) else InternalError(f"server failed to start: {err}")
        _write(ready_fd, {"error": exc.to_dict()})
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mlxk.server.child")
    p.add_argument("--ready-fd", type=int, required=True)
    p.add_argument("--parent-fd", type=int, default=None)
    args = p.parse_args(argv)
    return serve(sys.stdin.read(), args.ready_fd, args.parent_fd)


if __name__ == "__main__":
    raise SystemExit(main())
