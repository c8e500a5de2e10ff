"""Rank 0 of `serve --hosts`: the normal HTTP server over the lockstep batch of every rank.

The rank's entry point (``operations.rank``) hands :func:`serve_lead` to the engine's rank
code, which calls it on rank 0 with the lockstep pieces (``engine.distributed.rank.serve``):
a scheduler factory whose every batch step is mirrored on the other ranks, and the way to
release them. The pool serves only the model the ranks loaded.
"""

from __future__ import annotations

import json
import os
import threading

from mlxk.engine.distributed.rank.serve import Leader
from mlxk.errors import ExecutionError, ModelNotFound


def serve_lead(leader: Leader) -> None:
    import uvicorn

    from mlxk.server import logs
    from mlxk.server.app import create_app
    from mlxk.server.child import bind_socket
    from mlxk.server.pool import ModelPool, Target, default_resolver
    from mlxk.server.settings import ServerSettings

    rank = leader.rank
    spec = rank.spec
    first = rank.ops.get()  # the launcher sends the server settings first, over stdin
    if first is None or first.get("op") != "serve":
        leader.release_followers()
        raise ExecutionError("the launcher went away before sending the server settings")
    opts = dict(first.get("server") or {})
    opts.update(model=spec["model"], keep_alive=-1, max_loaded=1)
    settings = ServerSettings.from_json(json.dumps(opts))
    logs.configure(settings.log_json)
    served = os.path.realpath(str(rank.lm.path))

    def resolver(name: str) -> Target:
        target = default_resolver(name)
        if os.path.realpath(str(target.path)) != served:
            raise ModelNotFound(f"model '{name}' is not served here: this distributed server runs "
                                f"only {spec.get('name') or spec['model']}")
        return target

    pool = ModelPool(settings, resolver=resolver, loader=lambda path, key: rank.lm,
                     scheduler_factory=leader.scheduler_factory)
    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as exc:
        leader.release_followers()
        raise ExecutionError(f"cannot bind {settings.host}:{settings.port}: {exc}") from exc
    host, port = sock.getsockname()[:2]
    app = create_app(settings, pool)

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                rank.events.emit("listening", host=host, port=port, model=pool.default_model,
                                 pid=os.getpid())

    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=int(settings.stop_timeout) or None,
                            timeout_keep_alive=5)
    server = _Server(config)

    def watch_launcher() -> None:  # EOF or a shutdown op from the launcher: stop serving
        while True:
            op = rank.ops.get()
            if op is None or op.get("op") == "shutdown":
                server.should_exit = True
                return

    threading.Thread(target=watch_launcher, daemon=True).start()
    server.run(sockets=[sock])
    err = getattr(app.state, "startup_error", None)
    if err is not None:
        raise ExecutionError(f"server failed to start: {err}")
    if not pool.loaded_names():
        # never got as far as the scheduler: release the followers ourselves
        leader.release_followers()
