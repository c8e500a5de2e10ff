"""`serve --hosts`: rank 0 runs the normal HTTP server; every rank steps the same batch.

Rank 0 uses the serve track's app, pool and ``BatchScheduler`` unchanged, except
that its scheduler talks to mlx-lm's ``BatchGenerator`` through ``LockstepGen``:
before each ``next()`` the ops since the previous step (new sequences with their
prompt tokens and max_tokens, removed uids) are broadcast to the other ranks
through MLX collectives, and they replay them on their own ``BatchGenerator``
holding their shard. Sampling happens on rank 0 only (its samplers, logits
processors, constrained decoding); the chosen token reaches every rank inside the
step itself (an ``all_sum`` where the other ranks add zeros), so all KV caches
see the same tokens. Idle, rank 0 sends a heartbeat every ``HEARTBEAT_S``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any

from mlxk.engine.distributed import protocol as rankproto
from mlxk.engine.distributed.rank.group import (
    COLLECTIVE_TIMEOUT_S,
    HEARTBEAT_S,
    MSG_NOOP,
    MSG_SHUTDOWN,
    MSG_WORK,
    Channel,
    LostPeer,
)
from mlxk.errors import ExecutionError, ModelNotFound


def _lead_sampler(sampler: Any, group: Any) -> Any:
    import mlx.core as mx
    from mlx_lm.sample_utils import make_sampler

    inner = sampler or make_sampler(0.0)

    def sample(logprobs: Any) -> Any:
        tok = inner(logprobs)
        return mx.distributed.all_sum(tok.astype(mx.int32), group=group).astype(tok.dtype)

    return sample


def _follow_sampler(group: Any) -> Any:
    import mlx.core as mx

    def sample(logprobs: Any) -> Any:
        zeros = mx.zeros((logprobs.shape[0],), dtype=mx.int32)
        return mx.distributed.all_sum(zeros, group=group).astype(mx.uint32)

    return sample


class LockstepGen:
    """A ``BatchGenerator`` whose every step is mirrored on the other ranks."""

    def __init__(self, gen: Any, channel: Channel, kwargs: dict[str, Any]) -> None:
        self.gen = gen
        self.channel = channel
        self.pending: list[list[Any]] = [["new", kwargs]]

    def insert(self, prompts: list[list[int]], max_tokens: list[int] | None = None,
               samplers: list[Any] | None = None, logits_processors: Any = None, **kw: Any) -> Any:
        n = len(prompts)
        if any(c is not None for c in (kw.get("caches") or [])):
            raise ExecutionError("a cached prompt prefix cannot be replayed on the other ranks")
        max_tokens = max_tokens or [self.gen.max_tokens] * n
        samplers = [_lead_sampler(s, self.channel.group) for s in (samplers or [None] * n)]
        self.pending.append(["ins", [list(map(int, p)) for p in prompts], [int(m) for m in max_tokens]])
        return self.gen.insert(prompts, max_tokens=max_tokens, samplers=samplers,
                               logits_processors=logits_processors, **kw)

    def remove(self, uids: list[int], *a: Any, **kw: Any) -> Any:
        self.pending.append(["rm", [int(u) for u in uids]])
        return self.gen.remove(uids, *a, **kw)

    def flush(self, kind: int = MSG_WORK) -> None:
        ops, self.pending = self.pending, []
        self.channel.send_json(kind, {"ops": ops} if ops or kind == MSG_WORK else None)

    def next(self) -> Any:
        self.pending.append(["next"])
        self.flush()
        with self.channel.watchdog.guard("a batch step", COLLECTIVE_TIMEOUT_S):
            return self.gen.next()

    def heartbeat(self) -> None:
        if self.pending:
            self.flush()
        else:
            self.channel.broadcast(MSG_NOOP)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.gen, name)


class Heartbeat:
    """Keeps the followers' deadline fed while rank 0 is busy starting the server."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlxk-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self.channel.broadcast(MSG_NOOP)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _fatal(rank: Any, message: str) -> None:
    rank.events.error("execution_error", message)
    threading.Timer(1.0, lambda: os._exit(rankproto.EXIT_LOST_PEER)).start()


