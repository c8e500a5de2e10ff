"""ModelPool: which models are loaded, loading on demand, LRU + memory budget, idle unload.

A client names a model; the pool resolves that name against the cache only
(never a path, never a download), loads it on first use into its own
``BatchScheduler`` thread and keeps it while it is used. ``--max-loaded`` and
the memory budget evict the least recently used idle model; ``--keep-alive``
unloads idle models (0: right after each request, -1: never). The ``--model``
given at start may be a path; it is preloaded and pinned (never evicted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlxk import platform as plat
from mlxk.errors import (
    MlxkError,
    ModelNotFound,
    NotRuntimeCompatible,
    ServerBusy,
    ValidationError,
)
from mlxk.server.metrics import Metrics
from mlxk.server.settings import ServerSettings

log = logging.getLogger("mlxk.server")
WEIGHT_SUFFIXES = (".safetensors", ".npz", ".gguf", ".bin")


@dataclass(eq=False)
class ModelEntry:
    key: str                        # the id clients see (org/name, or a local dir's name)
    path: Path
    size_bytes: int
    pinned: bool = False
    scheduler: Any = None           # BatchScheduler
    lm: Any = None                  # LoadedModel once ready
    in_use: int = 0
    loads: int = 0
    last_used: float = field(default_factory=time.monotonic)
    ready: asyncio.Future | None = None

    @property
    def loaded(self) -> bool:
        return self.lm is not None


@dataclass(frozen=True)
class Target:
    """A resolved, loadable model."""

    key: str
    path: Path


def is_path_like(name: str) -> bool:
    """Names a client may never use: anything that could address the filesystem."""
    n = name.strip()
    return (n.startswith(("/", ".", "~", "\\")) or "\\" in n or ".." in n
            or (len(n) > 1 and n[1] == ":") or "\x00" in n)


def weights_size(path: Path) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for p in path.iterdir():
            if p.name.endswith(WEIGHT_SUFFIXES):
                with contextlib.suppress(OSError):
                    total += p.stat().st_size
    return total


def default_resolver(name: str) -> Target:
    """Resolve a client's model name in the cache; refuse paths, embeddings, unrunnable models."""
    from mlxk.cache.detect import describe
    from mlxk.cache.resolve import resolve, validate_name

    if is_path_like(name):
        raise ValidationError(f"model '{name}' is not a model name (paths are not accepted)",
                              param="model")
    base = name.rsplit("@", 1)[0]
    validate_name(base)
    resolved = resolve(name)
    if not resolved.cached:
        raise ValidationError(f"model '{name}' is not in the cache", param="model")
    desc = describe(resolved.path)
    if desc.model_type == "embedding":
        raise ValidationError(f"model '{resolved.name}' is an embedding model; use /v1/embeddings",
                              param="model")
    if not desc.runtime_compatible:
        raise NotRuntimeCompatible(f"model '{resolved.name}' cannot run here: {desc.runtime_reason}")
    key = resolved.name
    if getattr(resolved, "revision_explicit", False) and resolved.commit:
        key = f"{resolved.name}@{resolved.commit[:12]}"
    return Target(key, resolved.path)


def default_loader(path: Path, name: str) -> Any:
    from mlxk.engine.choose import load

    return load(path, name=name)


def default_prepare(lm: Any, request: Any) -> Any:
    from mlxk.engine.choose import prepare

    return prepare(lm, request)


def scheduler_class(path: Path) -> Any:
    """Vision models (with the extra installed) run on the vision scheduler, the rest batch."""
    from mlxk.engine.choose import uses_vision_engine

    if uses_vision_engine(path):
        from mlxk.engine.vision.scheduler import VisionScheduler

        return VisionScheduler
    from mlxk.engine.batch import BatchScheduler

    return BatchScheduler


