"""The life of one rank: start, load its shard, then lead (rank 0) or follow.

``main`` is called by the rank's entry point (``python -m mlxk.operations.rank SPEC_JSON``),
started by ``engine.distributed.launch`` through mlx.launch's launch script, which sets
``MLX_RANK`` (and ``MLX_HOSTFILE`` for the ring backend). Every rank loads only its
shard; rank 0 leads: it takes work from the launching process (``run``) or from
HTTP clients (``serve``) and broadcasts it to the other ranks through MLX
collectives, so all ranks run the same steps. Any failure ends the rank with an
error event (rank 0) and a non-zero exit; a stalled collective is ended by the
watchdog (``engine.distributed``).
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mlxk import config
from mlxk.engine.distributed import protocol as rankproto
from mlxk.engine.distributed.rank.group import (
    COLLECTIVE_TIMEOUT_S,
    HEARTBEAT_S,
    MSG_NOOP,
    MSG_SHUTDOWN,
    MSG_WORK,
    Channel,
    LostPeer,
    Watchdog,
)
from mlxk.engine.types import Chunk, GenerationRequest, LoadedModel
from mlxk.errors import ExecutionError, MlxkError

if TYPE_CHECKING:
    from mlxk.engine.distributed.rank.serve import ServeHttp


class Events:
    """Rank 0's event lines to the launching process (other ranks stay silent)."""

    def __init__(self, lead: bool) -> None:
        self.lead = lead
        self._lock = threading.Lock()

    def emit(self, kind: str, **fields: Any) -> None:
        if not self.lead:
            return
        line = rankproto.encode_event(kind, **fields)
        with self._lock:
            try:
                sys.stdout.write(line)
                sys.stdout.flush()
            except (OSError, ValueError):
                pass

    def error(self, code: str, message: str, fatal: bool = True) -> None:
        self.emit("error", error={"type": code, "message": message}, fatal=fatal)


def _stdin_reader(q: queue.Queue) -> None:
    """Ops from the launcher; EOF (the launcher went away) means shut down."""
    reader = rankproto.OpReader()
    for raw in sys.stdin:
        op = reader.feed(raw)
        if op is not None:
            q.put(op)
    q.put(None)


