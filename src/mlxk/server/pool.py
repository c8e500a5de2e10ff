"""ModelPool: which models are loaded, loading on demand, LRU + memory budget, idle unload.

A client names a model; the pool resolves that name against the cache only
(never a path, never a download), loads it on first use and keeps it while it is
used: a text model into its own ``BatchScheduler`` thread, an embedding model as
the encoder ``/v1/embeddings`` calls. Both kinds share one set of rules:
``--max-loaded`` and the memory budget evict the least recently used idle model;
``--keep-alive`` unloads idle models (0: right after each request, -1: never).
The ``--model`` given at start may be a path; it is preloaded and pinned (never
evicted) and answers requests that name no model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mlxk import platform as plat
from mlxk.cache import runnable
from mlxk.cache.resolve import ResolvedModel
from mlxk.cache.runnable import Job
from mlxk.cache.runnable import is_path_like as is_path_like
from mlxk.engine.types import CacheOptions, GenerationRequest, LoadedModel
from mlxk.errors import (
    MlxkError,
    ModelNotFound,
    NotRuntimeCompatible,
    ServerBusy,
    ValidationError,
)
from mlxk.server.metrics import Metrics
from mlxk.server.settings import OptionValue, ServerSettings

if TYPE_CHECKING:
    from prometheus_client import Gauge

    from mlxk.engine.batch import BatchScheduler, RequestStats
    from mlxk.engine.embeddings.encoder import EmbeddingModel
    from mlxk.engine.generate import Prepared

log = logging.getLogger("mlxk.server")
NO_DEFAULT = {"text": "'model' is required (the server has no default model)",
              "embedding": "'model' is required (an embedding model in the cache)"}
WEIGHT_SUFFIXES = (".safetensors", ".npz", ".gguf", ".bin")


@dataclass(eq=False)
class ModelEntry:
    key: str                        # the id clients see (org/name, or a local dir's name)
    path: Path
    size_bytes: int
    pinned: bool = False
    job: Job = "text"               # text: a BatchScheduler; embedding: an encoder, no scheduler
    scheduler: BatchScheduler | None = None   # text models only
    lm: LoadedModel | EmbeddingModel | None = None   # once ready (text: LoadedModel)
    in_use: int = 0
    loads: int = 0
    last_used: float = field(default_factory=time.monotonic)
    ready: asyncio.Future | None = None
    keep_alive: float | None = None  # this model's own keep-alive (``load --keep-alive``); None: the server's
    loaded_at: float = 0.0          # wall-clock epoch seconds when it became ready
    stopping: bool = False          # ``stop`` is draining it: new requests get a 503
    adapter: str | None = None      # a served LoRA (``base+name``): its folder
    base: str | None = None         # ... and its base's key: the base stays loaded while it is

    @property
    def loaded(self) -> bool:
        return self.lm is not None


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


@dataclass(frozen=True)
class Target:
    """A resolved, loadable model."""

    key: str
    path: Path
    job: Job = "text"
    adapter: str | None = None      # a served LoRA folder (``base+name``), applied at load
    base: str | None = None         # ... and the key of the base model it shares weights with


def weights_size(path: Path) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for p in path.iterdir():
            if p.name.endswith(WEIGHT_SUFFIXES):
                with contextlib.suppress(OSError):
                    total += p.stat().st_size
    return total


def _target(resolved: ResolvedModel, job: Job) -> Target:
    key = resolved.name
    if resolved.revision_explicit and resolved.commit:
        key = f"{resolved.name}@{resolved.commit[:12]}"
    return Target(key, Path(resolved.path), job)


def default_resolver(name: str) -> Target:
    """Resolve a client's model name in the cache; refuse paths, embeddings, unrunnable models."""
    return _target(runnable.resolve_client_model(name, "text", runnable.HTTP_TEXT), "text")


def embedding_resolver(name: str) -> Target:
    """Resolve a client's model name for ``/v1/embeddings``; only cached embedding models qualify."""
    return _target(runnable.resolve_client_model(name, "embedding", runnable.HTTP_EMBEDDING),
                   "embedding")


def default_loader(path: Path, name: str, adapter_path: str | None = None) -> LoadedModel:
    from mlxk.engine.choose import load

    return load(path, name=name, adapter_path=adapter_path)