def _scheduler_class(rank: Any, heartbeat: Heartbeat) -> Any:
    from mlxk.engine.batch import BatchScheduler

    channel: Channel = rank.channel

    class LeaderScheduler(BatchScheduler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # No prefix cache: the other ranks would need the same cached KV state (not
            # broadcast), so every sequence prefills its whole prompt on every rank.
            kwargs["prompt_cache_size"] = 0
            super().__init__(*args, **kwargs)

        def _new_generator(self, cls: Any, stream: Any) -> Any:
            eos = sorted(getattr(self.lm, "eos_token_ids", ()) or ())
            kwargs = {"stop_tokens": [[t] for t in eos] or None, "completion_batch_size": self.max_batch,
                      "prefill_batch_size": min(self.max_batch, 8),
                      "prefill_step_size": self.prefill_step_size}
            channel.stream = stream
            return LockstepGen(cls(self.lm.model, stream=stream, **kwargs), channel, kwargs)

        def _loop(self, gen: Any, gen_cls: Any, stream: Any) -> None:
            heartbeat.stop()
            try:
                while True:
                    with self._cv:
                        if not (self._closing or self._waiting or self._cancels or self._active):
                            self._cv.wait(timeout=HEARTBEAT_S)
                        if self._closing:
                            break
                        cancels, self._cancels = self._cancels, []
                        admit = []
                        while self._waiting and len(self._active) + len(admit) < self.max_batch:
                            admit.append(self._waiting.popleft())
                    if not (cancels or admit or self._active):
                        gen.heartbeat()
                        continue
                    self._remove(gen, cancels)
                    self._insert(gen, admit)
                    if self._active:
                        self._step(gen)
                channel.broadcast(MSG_SHUTDOWN)
            except Exception as exc:  # lockstep is broken: the server cannot go on
                msg = str(exc) if isinstance(exc, LostPeer) else f"batch step failed: {exc}"
                self._fail_active(ExecutionError(f"distributed server failed: {msg}"))
                _fatal(rank, msg)

    return LeaderScheduler


def _follow(rank: Any) -> None:
    import mlx.core as mx
    from mlx_lm.generate import BatchGenerator

    channel: Channel = rank.channel
    stream = mx.default_stream(mx.default_device())
    channel.stream = stream
    gen = None
    wait = max(10.0, HEARTBEAT_S * 10)
    while True:
        kind, obj = channel.recv_json(timeout=wait)
        if kind == MSG_SHUTDOWN:
            return
        if kind != MSG_WORK or not obj:
            continue
        for op in obj.get("ops", []):
            if op[0] == "new":
                gen = BatchGenerator(rank.lm.model, stream=stream, **op[1])
            elif gen is None:
                raise ExecutionError("rank 0 sent batch work before creating the batch")
            elif op[0] == "ins":
                # One sampler object per sequence, as on rank 0: BatchGenerator makes one
                # batched sampler call when all sequences share a sampler and one call per
                # sequence otherwise; both ranks must take the same path (same collectives).
                gen.insert(op[1], max_tokens=op[2],
                           samplers=[_follow_sampler(channel.group) for _ in op[1]])
            elif op[0] == "rm":
                gen.remove(op[1])
            elif op[0] == "next":
                with channel.watchdog.guard("a batch step", COLLECTIVE_TIMEOUT_S):
                    gen.next()


def _lead(rank: Any) -> None:
    import uvicorn

    from mlxk.server import logs
    from mlxk.server.app import create_app
    from mlxk.server.child import bind_socket
    from mlxk.server.pool import ModelPool, Target, default_resolver
    from mlxk.server.settings import ServerSettings

    spec = rank.spec
    heartbeat = Heartbeat(rank.channel)
    first = rank.ops.get()  # the launcher sends the server settings first, over stdin
    if first is None or first.get("op") != "serve":
        heartbeat.stop()
        rank.channel.broadcast(MSG_SHUTDOWN)
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

    from mlxk.engine.distributed.rank import engine as dist_engine

    pool = ModelPool(settings, resolver=resolver, loader=lambda path, key: rank.lm,
                     scheduler_factory=_scheduler_class(rank, heartbeat), prepare=dist_engine.prepare)
    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as exc:
        heartbeat.stop()
        rank.channel.broadcast(MSG_SHUTDOWN)
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
        heartbeat.stop()
        rank.channel.broadcast(MSG_SHUTDOWN)


def run(rank: Any) -> None:
    if rank.lead:
        _lead(rank)
    else:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # rank 0 decides when to stop
        _follow(rank)
    time.sleep(0)
