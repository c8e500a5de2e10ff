"""Inside one rank: the MLX group, the watchdog, the control channel, the sharded load.

Every rank runs the same code; rank 0 leads. Requests travel from rank 0 to the
other ranks through MLX collectives only (``all_sum`` with zeros from the
followers is a broadcast), so the ranks stay in lockstep: same request, same seed,
same steps, same collectives inside the sharded forward pass.

Every collective runs under the ``Watchdog``: a blocked ``mx.eval`` cannot be
interrupted from Python, so when a deadline passes the watchdog reports which
operation stalled and ends the process (``EXIT_LOST_PEER``); the launcher then
stops the other ranks. A peer that dies on loopback usually surfaces sooner as a
``RuntimeError`` from the ring backend, which ``lost_peer`` turns into the same
clear error.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlxk import config
from mlxk.engine.distributed import protocol as rankproto

# Read once per rank process (a rank lives for one run or one server).
# Followers expect a message (work or heartbeat) from rank 0 at least this often.
HEARTBEAT_S = config.dist_heartbeat_s()
# Deadline for one collective / one generation step; generous: a cold prefill of a
# long prompt on a slow machine is one step.
COLLECTIVE_TIMEOUT_S = config.dist_timeout_s()

MSG_NOOP, MSG_WORK, MSG_SHUTDOWN = 0, 1, 2


class LostPeer(RuntimeError):
    """A collective failed or stalled: another rank is gone."""


def _emit_stderr(text: str) -> None:
    try:
        sys.stderr.write(text.rstrip("\n") + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


# The soft watchdog below needs the GIL to report; some MLX calls (mx.clear_cache waiting on a
# stream stuck in a collective) block while holding it. The kernel's interval timer does not:
# SIGALRM with its default action ends the process HARD_GRACE_S after the soft deadline, and
# the launcher reports that signal as a collective that timed out.
HARD_GRACE_S = 3.0


def _set_alarm(seconds: float) -> None:
    import signal

    if hasattr(signal, "setitimer"):
        signal.setitimer(signal.ITIMER_REAL, max(0.0, seconds))


class Watchdog:
    """Ends the process when a guarded operation overruns its deadline."""

    def __init__(self, rank: int, on_fire: Callable[[str], None] | None = None) -> None:
        import signal

        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGALRM"):
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
        self.rank = rank
        self._lock = threading.Lock()
        self._deadline: float | None = None
        self._what = ""
        self._timeout = 0.0
        self._on_fire = on_fire
        t = threading.Thread(target=self._loop, name="mlxk-watchdog", daemon=True)
        t.start()

    def _loop(self) -> None:
        while True:
            time.sleep(0.1)
            with self._lock:
                deadline, what, timeout = self._deadline, self._what, self._timeout
            if deadline is not None and time.monotonic() > deadline:
                self.fire(f"rank {self.rank}: no answer from the other ranks for {timeout:.0f}s "
                          f"during {what}; a rank or its host is gone")

    def fire(self, message: str) -> None:
        if self._on_fire is not None:
            try:
                self._on_fire(message)
            except Exception:
                pass
        if self.rank != 0:  # rank 0 reports through its event pipe
            _emit_stderr(f"mlxk rank {self.rank}: Error: {message}")
        os._exit(rankproto.EXIT_LOST_PEER)

    def arm(self, what: str, timeout: float = COLLECTIVE_TIMEOUT_S) -> None:
        with self._lock:
            self._deadline, self._what, self._timeout = time.monotonic() + timeout, what, timeout
            _set_alarm(timeout + HARD_GRACE_S)

    def kick(self) -> None:
        with self._lock:
            if self._deadline is not None:
                self._deadline = time.monotonic() + self._timeout
                _set_alarm(self._timeout + HARD_GRACE_S)

    def disarm(self) -> None:
        with self._lock:
            self._deadline = None
            _set_alarm(0)

    @contextmanager
    def guard(self, what: str, timeout: float = COLLECTIVE_TIMEOUT_S) -> Iterator[None]:
        self.arm(what, timeout)
        try:
            yield
        except RuntimeError as exc:
            if is_peer_error(exc):
                raise LostPeer(f"rank {self.rank}: lost the connection to another rank during "
                               f"{what} ({exc})") from exc
            raise
        finally:
            self.disarm()


def is_peer_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("peer", "connection", "socket", "[ring]", "[mpi]", "nccl"))


def init_group(backend: str, watchdog: Watchdog | None = None, timeout: float = 120.0) -> Any:
    """``mx.distributed.init`` under a deadline (the ring backend retries connecting)."""
    import mlx.core as mx

    wd = watchdog
    if wd is not None:
        wd.arm(f"start-up of the {backend} backend (connecting to the other ranks)", timeout)
    try:
        group = mx.distributed.init(strict=True, backend=backend)
    except RuntimeError as exc:
        raise LostPeer(f"could not start the {backend} backend: {exc}") from exc
    finally:
        if wd is not None:
            wd.disarm()
    return group


class Channel:
    """Rank 0 -> all ranks messages over MLX collectives (``all_sum`` as broadcast)."""

    def __init__(self, group: Any, watchdog: Watchdog, stream: Any = None) -> None:
        self.group = group
        self.rank = group.rank()
        self.watchdog = watchdog
        # Control collectives run on the generation stream, after whatever model work
        # (with its own collectives) is still in flight there: same order on every rank.
        self.stream = stream

    def _sync(self) -> None:
        import mlx.core as mx

        if self.stream is not None:
            mx.synchronize(self.stream)

    def _all_sum(self, arr: Any, what: str, timeout: float) -> Any:
        import mlx.core as mx

        with self.watchdog.guard(what, timeout):
            self._sync()
            out = mx.distributed.all_sum(arr, group=self.group, stream=self.stream or mx.cpu)
            mx.eval(out)
        return out

    def broadcast(self, kind: int, payload: bytes = b"", timeout: float = COLLECTIVE_TIMEOUT_S,
                  ) -> tuple[int, bytes]:
        """Rank 0 passes ``kind``/``payload``; the others pass anything and receive them."""
        import mlx.core as mx
        import numpy as np

        lead = self.rank == 0
        hdr = mx.array([kind, len(payload)] if lead else [0, 0], dtype=mx.int32)
        kind_out, n = (int(v) for v in self._all_sum(hdr, "a request broadcast", timeout).tolist())
        if n == 0:
            return kind_out, b""
        buf = np.frombuffer(payload, dtype=np.uint8) if lead else np.zeros(n, dtype=np.uint8)
        data = self._all_sum(mx.array(buf), "a request broadcast", timeout)
        return kind_out, bytes(np.array(data, copy=False).astype(np.uint8).tobytes())

    def send_json(self, kind: int, obj: Any = None) -> None:
        self.broadcast(kind, b"" if obj is None else json.dumps(obj).encode())

    def recv_json(self, timeout: float) -> tuple[int, Any]:
        kind, data = self.broadcast(MSG_NOOP, timeout=timeout)
        return kind, (json.loads(data) if data else None)

    def gather_ints(self, value: int) -> list[int]:
        """Every rank's ``value`` (e.g. memory in KiB), in rank order."""
        import mlx.core as mx

        with self.watchdog.guard("gathering rank figures"):
            self._sync()
            out = mx.distributed.all_gather(mx.array([int(value)], dtype=mx.int32),
                                            group=self.group, stream=self.stream or mx.cpu)
            mx.eval(out)
        return [int(v) for v in out.tolist()]

    def barrier(self, what: str = "a barrier", timeout: float = COLLECTIVE_TIMEOUT_S) -> None:
        import mlx.core as mx

        self._all_sum(mx.array([1.0]), what, timeout)