class ModelPool:
    def __init__(self, settings: ServerSettings, metrics: Metrics | None = None,
                 resolver: Callable[[str], Target] = default_resolver,
                 loader: Callable[[Path, str], Any] = default_loader,
                 scheduler_factory: Callable[..., Any] | None = None,
                 prepare: Callable[[Any, Any], Any] = default_prepare) -> None:
        self.settings = settings
        self.prepare = prepare
        self.metrics = metrics or Metrics()
        self._resolver = resolver
        self._loader = loader
        self._scheduler_factory = scheduler_factory
        self._entries: dict[str, ModelEntry] = {}
        self._aliases: dict[str, str] = {}       # client name -> entry key (loaded models)
        self._lock = asyncio.Lock()
        self._reaper: asyncio.Task | None = None
        self.default_model: str | None = None
        total = plat.memory_total_bytes() or 0
        self.budget = settings.memory_budget_bytes or int(total * 0.75) or None

    # --- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        if self.settings.model:
            await self.preload(self.settings.model)
        if self.settings.keep_alive > 0:
            self._reaper = asyncio.create_task(self._reap_forever())

    async def preload(self, ref: str) -> ModelEntry | None:
        """Load the ``--model`` given at start (a name or a path) and pin it."""
        target = await asyncio.to_thread(_resolve_start_model, ref)
        if await asyncio.to_thread(_is_encoder, target.path):  # served by /v1/embeddings
            from mlxk.server.routes_embeddings import embedding_models

            await embedding_models(self).preload(target.key, target.path)
            return None
        entry = await self._ensure(target, pinned=True)
        self._aliases[ref] = entry.key
        self.default_model = entry.key
        return entry

    async def close(self) -> None:
        if self._reaper:
            self._reaper.cancel()
        for entry in list(self._entries.values()):
            await self._unload(entry)

    # --- use ------------------------------------------------------------------------
    async def acquire(self, name: str | None) -> ModelEntry:
        """The loaded model for ``name`` (loading it if needed), marked in use. Pair with release()."""
        if not name:
            if self.default_model is None:
                raise ValidationError("'model' is required (the server has no default model)",
                                      param="model")
            name = self.default_model
        key = self._aliases.get(name) or name
        entry = self._entries.get(key)
        if entry is None:
            target = await asyncio.to_thread(self._resolver, name)
            entry = await self._ensure(target)
            self._aliases[name] = entry.key
        elif entry.ready is not None and not entry.ready.done():
            await asyncio.shield(entry.ready)
        entry.in_use += 1
        entry.last_used = time.monotonic()
        return entry

    def release(self, entry: ModelEntry) -> None:
        entry.in_use = max(0, entry.in_use - 1)
        entry.last_used = time.monotonic()
        if entry.in_use == 0 and self.settings.keep_alive == 0 and not entry.pinned:
            asyncio.get_running_loop().create_task(self._unload_if_idle(entry))

    def loaded_names(self) -> list[str]:
        return sorted(k for k, e in self._entries.items() if e.loaded)

    def entry(self, key: str) -> ModelEntry | None:
        return self._entries.get(key)

    @property
    def used_bytes(self) -> int:
        return sum(e.size_bytes for e in self._entries.values())

    # --- internals -------------------------------------------------------------------
    async def _ensure(self, target: Target, pinned: bool = False) -> ModelEntry:
        async with self._lock:
            entry = self._entries.get(target.key)
            if entry is None:
                entry = ModelEntry(target.key, target.path, weights_size(target.path), pinned=pinned)
                await self._make_room(entry)
                entry.ready = asyncio.get_running_loop().create_future()
                self._entries[entry.key] = entry
                asyncio.get_running_loop().create_task(self._load(entry))
            entry.pinned = entry.pinned or pinned
        await asyncio.shield(entry.ready)
        return entry

    async def _make_room(self, new: ModelEntry) -> None:
        def over() -> bool:
            too_many = len(self._entries) + 1 > max(1, self.settings.max_loaded)
            too_big = self.budget is not None and self.used_bytes + new.size_bytes > self.budget
            return too_many or too_big

        if self.budget is not None and new.size_bytes > self.budget:
            raise ServerBusy(f"model {new.key} ({new.size_bytes} bytes) exceeds the memory budget "
                             f"({self.budget} bytes)")
        while over():
            idle = [e for e in self._entries.values() if e.in_use == 0 and not e.pinned and e.loaded]
            if not idle:
                raise ServerBusy(f"cannot load {new.key} now: the loaded models are busy "
                                 f"(--max-loaded {self.settings.max_loaded}); retry later")
            await self._unload(min(idle, key=lambda e: e.last_used))

    def _make_scheduler(self, entry: ModelEntry) -> Any:
        s, m, key = self.settings, self.metrics, entry.key
        path = entry.path

        def on_finish(stats: Any) -> None:
            m.tokens_in.labels(key).inc(stats.prompt_tokens)
            m.tokens_out.labels(key).inc(stats.completion_tokens)
            if stats.ttft_s is not None:
                m.ttft.labels(key).observe(stats.ttft_s)
            if stats.generation_tps is not None:
                m.tps.labels(key).observe(stats.generation_tps)

        factory = self._scheduler_factory or scheduler_class(path)
        return factory(lambda: self._loader(path, key), name=key, max_batch=s.max_batch,
                       max_queue=s.max_queue, on_finish=on_finish)

    async def _load(self, entry: ModelEntry) -> None:
        assert entry.ready is not None
        t0 = time.perf_counter()
        try:
            entry.scheduler = self._make_scheduler(entry)
            entry.lm = await entry.scheduler.ready()
        except BaseException as exc:
            self._entries.pop(entry.key, None)
            if entry.scheduler is not None:
                await asyncio.to_thread(entry.scheduler.close)
            entry.ready.set_exception(_load_error(entry.key, exc))
            entry.ready.exception()  # mark retrieved; waiters re-raise it
            return
        entry.loads += 1
        sched = entry.scheduler
        self.metrics.active.labels(entry.key).set_function(lambda: sched.active_count)
        self.metrics.queue_depth.labels(entry.key).set_function(lambda: sched.queue_depth)
        self.metrics.cached_tokens.labels(entry.key).set_function(
            lambda: getattr(sched, "cached_prompt_tokens", 0))
        self.metrics.loads.labels(entry.key).inc()
        self.metrics.load_seconds.labels(entry.key).observe(time.perf_counter() - t0)
        self.metrics.loaded.set(len(self.loaded_names()))
        log.info("loaded %s in %.2fs", entry.key, time.perf_counter() - t0)
        entry.ready.set_result(entry)

    async def _unload_if_idle(self, entry: ModelEntry) -> None:
        async with self._lock:
            if entry.in_use == 0 and self._entries.get(entry.key) is entry and entry.loaded:
                await self._unload(entry)

    async def _unload(self, entry: ModelEntry) -> None:
        self._entries.pop(entry.key, None)
        self._aliases = {k: v for k, v in self._aliases.items() if v != entry.key}
        if entry.scheduler is not None:
            await asyncio.to_thread(entry.scheduler.close)
        was_loaded = entry.lm is not None
        entry.lm = None
        entry.scheduler = None
        if was_loaded:
            for gauge in (self.metrics.active, self.metrics.queue_depth, self.metrics.cached_tokens):
                with contextlib.suppress(KeyError):
                    gauge.remove(entry.key)
            self.metrics.unloads.labels(entry.key).inc()
            log.info("unloaded %s", entry.key)
        self.metrics.loaded.set(len(self.loaded_names()))

    async def _reap_forever(self) -> None:
        period = max(0.5, min(self.settings.keep_alive / 4, 5.0))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for entry in list(self._entries.values()):
                if (entry.loaded and not entry.pinned and entry.in_use == 0
                        and now - entry.last_used >= self.settings.keep_alive):
                    await self._unload_if_idle(entry)


def _resolve_start_model(ref: str) -> Target:
    """``--model`` may be a path (operator's choice) or any cache reference."""
    from mlxk.cache.resolve import resolve

    resolved = resolve(ref)
    key = resolved.name if resolved.cached else Path(resolved.path).name
    return Target(key, Path(resolved.path))


def _is_encoder(path: Path) -> bool:
    from mlxk.engine.embeddings.config import is_embedding_model

    return is_embedding_model(path)


def _load_error(key: str, exc: BaseException) -> MlxkError:
    if isinstance(exc, MlxkError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return ModelNotFound(f"model {key}: {exc}")
    return NotRuntimeCompatible(f"model {key} failed to load: {type(exc).__name__}: {exc}")
