"""ModelPool: which models are loaded, loading on demand, LRU + memory budget, idle unload.

A client names a model; the pool resolves that name against the cache only
(never a path, never a download), loads it on first use and keeps it while it is
used: a text model into its own ``BatchScheduler`` thread, an embedding model as
the encoder ``/v1/embeddings`` calls. Both kinds share one set of rules:
``--max-loaded`` and the memory budget evict the least recently used idle model;
``--keep-alive`` unloads idle models (0: right after each request, -1: never).
The ``--model`` given at start may be a path; it is preloaded and pinned (never
evicted) and answers requests that name no model.

This module is the lifecycle; its parts live next to it: the records (``pool_entry``), default
resolvers and loaders (``pool_loaders``), building a scheduler (``pool_scheduler``), served LoRA
adapters riding on their base (``pool_adapters``), ``ps`` and Prometheus (``pool_report``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mlxk import platform as plat
from mlxk.cache.runnable import Job
from mlxk.engine.types import CacheOptions, GenerationRequest, LoadedModel
from mlxk.errors import MlxkError, ModelNotFound, ServerBusy, ValidationError
from mlxk.server.loras import Adapters
from mlxk.server.metrics import Metrics
from mlxk.server.pool_adapters import (
    adapter_target,
    ensure_on_base,
    entry_size,
    model_count,
    riders,
    touch,
)
from mlxk.server.pool_entry import ModelEntry, Target
from mlxk.server.pool_loaders import (
    default_embedding_loader,
    default_loader,
    default_prepare,
    default_resolver,
    embedding_resolver,
    load_error,
    resolve_start_model,
)
from mlxk.server.pool_report import LoadedModelInfo, forget_scheduler, snapshot_of, watch_scheduler
from mlxk.server.pool_scheduler import SchedulerMaker
from mlxk.server.settings import OptionValue, ServerSettings

if TYPE_CHECKING:
    from mlxk.engine.batch import BatchScheduler
    from mlxk.engine.embeddings.encoder import EmbeddingModel
    from mlxk.engine.generate import Prepared

__all__ = ["LoadedModelInfo", "ModelEntry", "ModelPool", "Target", "default_resolver"]

log = logging.getLogger("mlxk.server")
NO_DEFAULT = {"text": "'model' is required (the server has no default model)",
              "embedding": "'model' is required (an embedding model in the cache)"}


class ModelPool:
    def __init__(self, settings: ServerSettings, metrics: Metrics | None = None,
                 resolver: Callable[[str], Target] = default_resolver,
                 loader: Callable[..., LoadedModel] = default_loader,
                 scheduler_factory: Callable[..., BatchScheduler] | None = None,
                 prepare: Callable[[LoadedModel, GenerationRequest], Prepared] = default_prepare,
                 embedding_resolver: Callable[[str], Target] = embedding_resolver,
                 embedding_loader: Callable[[Path, str], EmbeddingModel] = default_embedding_loader) -> None:
        self.settings = settings
        self.prepare = prepare
        self.metrics = metrics or Metrics()
        self._resolvers: dict[Job, Callable[[str], Target]] = {"text": resolver,
                                                               "embedding": embedding_resolver}
        self._embedding_loader = embedding_loader
        self._entries: dict[str, ModelEntry] = {}
        self._aliases: dict[tuple[Job, str], str] = {}   # (job, client name) -> entry key
        self._lock = asyncio.Lock()
        self._reaper: asyncio.Task | None = None
        self.defaults: dict[Job, str | None] = {"text": None, "embedding": None}
        total = plat.memory_total_bytes() or 0
        self.budget = settings.memory_budget_bytes or int(total * 0.75) or None
        self.adapters = Adapters(settings.adapters)
        self._schedulers = SchedulerMaker(settings, self.metrics, self.adapters, loader, scheduler_factory)

    # --- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        if self.settings.model:
            await self.preload(self.settings.model)
        self._reaper = asyncio.create_task(self._reap_forever())

    @property
    def default_model(self) -> str | None:
        """The preloaded model (either kind): what the server says it serves."""
        return self.defaults["text"] or self.defaults["embedding"]

    @default_model.setter
    def default_model(self, key: str | None) -> None:
        self.defaults["text"] = key

    async def preload(self, ref: str) -> ModelEntry:
        """Load the ``--model`` given at start (a name or a path) and pin it."""
        target = await asyncio.to_thread(resolve_start_model, ref)
        entry = await self._ensure(target, pinned=True)
        self._aliases[(target.job, ref)] = entry.key
        self.defaults[target.job] = entry.key
        return entry

    async def close(self) -> None:
        if self._reaper:
            self._reaper.cancel()
        for entry in list(self._entries.values()):
            await self._unload(entry)

    # --- use ------------------------------------------------------------------------
    async def acquire(self, name: str | None, job: Job = "text") -> ModelEntry:
        """The loaded model for ``name`` (loading it if needed), marked in use. Pair with release()."""
        if not name:
            default = self.defaults[job]
            if default is None:
                raise ValidationError(NO_DEFAULT[job], param="model")
            name = default
        key = self._aliases.get((job, name)) or name
        entry = self._entries.get(key)
        if entry is None or entry.job != job:
            target = await asyncio.to_thread(self._resolve, name, job)
            entry = await (ensure_on_base(self._ensure, target) if target.base else self._ensure(target))
            self._aliases[(job, name)] = entry.key
        elif entry.stopping:
            raise ServerBusy(f"model {entry.key} is being unloaded (mlxk stop); retry")
        elif entry.ready is not None and not entry.ready.done():
            await asyncio.shield(entry.ready)
        entry.in_use += 1
        touch(self._entries, entry)
        return entry

    def release(self, entry: ModelEntry) -> None:
        entry.in_use = max(0, entry.in_use - 1)
        touch(self._entries, entry)
        if entry.in_use == 0 and self.keep_alive_of(entry) == 0 and not entry.pinned:
            asyncio.get_running_loop().create_task(self._unload_if_idle(entry))

    async def unload_when_idle(self, key: str) -> bool:
        """Unload ``key`` now if nothing uses it (a client's keep-alive 0); pinned models stay."""
        entry = self._entries.get(key)
        if entry is None or entry.pinned:
            return False
        await self._unload_if_idle(entry)
        return entry.key not in self._entries

    def loaded_names(self, job: Job | None = None) -> list[str]:
        return sorted(k for k, e in self._entries.items()
                      if e.loaded and (job is None or e.job == job))

    def entry(self, key: str) -> ModelEntry | None:
        return self._entries.get(key)

    def keep_alive_of(self, entry: ModelEntry) -> float:
        return self.settings.keep_alive if entry.keep_alive is None else entry.keep_alive

    def snapshot(self) -> list[LoadedModelInfo]:
        """What is loaded now, for ``ps`` and Ollama's ``/api/ps`` (sorted by name)."""
        return snapshot_of(self._entries.values(), self.keep_alive_of)

    def options(self, key: str) -> dict[str, OptionValue]:
        """The generation options of model ``key`` (flags, then ``--model-options``)."""
        return self._schedulers.options(key)

    def cache_options(self, key: str) -> CacheOptions:
        return self._schedulers.cache_options(key)

    async def load(self, name: str, keep_alive: float | None = None) -> ModelEntry:
        """Load ``name`` now (``mlxk load``) without answering anything; ``keep_alive`` is its own.

        A text model, else an embedding model; when neither fits, the text refusal is raised.
        """
        try:
            entry = await self.acquire(name, "text")
        except MlxkError as text_error:
            try:
                entry = await self.acquire(name, "embedding")
            except MlxkError:
                raise text_error from None
        if keep_alive is not None:
            entry.keep_alive = keep_alive
        self.release(entry)
        return entry

    async def stop(self, name: str, force: bool = False) -> str:
        """Unload a loaded model (``mlxk stop``); returns its key.

        Without ``force`` the requests it is answering finish first (new ones get a 503 meanwhile);
        with ``force`` they are cancelled and end with an error.
        """
        key = next((k for (_job, n), k in self._aliases.items() if n == name), name)
        entry = self._entries.get(key)
        if entry is None:
            raise ModelNotFound(f"model '{name}' is not loaded", param="model")
        if entry.ready is not None and not entry.ready.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(entry.ready)
        entry.stopping = True
        for rider in riders(self._entries, entry):
            rider.stopping = True
        while (entry.in_use or any(r.in_use for r in riders(self._entries, entry))) and not force:
            await asyncio.sleep(0.05)
        async with self._lock:
            if self._entries.get(entry.key) is entry:
                await self._unload(entry)
        return entry.key

    async def stop_all(self, force: bool = False) -> list[str]:
        """Unload every model (``mlxk stop --all``): served adapters first, then the models."""
        keys = sorted(self._entries, key=lambda k: (self._entries[k].base is None, k))
        return [await self.stop(k, force) for k in keys if k in self._entries]

    @property
    def used_bytes(self) -> int:
        return sum(e.size_bytes for e in self._entries.values())

    # --- internals -------------------------------------------------------------------
    async def _ensure(self, target: Target, pinned: bool = False) -> ModelEntry:
        async with self._lock:
            entry = self._entries.get(target.key)
            if entry is None:
                if target.base is not None and target.base not in self._entries:
                    raise ServerBusy(f"the base of {target.key} was unloaded meanwhile; retry")
                entry = ModelEntry(target.key, target.path, entry_size(target), pinned=pinned,
                                   job=target.job, adapter=target.adapter, base=target.base)
                await self._make_room(entry)
                entry.ready = asyncio.get_running_loop().create_future()
                self._entries[entry.key] = entry
                asyncio.get_running_loop().create_task(self._load(entry))
            entry.pinned = entry.pinned or pinned
        await asyncio.shield(entry.ready)
        return entry

    async def _make_room(self, new: ModelEntry) -> None:
        def too_many() -> bool:
            return new.base is None and model_count(self._entries) + 1 > max(1, self.settings.max_loaded)

        def over() -> bool:
            too_big = self.budget is not None and self.used_bytes + new.size_bytes > self.budget
            return too_many() or too_big

        if self.budget is not None and new.size_bytes > self.budget:
            raise ServerBusy(f"model {new.key} ({new.size_bytes} bytes) exceeds the memory budget "
                             f"({self.budget} bytes)")
        while over():
            idle = [e for e in self._evictable() if not too_many() or e.base is None]
            if not idle:
                raise ServerBusy(f"cannot load {new.key} now: the loaded models are busy and "
                                 f"{self._limit_hit(new)}; retry later")
            await self._unload(min(idle, key=lambda e: e.last_used))

    def _limit_hit(self, new: ModelEntry) -> str:
        """Which limit keeps ``new`` out, in the words of its flag."""
        if new.base is None and model_count(self._entries) + 1 > max(1, self.settings.max_loaded):
            return f"--max-loaded {self.settings.max_loaded} are loaded"
        return (f"the memory budget ({self.budget} bytes, --memory-budget) has "
                f"{max(0, (self.budget or 0) - self.used_bytes)} bytes left for {new.size_bytes}")

    def _resolve(self, name: str, job: Job) -> Target:
        """A request's model name -> what to load: a served adapter (``base+name``) or a model."""
        served = adapter_target(self.adapters, name, job, self._resolvers["text"],
                                lambda n: self._aliases.get(("text", n)))
        return served or self._resolvers[job](name)

    async def _load(self, entry: ModelEntry) -> None:
        assert entry.ready is not None
        t0 = time.perf_counter()
        try:
            if entry.job == "embedding":
                entry.lm = await asyncio.to_thread(self._embedding_loader, entry.path, entry.key)
            else:
                base = self._entries[entry.base] if entry.base else None
                entry.scheduler = self._schedulers.make(entry, base)
                entry.lm = await entry.scheduler.ready()
        except BaseException as exc:
            self._entries.pop(entry.key, None)
            if entry.scheduler is not None:
                await asyncio.to_thread(entry.scheduler.close)
            entry.ready.set_exception(load_error(entry.key, exc))
            entry.ready.exception()  # mark retrieved; waiters re-raise it
            return
        entry.loads += 1
        entry.loaded_at = time.time()
        sched = entry.scheduler
        if sched is not None:
            watch_scheduler(self.metrics, entry.key, sched)
        self.metrics.loads.labels(entry.key).inc()
        self.metrics.load_seconds.labels(entry.key).observe(time.perf_counter() - t0)
        self.metrics.loaded.set(len(self.loaded_names()))
        log.info("loaded %s in %.2fs", entry.key, time.perf_counter() - t0)
        entry.ready.set_result(entry)

    def _evictable(self, pinned_too: bool = False) -> list[ModelEntry]:
        """Idle loaded models that may be unloaded now; a base only when its adapters are idle too
        (they go with it)."""
        return [e for e in self._entries.values()
                if e.loaded and e.in_use == 0 and (pinned_too or not e.pinned)
                and not any(r.in_use for r in riders(self._entries, e))]

    async def _unload_if_idle(self, entry: ModelEntry) -> None:
        async with self._lock:
            if entry in self._evictable(pinned_too=True) and self._entries.get(entry.key) is entry:
                await self._unload(entry)

    async def _unload(self, entry: ModelEntry) -> None:
        for rider in riders(self._entries, entry):   # a base's adapters share its weights: they go first
            await self._unload(rider)
        self._entries.pop(entry.key, None)
        self._aliases = {k: v for k, v in self._aliases.items() if v != entry.key}
        for job, key in self.defaults.items():
            if key == entry.key:
                self.defaults[job] = None
        if entry.scheduler is not None:
            await asyncio.to_thread(entry.scheduler.close)
        was_loaded = entry.lm is not None
        entry.lm = None
        entry.scheduler = None
        if was_loaded:
            forget_scheduler(self.metrics, entry.key)
            self.metrics.unloads.labels(entry.key).inc()
            log.info("unloaded %s", entry.key)
        self.metrics.loaded.set(len(self.loaded_names()))

    def _reap_period(self) -> float:
        """Check a quarter of the shortest positive keep-alive (0.2 s to 5 s)."""
        alive = [self.keep_alive_of(e) for e in self._entries.values()] + [self.settings.keep_alive]
        positive = [k for k in alive if k > 0]
        return max(0.2, min(min(positive, default=20.0) / 4, 5.0))

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self._reap_period())
            now = time.monotonic()
            for entry in list(self._entries.values()):
                ka = self.keep_alive_of(entry)
                if (entry.loaded and not entry.pinned and entry.in_use == 0 and ka >= 0
                        and now - entry.last_used >= ka and entry.key in self._entries):
                    await self._unload_if_idle(entry)