def load_sharded_model(path: Path, group: Any, mode: str) -> tuple[Any, dict[str, Any]]:
    """Build the mlx-lm model lazily, shard it, then materialise only this rank's part.

    Same steps as ``mlx_lm.utils.sharded_load`` without its Hub download and without
    its need for a ``model.safetensors.index.json``: lazy weights are memory-mapped
    views, and only the slices / layers this rank keeps are ever evaluated.
    """
    import mlx.core as mx
    from mlx_lm.utils import load_model

    model, config = load_model(path, lazy=True, strict=False)
    if mode == "tensor":
        model.shard(group)
    elif mode == "pipeline":
        model.model.pipeline(group)
    else:  # pragma: no cover - plan() validated this
        raise ValueError(mode)
    mx.eval(model.parameters())
    return model, config


def load_sharded(ref: str, name: str | None, group: Any, mode: str) -> Any:
    """Resolve ``ref`` in this rank's own cache, shard it, and hand the shard to the engine's
    ``loader.load_model``, so prompts, decoding, stops and reasoning run the single-process code."""
    from mlxk.cache import runnable
    from mlxk.engine import loader

    resolved = runnable.resolve_runnable(ref, "text", runnable.CLI_TEXT)
    path = Path(resolved.path)
    model, config = load_sharded_model(path, group, mode)
    return loader.load_model(path, name or resolved.name, model=model, config=config)
