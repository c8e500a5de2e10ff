"""`serve --hosts`: rank 0 runs the normal HTTP server; every rank steps the same batch.

Rank 0 uses the server's app, pool and ``BatchScheduler`` unchanged (the HTTP side is
``server.distributed``, handed in by the rank's entry point), except
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

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
from mlxk.errors import ExecutionError

if TYPE_CHECKING:
    from mlxk.engine.batch import BatchScheduler
    from mlxk.engine.distributed.rank.worker import Rank


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


def _fatal(rank: Rank, message: str) -> None:
    rank.events.error("execution_error", message)
    threading.Timer(1.0, lambda: os._exit(rankproto.EXIT_LOST_PEER)).start()


def _scheduler_class(rank: Rank, heartbeat: Heartbeat) -> type[BatchScheduler]:
    from mlxk.engine.batch import BatchScheduler

    channel: Channel = rank.channel

    class LeaderScheduler(BatchScheduler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # No prefix cache: the other ranks would need the same cached KV state (not
            # broadcast), so every sequence prefills its whole prompt on every rank.
            kwargs["prompt_cache_size"] = 0
            super().__init__(*args, **kwargs)

        # Idle, rank 0 still feeds the followers' deadline.
        idle_wait = HEARTBEAT_S

        def new_generator(self, cls: Any, stream: Any) -> Any:
            assert self.lm is not None
            kwargs = self.generator_kwargs()
            channel.stream = stream
            return LockstepGen(cls(self.lm.model, stream=stream, **kwargs), channel, kwargs)

        def on_loop_start(self, gen: Any) -> None:
            heartbeat.stop()   # the loop's on_idle heartbeats from now on

        def on_idle(self, gen: Any) -> None:
            gen.heartbeat()

        def on_loop_end(self, gen: Any) -> None:
            channel.broadcast(MSG_SHUTDOWN)

        def on_step_error(self, exc: Exception) -> bool:
            # Lockstep is broken (a step or a heartbeat failed): the server cannot go on.
            msg = str(exc) if isinstance(exc, LostPeer) else f"batch step failed: {exc}"
            self.fail_active(ExecutionError(f"distributed server failed: {msg}"))
            _fatal(rank, msg)
            return False

    return LeaderScheduler


def _follow(rank: Rank) -> None:
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


@dataclass
class Leader:
    """What rank 0's HTTP server (``server.distributed``) needs from the lockstep machinery."""

    rank: Rank
    heartbeat: Heartbeat
    scheduler_factory: type[BatchScheduler]

    def release_followers(self) -> None:
        """Stop the heartbeat and tell the other ranks to exit (rank 0 will not step a batch)."""
        self.heartbeat.stop()
        self.rank.channel.broadcast(MSG_SHUTDOWN)


ServeHttp = Callable[[Leader], None]


def run(rank: Rank, serve_http: ServeHttp) -> None:
    """Rank 0 serves HTTP (``serve_http``, given by the entry point); the others follow its steps."""
    if rank.lead:
        heartbeat = Heartbeat(rank.channel)
        serve_http(Leader(rank, heartbeat, _scheduler_class(rank, heartbeat)))
    else:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # rank 0 decides when to stop
        _follow(rank)
    time.sleep(0)
