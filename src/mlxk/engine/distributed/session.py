"""The launching side of a distributed run: start the ranks, talk to rank 0, stop cleanly.

``DistributedSession`` is what `mlxk run --hosts` uses: it starts one rank per host
through ``engine.launcher`` (mlx.launch's machinery), waits until every rank has
loaded its shard, and then ``stream(request)`` yields the same ``Chunk``s that
``generate.stream`` yields in a single process. `serve --hosts` uses ``supervise``:
rank 0 runs the HTTP server itself, this side only forwards output and stops the
ranks on a signal or when one of them fails.
"""

from __future__ import annotations

import dataclasses
import queue
import signal
import threading
from collections.abc import Iterator
from typing import Any

from mlxk import config
from mlxk.engine.distributed import protocol as rankproto
from mlxk.engine.distributed.launch import HostSet, RankGroup, worker_command
from mlxk.engine.types import Chunk, GenerationRequest
from mlxk.errors import ExecutionError, MlxkError

_POLL_S = 0.1


def _error_from_event(ev: dict[str, Any]) -> MlxkError:
    err = ev.get("error") or {}
    from mlxk import errors

    cls: type[MlxkError] = ExecutionError
    for obj in vars(errors).values():
        if isinstance(obj, type) and issubclass(obj, MlxkError) and getattr(obj, "code", None) == err.get("type"):
            cls = obj
            break
    msg = str(err.get("message") or "a rank failed")
    try:
        return cls(msg)
    except TypeError:  # classes with required extras (AmbiguousMatch, ...)
        return ExecutionError(msg)


def request_to_dict(request: GenerationRequest) -> dict[str, Any]:
    return dataclasses.asdict(request)


def request_from_dict(d: dict[str, Any]) -> GenerationRequest:
    from mlxk.engine.types import SamplingParams

    d = dict(d)
    d["sampling"] = SamplingParams(**(d.get("sampling") or {}))
    d["stop"] = tuple(d.get("stop") or ())
    return GenerationRequest(**d)


class DistributedSession:
    """Ranks started and loaded; ``stream`` runs one request on all of them."""

    def __init__(self, hs: HostSet, spec: dict[str, Any], entry: str,
                 stdout_passthrough: bool = False) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.ready: dict[str, Any] | None = None
        self.group = RankGroup(hs, worker_command(spec, entry), self.events.put,
                               stdout_passthrough=stdout_passthrough,
                               extra_env=config.dist_timeouts_env())

    # -- waiting for rank 0 ------------------------------------------------------------------
    def _next_event(self) -> dict[str, Any]:
        while True:
            try:
                return self.events.get(timeout=_POLL_S)
            except queue.Empty:
                pass
            codes = self.group.statuses()
            if codes[0] is not None or self.group.first_failure() is not None:
                # Let rank 0 report first (it knows what stalled), then give up.
                try:
                    return self.events.get(timeout=5.0)
                except queue.Empty:
                    raise self.failure() from None

    def failure(self, cause: str | None = None) -> MlxkError:
        self.group.wait(grace=5.0)
        detail = self.group.failure_message()
        parts = [p for p in (cause, detail) if p]
        msg = "; ".join(parts) or "the ranks stopped unexpectedly"
        return ExecutionError(f"distributed run failed: {msg}", ranks=len(self.group.ranks))

    def _expect(self, ev: dict[str, Any]) -> dict[str, Any]:
        if ev.get("ev") == "error":
            exc = _error_from_event(ev)
            if ev.get("fatal", True):
                detail = self.failure(exc.message)
                raise type(exc)(detail.message) if type(exc) is ExecutionError else exc
            raise exc
        return ev

    def wait_ready(self) -> dict[str, Any]:
        ev = self._expect(self._next_event())
        if ev.get("ev") != "ready":
            raise self.failure(f"unexpected first message from rank 0: {ev.get('ev')}")
        self.ready = ev
        return ev

    # -- work ---------------------------------------------------------------------------------
    def stream(self, request: GenerationRequest) -> Iterator[Chunk]:
        self.group.send(rankproto.encode_op("generate", request=request_to_dict(request)))
        while True:
            ev = self._expect(self._next_event())
            kind = ev.get("ev")
            if kind == "chunk":
                yield Chunk(**ev["chunk"])
            elif kind == "done":
                return

    def close(self) -> list[int | None]:
        """Ask the ranks to stop, wait for them; raise when one of them failed."""
        self.group.send(rankproto.encode_op("shutdown"))
        return self.group.wait(grace=5.0, timeout=15.0)


def supervise(hs: HostSet, spec: dict[str, Any], entry: str, on_event: Any = None,
              first_op: dict[str, Any] | None = None) -> int:
    """Run the ranks of a distributed server until SIGINT/SIGTERM or a rank fails.

    Rank 0's stdout (the startup line, logs) passes through. Returns 0 after a clean
    stop; raises ExecutionError naming the failed rank otherwise.
    """
    session = DistributedSession(hs, spec, entry, stdout_passthrough=True)
    if first_op is not None:
        session.group.send(rankproto.encode_op(**first_op))
    stop = threading.Event()
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def _on_signal(signum: int, frame: Any) -> None:
        if stop.is_set():  # second signal: no more grace
            for rp in session.group.ranks:
                if rp.poll() is None:
                    rp.proc.kill()
        stop.set()

    for s in old:
        signal.signal(s, _on_signal)
    try:
        error: MlxkError | None = None
        while not stop.is_set():
            try:
                ev = session.events.get(timeout=_POLL_S)
            except queue.Empty:
                codes = session.group.statuses()
                if any(c is not None for c in codes):
                    try:  # rank 0's own account of what happened, when it has one
                        ev = session.events.get(timeout=5.0)
                    except queue.Empty:
                        break
                else:
                    continue
            if ev.get("ev") == "error":
                error = _error_from_event(ev)
                break
            if on_event is not None:
                on_event(ev)
        if stop.is_set():
            session.group.send(rankproto.encode_op("shutdown"))
            session.group.wait(grace=5.0, timeout=15.0)
            return 0
        session.group.wait(grace=5.0)
        detail = session.group.failure_message()
        cause = error.message if error else None
        if cause is None and detail is None:
            return 0
        raise ExecutionError("distributed server stopped: " + "; ".join(p for p in (cause, detail) if p))
    finally:
        session.group.shutdown(grace=2.0)
        for s, h in old.items():
            signal.signal(s, h)
