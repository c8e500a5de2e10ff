"""What the pool tells about its models: the ``ps`` snapshot (also Ollama's ``/api/ps``) and each
model's Prometheus series. Gauges read the live scheduler through callbacks, so they are bound when
a model becomes ready and removed when it unloads (a stale label would report a gone model)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlxk.server.metrics import Metrics
from mlxk.server.pool_entry import ModelEntry

if TYPE_CHECKING:
    from prometheus_client import Gauge

    from mlxk.engine.batch import BatchScheduler, RequestStats


@dataclass(frozen=True)
class LoadedModelInfo:
    """One loaded (or loading) model as ``ps`` shows it; times are wall-clock epoch seconds."""

    name: str
    kind: str                       # chat | embedding | vision
    state: str                      # loading | idle | busy | stopping
    memory_bytes: int               # bytes of its weights
    active_requests: int
    queued_requests: int
    loaded_at: float | None         # None while loading
    expires_at: float | None        # None: never (pinned, keep-alive -1, or still loading)
    keep_alive: float               # seconds; -1 never
    pinned: bool


def snapshot_of(entries: Iterable[ModelEntry], keep_alive_of: Callable[[ModelEntry], float]) -> list[LoadedModelInfo]:
    """``entries`` as ``ps`` shows them, sorted by name; a busy model expires a keep-alive from now."""
    now_wall, now = time.time(), time.monotonic()
    out = []
    for e in sorted(entries, key=lambda e: e.key):
        sched = e.scheduler if e.loaded else None
        active = int(getattr(sched, "active_count", 0) or 0)
        queued = int(getattr(sched, "queue_depth", 0) or 0)
        ka = keep_alive_of(e)
        if not e.loaded:
            state, expires = "loading", None
        else:
            state = "stopping" if e.stopping else "busy" if e.in_use or active or queued else "idle"
            expires = None if e.pinned or ka < 0 else (
                now_wall + ka if state == "busy" else now_wall + max(0.0, e.last_used + ka - now))
        kind = "embedding" if e.job == "embedding" else "chat"
        out.append(LoadedModelInfo(e.key, kind, state, e.size_bytes, active, queued,
                                   e.loaded_at or None, expires, -1.0 if e.pinned else ka, e.pinned))
    return out


def scheduler_hooks(m: Metrics, key: str) -> dict[str, Callable[..., None]]:
    """The scheduler's ``on_finish`` (per request) and ``on_tokens`` (per step) for model ``key``."""

    def on_finish(stats: RequestStats) -> None:
        m.tokens_in.labels(key).inc(stats.prompt_tokens)
        m.tokens_out.labels(key).inc(stats.completion_tokens)
        if stats.ttft_s is not None:
            m.ttft.labels(key).observe(stats.ttft_s)
        if stats.generation_tps is not None:
            m.tps.labels(key).observe(stats.generation_tps)
        if stats.queue_s is not None:
            m.queue_time.labels(key).observe(stats.queue_s)
        for gap in stats.itl_s:
            m.itl.labels(key).observe(gap)

    def on_tokens(prefilled: int, decoded: int) -> None:
        if prefilled:
            m.prefill_tokens.labels(key).inc(prefilled)
        if decoded:
            m.decode_tokens.labels(key).inc(decoded)
            m.decode_steps.labels(key).inc()

    return {"on_finish": on_finish, "on_tokens": on_tokens}


def watch_scheduler(m: Metrics, key: str, sched: BatchScheduler) -> None:
    """Bind model ``key``'s gauges to its scheduler once it is ready."""
    m.active.labels(key).set_function(lambda: sched.active_count)
    m.queue_depth.labels(key).set_function(lambda: sched.queue_depth)
    m.cached_tokens.labels(key).set_function(lambda: getattr(sched, "cached_prompt_tokens", 0))
    m.disk_tokens.labels(key).set_function(lambda: getattr(sched, "disk_prompt_tokens", 0))
    m.prefix_bytes.labels(key).set_function(lambda: getattr(sched, "prefix_cache_bytes", 0))
    _watch_speculation(m, key, sched)


def _watch_speculation(m: Metrics, key: str, sched: BatchScheduler) -> None:
    """Drafted / accepted tokens and their ratio, for a model served with speculation."""
    counts = getattr(sched, "spec_counts", None)
    if counts is None or not getattr(sched, "speculates", False):
        return
    m.spec_drafted.labels(key).set_function(lambda: counts.drafted)
    m.spec_accepted.labels(key).set_function(lambda: counts.accepted)
    m.spec_rate.labels(key).set_function(lambda: counts.metrics()["acceptance_rate"])


def forget_scheduler(m: Metrics, key: str) -> None:
    """Drop model ``key``'s scheduler gauges (it unloaded)."""
    gauges: tuple[Gauge, ...] = (m.active, m.queue_depth, m.cached_tokens, m.disk_tokens,
                                 m.prefix_bytes, m.spec_drafted, m.spec_accepted, m.spec_rate)
    for gauge in gauges:
        with contextlib.suppress(KeyError):
            gauge.remove(key)