def adapter_size(folder: str) -> int:
    with contextlib.suppress(OSError):
        return (Path(folder) / "adapters.safetensors").stat().st_size
    return 0


def default_embedding_loader(path: Path, name: str) -> EmbeddingModel:
    from mlxk.engine.embeddings.encoder import load_embedding_model

    return load_embedding_model(path, name)


def default_prepare(lm: LoadedModel, request: GenerationRequest) -> Prepared:
    from mlxk.engine.choose import prepare

    return prepare(lm, request)


def scheduler_class(path: Path) -> type[BatchScheduler]:
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
        self._loader = loader
        self._embedding_loader = embedding_loader
        self._scheduler_factory = scheduler_factory
        self._entries: dict[str, ModelEntry] = {}
        self._aliases: dict[tuple[Job, str], str] = {}   # (job, client name) -> entry key
        self._lock = asyncio.Lock()
        self._reaper: asyncio.Task | None = None
        self.defaults: dict[Job, str | None] = {"text": None, "embedding": None}
        total = plat.memory_total_bytes() or 0
        self.budget = settings.memory_budget_bytes or int(total * 0.75) or None
        from mlxk.server.loras import Adapters

        self.adapters = Adapters(settings.adapters)

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
        target = await asyncio.to_thread(_resolve_start_model, ref)
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
            entry = await (self._ensure_adapter(target) if target.base else self._ensure(target))
            self._aliases[(job, name)] = entry.key
        elif entry.stopping:
            raise ServerBusy(f"model {entry.key} is being unloaded (mlxk stop); retry")
        elif entry.ready is not None and not entry.ready.done():
            await asyncio.shield(entry.ready)
        entry.in_use += 1
        self._touch(entry)
        return entry

    def release(self, entry: ModelEntry) -> None:
        entry.in_use = max(0, entry.in_use - 1)
        self._touch(entry)
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
        now_wall, now = time.time(), time.monotonic()
        out = []
        for e in sorted(self._entries.values(), key=lambda e: e.key):
            sched = e.scheduler if e.loaded else None
            active = int(getattr(sched, "active_count", 0) or 0)
            queued = int(getattr(sched, "queue_depth", 0) or 0)
            ka = self.keep_alive_of(e)
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
        for rider in self._riders(entry):
            rider.stopping = True
        while (entry.in_use or any(r.in_use for r in self._riders(entry))) and not force:
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

    def _model_count(self) -> int:
        """Loaded models as ``--max-loaded`` counts them: a served adapter rides on its base."""
        return sum(1 for e in self._entries.values() if e.base is None)

    def _riders(self, base: ModelEntry) -> list[ModelEntry]:
        return [e for e in self._entries.values() if e.base == base.key]

    def _touch(self, entry: ModelEntry) -> None:
        """Using an adapter uses its base: the base's keep-alive runs from the last use of either."""
        now = time.monotonic()
        entry.last_used = now
        base = self._entries.get(entry.base) if entry.base else None
        if base is not None:
            base.last_used = max(base.last_used, now)

    def _evictable(self, pinned_too: bool = False) -> list[ModelEntry]:
        """Idle loaded models that may be unloaded now; a base only when its adapters are idle too
        (they go with it)."""
        return [e for e in self._entries.values()
                if e.loaded and e.in_use == 0 and (pinned_too or not e.pinned)
                and not any(r.in_use for r in self._riders(e))]

    async def _ensure_adapter(self, target: Target) -> ModelEntry:
        """A served adapter: its base first (loaded, then held so nothing evicts it meanwhile)."""
        assert target.base is not None
        base = await self._ensure(Target(target.base, target.path, "text"))
        base.in_use += 1
        try:
            return await self._ensure(target)
        finally:
            base.in_use = max(0, base.in_use - 1)

    # --- internals -------------------------------------------------------------------
    async def _ensure(self, target: Target, pinned: bool = False) -> ModelEntry:
        async with self._lock:
            entry = self._entries.get(target.key)
            if entry is None:
                if target.base is not None and target.base not in self._entries:
                    raise ServerBusy(f"the base of {target.key} was unloaded meanwhile; retry")
                size = adapter_size(target.adapter) if target.base else (
                    weights_size(target.path) + (adapter_size(target.adapter) if target.adapter else 0))
                entry = ModelEntry(target.key, target.path, size, pinned=pinned, job=target.job,
                                   adapter=target.adapter, base=target.base)
                await self._make_room(entry)
                entry.ready = asyncio.get_running_loop().create_future()
                self._entries[entry.key] = entry
                asyncio.get_running_loop().create_task(self._load(entry))
            entry.pinned = entry.pinned or pinned
        await asyncio.shield(entry.ready)
        return entry

    async def _make_room(self, new: ModelEntry) -> None:
        def too_many() -> bool:
            return new.base is None and self._model_count() + 1 > max(1, self.settings.max_loaded)

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
        if new.base is None and self._model_count() + 1 > max(1, self.settings.max_loaded):
            return f"--max-loaded {self.settings.max_loaded} are loaded"
        return (f"the memory budget ({self.budget} bytes, --memory-budget) has "
                f"{max(0, (self.budget or 0) - self.used_bytes)} bytes left for {new.size_bytes}")

    def _make_scheduler(self, entry: ModelEntry) -> BatchScheduler:
        s, m, key = self.settings, self.metrics, entry.key
        path = entry.path

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

        factory = self._scheduler_factory or scheduler_class(path)
        adapter = entry.adapter or self.options(key).get("adapter_path")
        loader = self._loader
        base = self._entries[entry.base] if entry.base else None

        def load() -> LoadedModel:
            if base is not None and adapter:
                from mlxk.engine.adapters import adapted_copy

                return adapted_copy(base.lm, adapter, key)   # type: ignore[arg-type]  # vision: refused
            return loader(path, key, adapter) if adapter else loader(path, key)

        return factory(load, name=key, max_batch=s.max_batch,
                       max_queue=s.max_queue, on_finish=on_finish, **self._prefill_options(entry),
                       on_tokens=on_tokens, cache_options=self.cache_options(key),
                       **self._spec_options(key))

    def _spec_options(self, key: str) -> dict[str, object]:
        """Speculative decoding for model ``key``: ``--prompt-lookup`` or ``--draft-model``."""
        opts = self.options(key)
        if opts.get("prompt_lookup"):
            return {"prompt_lookup": opts["prompt_lookup"]}
        draft = opts.get("draft_model")
        if not draft:
            return {}
        loader, name = self._loader, str(opts.get("draft_name") or draft)
        return {"draft_load": lambda: loader(Path(str(draft)), name),
                "num_draft": int(opts.get("num_draft_tokens") or 3)}

    def options(self, key: str) -> dict[str, OptionValue]:
        """The generation options of model ``key`` (flags, then ``--model-options``); a served
        adapter ``base+name`` has its base's options, less the base's own ``adapter_path``."""
        from mlxk.server.model_options import options_for

        served = self.adapters.by_id(key)
        opts = options_for(self.settings.generation, self.settings.model_options,
                           served.base if served else key)
        return {k: v for k, v in opts.items() if k != "adapter_path"} if served else opts

    def _resolve(self, name: str, job: Job) -> Target:
        """A request's model name -> what to load: a served adapter (``base+name``) or a model."""
        if job == "text" and self.adapters:
            served = self.adapters.find(name, lambda base: self._base_key(base))
            if served is not None:
                return Target(served.id, self._base_path(served.base_ref), "text", served.path,
                              served.base)
        elif "+" in name:
            raise ModelNotFound(f"model '{name}' names an adapter, and this server serves none "
                                "(serve --lora NAME=DIR)", param="model")
        return self._resolvers[job](name)

    def _base_key(self, name: str) -> str:
        return self._aliases.get(("text", name)) or self._resolvers["text"](name).key

    def _base_path(self, ref: str) -> Path:
        return Path(ref) if os.path.isabs(ref) else self._resolvers["text"](ref).path

    def cache_options(self, key: str) -> CacheOptions:
        from mlxk.server.model_options import cache_options

        return cache_options(self.options(key))

    def _prefill_options(self, entry: ModelEntry) -> dict[str, str | int]:
        """Chunked prefill and the on-disk prefix cache (``serve --prefill-chunk``, ``--prompt-cache-dir``)."""
        s = self.settings
        opts: dict[str, str | int] = {"prefill_step_size": s.prefill_chunk}
        if s.prompt_cache_dir:
            # the snapshot directory names the revision; a local model dir names itself
            opts.update(prompt_cache_dir=os.path.join(s.prompt_cache_dir, _safe_name(entry.key)),
                        prompt_cache_disk_bytes=s.prompt_cache_disk_bytes,
                        model_id=f"{entry.key}@{os.path.realpath(entry.path)}")
        return opts

    async def _load(self, entry: ModelEntry) -> None:
        assert entry.ready is not None
        t0 = time.perf_counter()
        try:
            if entry.job == "embedding":
                entry.lm = await asyncio.to_thread(self._embedding_loader, entry.path, entry.key)
            else:
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
        entry.loaded_at = time.time()
        sched = entry.scheduler
        if sched is not None:
            self.metrics.active.labels(entry.key).set_function(lambda: sched.active_count)
            self.metrics.queue_depth.labels(entry.key).set_function(lambda: sched.queue_depth)
            self.metrics.cached_tokens.labels(entry.key).set_function(
                lambda: getattr(sched, "cached_prompt_tokens", 0))
            self.metrics.disk_tokens.labels(entry.key).set_function(
                lambda: getattr(sched, "disk_prompt_tokens", 0))
            self.metrics.prefix_bytes.labels(entry.key).set_function(
                lambda: getattr(sched, "prefix_cache_bytes", 0))
            self._watch_speculation(entry.key, sched)
        self.metrics.loads.labels(entry.key).inc()
        self.metrics.load_seconds.labels(entry.key).observe(time.perf_counter() - t0)
        self.metrics.loaded.set(len(self.loaded_names()))
        log.info("loaded %s in %.2fs", entry.key, time.perf_counter() - t0)
        entry.ready.set_result(entry)

    def _spec_gauges(self) -> tuple[Gauge, ...]:
        m = self.metrics
        return (m.spec_drafted, m.spec_accepted, m.spec_rate)

    def _watch_speculation(self, key: str, sched: BatchScheduler) -> None:
        """Drafted / accepted tokens and their ratio, for a model served with speculation."""
        counts = getattr(sched, "spec_counts", None)
        if counts is None or not getattr(sched, "speculates", False):
            return
        self.metrics.spec_drafted.labels(key).set_function(lambda: counts.drafted)
        self.metrics.spec_accepted.labels(key).set_function(lambda: counts.accepted)
        self.metrics.spec_rate.labels(key).set_function(lambda: counts.metrics()["acceptance_rate"])

    async def _unload_if_idle(self, entry: ModelEntry) -> None:
        async with self._lock:
            if entry in self._evictable(pinned_too=True) and self._entries.get(entry.key) is entry:
                await self._unload(entry)

    async def _unload(self, entry: ModelEntry) -> None:
        for rider in self._riders(entry):   # a base's adapters share its weights: they go first
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
            for gauge in (self.metrics.active, self.metrics.queue_depth, self.metrics.cached_tokens,
                          self.metrics.disk_tokens, self.metrics.prefix_bytes, *self._spec_gauges()):
                with contextlib.suppress(KeyError):
                    gauge.remove(entry.key)
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


def _resolve_start_model(ref: str) -> Target:
    """``--model`` may be a path (operator's choice) or any cache reference."""
    from mlxk.cache.detect import describe
    from mlxk.cache.loadable import refuse_unhealthy
    from mlxk.cache.resolve import resolve

    resolved = resolve(ref)
    refuse_unhealthy(resolved)   # a broken --model stops the start with health's reason
    key = resolved.name if resolved.cached else Path(resolved.path).name
    job: Job = "embedding" if describe(Path(resolved.path)).model_type == "embedding" else "text"
    return Target(key, Path(resolved.path), job)


def _safe_name(key: str) -> str:
    """A model key as one directory name (``org/name`` -> ``org--name``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "--", key).strip(".") or "model"


def _load_error(key: str, exc: BaseException) -> MlxkError:
    if isinstance(exc, MlxkError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return ModelNotFound(f"model {key}: {exc}")
    return NotRuntimeCompatible(f"model {key} failed to load: {type(exc).__name__}: {exc}")