class Rank:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.rank = config.mlx_rank()
        self.lead = self.rank == 0
        self.events = Events(self.lead)
        self.watchdog = Watchdog(self.rank, on_fire=lambda m: self.events.error("execution_error", m))
        self.ops: queue.Queue = queue.Queue()
        self.lm: LoadedModel | None = None
        self.channel: Channel | None = None

    # -- start-up ---------------------------------------------------------------------------
    def start(self) -> None:
        import mlx.core as mx
        from mlx_lm.generate import generation_stream

        from mlxk.engine.distributed.rank.group import init_group, load_sharded

        threading.Thread(target=_stdin_reader, args=(self.ops,), daemon=True).start()
        group = init_group(self.spec.get("backend", "ring"), self.watchdog)
        # The backend knows the rank for sure (MLX_RANK is only the ring/nccl launch protocol).
        self.rank = self.watchdog.rank = group.rank()
        self.lead = self.events.lead = self.rank == 0
        if group.size() < 2:
            raise ExecutionError("the distributed backend started with a single rank; "
                                 "check the hostfile and backend")
        t0 = time.perf_counter()
        self.watchdog.arm("loading the model shards", max(600.0, COLLECTIVE_TIMEOUT_S))
        try:
            self.lm = load_sharded(self.spec["model"], self.spec.get("name"), group, self.spec["mode"])
        finally:
            self.watchdog.disarm()
        self.channel = Channel(group, self.watchdog, stream=generation_stream)
        # ranks finish loading at different times (disk, cores): the load deadline applies
        self.channel.barrier("waiting for every rank to load its shard", max(600.0, COLLECTIVE_TIMEOUT_S))
        load_s = time.perf_counter() - t0
        mem = self.channel.gather_ints(int(mx.get_active_memory()) // 1024)
        peak = self.channel.gather_ints(int(mx.get_peak_memory()) // 1024)
        self.events.emit("ready", load_seconds=load_s, memory_kib=mem, peak_memory_kib=peak,
                         world_size=group.size(), mode=self.spec["mode"], name=self.lm.name)

    # -- run: one request at a time from the launcher ------------------------------------
    def lead_run(self) -> None:
        assert self.channel is not None
        from mlxk.engine.distributed.session import request_from_dict, request_to_dict

        while True:
            try:
                op = self.ops.get(timeout=HEARTBEAT_S)
            except queue.Empty:
                self.channel.broadcast(MSG_NOOP)
                continue
            if op is None or op.get("op") == "shutdown":
                self.channel.broadcast(MSG_SHUTDOWN)
                return
            if op.get("op") != "generate":
                continue
            req = request_from_dict(op["request"])
            req = _with_seed(req, self.spec.get("seed"))
            try:
                self.channel.send_json(MSG_WORK, request_to_dict(req))
                for chunk in self._generate(req):
                    self.events.emit("chunk", chunk=_chunk_dict(chunk))
                self.events.emit("done")
            except MlxkError as exc:  # a request error: report, keep serving
                self.events.error(exc.code, exc.message, fatal=False)

    def follow(self) -> None:
        assert self.channel is not None
        from mlxk.engine.distributed.session import request_from_dict

        wait = max(10.0, HEARTBEAT_S * 10)
        while True:
            kind, obj = self.channel.recv_json(timeout=wait)
            if kind == MSG_SHUTDOWN:
                return
            if kind == MSG_WORK and obj is not None:
                try:
                    for _ in self._generate(request_from_dict(obj)):
                        pass
                except MlxkError:
                    pass  # rank 0 reports request errors

    def _generate(self, req: GenerationRequest) -> Iterator[Chunk]:
        # The single-process engine on the sharded model: every rank runs the same request
        # with the same seed; the collectives inside the sharded forward pass keep them in step.
        from mlxk.engine.generate import stream

        with self.watchdog.guard("a generation step", COLLECTIVE_TIMEOUT_S):
            for chunk in stream(self.lm, req):
                self.watchdog.kick()
                yield chunk


def _with_seed(req: GenerationRequest, seed: int | None) -> GenerationRequest:
    """All ranks must draw the same random numbers: pin a seed when the client gave none."""
    import dataclasses

    if req.sampling.seed is not None or seed is None:
        return req
    return dataclasses.replace(req, sampling=dataclasses.replace(req.sampling, seed=int(seed)))


def _chunk_dict(chunk: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(chunk)


def _report(rank: Rank, code: str, message: str) -> None:
    """Rank 0 tells the launcher (which prints it once); the others write to stderr."""
    if rank.lead:
        rank.events.error(code, message)
    else:
        sys.stderr.write(f"mlxk rank {rank.rank}: Error: {message}\n")
        sys.stderr.flush()


def main(argv: list[str] | None, serve_http: ServeHttp) -> int:
    """Run this rank to the end; ``serve_http`` is rank 0's HTTP server for `serve --hosts`."""
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(argv[0])
    rank = Rank(spec)
    try:
        rank.start()
        if spec.get("command") == "serve":
            from mlxk.engine.distributed.rank import serve as dist_serve

            dist_serve.run(rank, serve_http)
        elif rank.lead:
            rank.lead_run()
        else:
            rank.follow()
    except LostPeer as exc:
        _report(rank, "execution_error", str(exc))
        os._exit(rankproto.EXIT_LOST_PEER)
    except MlxkError as exc:
        _report(rank, exc.code, exc.message)
        os._exit(rankproto.EXIT_ERROR)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            os._exit(130)
        import traceback

        traceback.print_exc()
        rank.events.error("InternalError", f"rank {rank.rank}: {type(exc).__name__}: {exc}")
        os._exit(rankproto.EXIT_ERROR)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: MLX's backend threads may still hold sockets open.
    os._exit(0)
