"""Continuous batching: one scheduler thread per loaded model over mlx-lm's ``BatchGenerator``.

The thread owns everything MLX for its model: it loads the model, creates the
stream, inserts admitted requests into the running batch, steps it, feeds each
sampled token through that request's ``Prepared.decoder`` (stop strings,
reasoning split, special tokens) and hands the resulting chunks to the request's
asyncio queue (one ``call_soon_threadsafe`` per step, not per token).

Admission is bounded: at most ``max_batch`` sequences decode together and at
most ``max_queue`` more wait for a slot; beyond that ``submit`` raises
``ServerBusy`` (503 + Retry-After). ``cancel`` (a client that went away) takes
the sequence out of the batch at the next step.

Prefix cache: finished sequences leave their KV cache in an LRU keyed by tokens
(mlx-lm's ``LRUPromptCache``); a new request that shares a prefix (system
prompt, an earlier turn of the same conversation) starts from the nearest cached
state and only prefills the rest. A cancelled sequence (the client stopped reading)
leaves what it had processed there too, so the next turn does not pay for it again.
With ``prompt_cache_dir`` long prefixes also go to disk (``prompt_disk.py``) and
are found again after a restart.

Chunked prefill: mlx-lm's ``BatchGenerator`` alternates one decode step of the
running sequences with one prefill step of the admitted prompts, each at most
``prefill_step_size`` tokens. That step size (``serve --prefill-chunk``) bounds how
long a running stream waits while a long prompt arrives: small chunks keep the
streams flowing, the long prompt pays one decode step per chunk on top of its own
prefill (bench/bench_serve.py measures both).

Several sequences per request (``submit_all``: OpenAI's ``n``, a list of prompts):
they share one queue, each ``Delta`` carrying its sequence's ``index``, and are
admitted together. Sequences admitted together with the same prompt are prefilled
once: the KV state of all but the last prompt token goes to the prefix cache and
each sequence starts from a copy of it (so ``n`` choices cost one prefill).

Prompt logprobs (``Submission.prompt_logprobs``, for ``echo``): the prompt is then
prefilled here, outside the batch, keeping each position's logits; the first delta
carries one entry per prompt token (the first ``None``, it has no context).

KV-cache options (``cache_options``): ``max_kv_size`` makes every sequence's cache a
rotating one (mlx-lm's ``BatchRotatingKVCache`` in the batch; the prefix cache is off
then); ``kv_bits`` makes it our quantized one (``engine.kv_quant.BatchQuantizedKV``; the prefix cache
stays in memory then, mlx-lm's file format cannot name our cache class).

Speculative decoding (``prompt_lookup``, or a draft model from ``draft_load``): sequences
without logits processors draft from their own prompt and answer or from the draft model,
verified inside the batch (``engine.batch_speculative``); ``spec_counts`` counts drafted and
accepted tokens.

Seeds: a request with a ``seed`` (and temperature > 0) gets its own sampler
with a private PRNG key (``mx.random.key(seed)``, split per token), so it runs in
the shared batch without touching the global random state and without being
disturbed by its neighbours. The tokens it draws depend only on its own logits;
batched and single-sequence logits can differ in the last bits, so the same seed
is reproducible run to run for the same load, not bit-identical to ``mlxk run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlxk.engine.speculative import SpecCounts
from mlxk.engine.types import CacheOptions, Chunk, LoadedModel, SamplingParams
from mlxk.errors import ExecutionError, MlxkError, ServerBusy, ValidationError

if TYPE_CHECKING:
    from mlxk.engine.batch_speculative import Drafter

log = logging.getLogger("mlxk.engine.batch")


@dataclass
class Delta:
    """What a request's queue receives: one chunk, plus per-token logprobs when asked for."""

    chunk: Chunk
    logprobs: list[dict[str, Any]] | None = None
    index: int = 0                                   # the sequence, for several per request
    prompt_logprobs: list[dict[str, Any] | None] | None = None  # once, before the first token


@dataclass
class Submission:
    """One sequence for ``submit_all``."""

    prepared: Any
    sampling: SamplingParams | None = None
    top_logprobs: int | None = None        # None: no logprobs; 0..20: top-k alternatives
    prompt_logprobs: int | None = None     # None: off; 0..20: logprobs of the prompt tokens
    extra_processors: list[Any] = field(default_factory=list)


@dataclass(eq=False)
class Handle:
    """One admitted request."""

    prepared: Any
    queue: asyncio.Queue
    loop: asyncio.AbstractEventLoop
    sampler: Any = None
    top_logprobs: int | None = None        # None: no logprobs; 0..20: top-k alternatives
    processors: list[Any] = field(default_factory=list)
    uid: int | None = None                 # BatchGenerator uid once inserted
    submitted: float = field(default_factory=time.perf_counter)
    first_token: float | None = None
    n_tokens: int = 0
    cached_tokens: int = 0                 # prompt tokens served from the prefix cache
    done: bool = False
    pending_logprobs: list[dict[str, Any]] = field(default_factory=list)
    index: int = 0
    prompt_logprobs: int | None = None
    admitted: float | None = None          # when it entered the batch (end of its queue time)
    last_token: float | None = None
    itl: list[float] = field(default_factory=list)  # seconds between consecutive tokens


@dataclass
class RequestStats:
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float | None
    generation_tps: float | None
    finish_reason: str | None
    queue_s: float | None = None
    itl_s: list[float] = field(default_factory=list)


def keyed_sampler(params: SamplingParams) -> Callable:
    """A sampler with its own PRNG key (see module docstring)."""
    import mlx.core as mx
    from mlx_lm.sample_utils import apply_min_p, apply_top_k, apply_top_p

    state = {"key": mx.random.key(int(params.seed or 0) % (2**64))}
    temp = params.temperature

    def sampler(logprobs: mx.array) -> mx.array:
        if 0 < params.top_p < 1.0:
            logprobs = apply_top_p(logprobs, params.top_p)
        if params.min_p > 0:
            logprobs = apply_min_p(logprobs, params.min_p)
        if params.top_k > 0:
            logprobs = apply_top_k(logprobs, params.top_k)
        state["key"], sub = mx.random.split(state["key"])
        return mx.random.categorical(logprobs * (1 / temp), key=sub)

    return sampler


def _rows(lp: Any, targets: list[int], k: int) -> list[dict[str, Any]]:
    """Logprob entries for many positions at once: row ``i`` of ``lp`` scores ``targets[i]``."""
    import mlx.core as mx

    chosen = mx.take_along_axis(lp, mx.array(targets)[:, None], axis=-1)[:, 0].tolist()
    tops: list[list[dict[str, Any]]] = [[] for _ in targets]
    if k > 0:
        idx = mx.argpartition(-lp, kth=k - 1, axis=-1)[:, :k]
        vals = mx.take_along_axis(lp, idx, axis=-1)
        tops = [sorted(({"id": int(i), "logprob": float(v)} for i, v in zip(ri, rv, strict=True)),
                       key=lambda a: -a["logprob"]) for ri, rv in zip(idx.tolist(), vals.tolist(), strict=True)]
    return [{"id": int(t), "logprob": float(c), "top": top}
            for t, c, top in zip(targets, chosen, tops, strict=True)]


def _bounded(opts: CacheOptions | None) -> bool:
    """A rotating cache cannot be trimmed back to a shared prefix once it has wrapped, so a
    bounded context runs without the prefix cache."""
    return opts is not None and opts.max_kv_size is not None


def _deliver(items: list[tuple[Handle, Any]]) -> None:
    for handle, item in items:
        handle.queue.put_nowait(item)


class BatchScheduler:
    """Continuous batching for one model. Construct, then ``await ready()``; ``close()`` to stop."""

    def __init__(self, load: Callable[[], Any], *, name: str = "", max_batch: int = 16,
                 max_queue: int = 32, prefill_step_size: int = 2048,
                 on_finish: Callable[[RequestStats], None] | None = None,
                 prompt_cache_size: int = 16, prompt_cache_bytes: int = 1 << 30,
                 prompt_cache_dir: str | None = None, prompt_cache_disk_bytes: int = 0,
                 model_id: str = "", on_tokens: Callable[[int, int], None] | None = None,
                 cache_options: CacheOptions | None = None, prompt_lookup: int | None = None,
                 draft_load: Callable[[], Any] | None = None, num_draft: int = 3) -> None:
        self.name = name
        # speculative decoding (engine.batch_speculative): serve --prompt-lookup N, or
        # --draft-model (``draft_load`` loads it in this thread) with ``num_draft`` tokens a step
        self.prompt_lookup = prompt_lookup
        self._draft_load = draft_load
        self.num_draft = num_draft
        self.draft_lm: LoadedModel | None = None
        self.spec_counts = SpecCounts()        # drafted / accepted tokens (cumulative, /metrics)
        self.cache_options = cache_options
        self.max_batch = max(1, max_batch)
        self.max_queue = max(0, max_queue)
        self.prefill_step_size = prefill_step_size
        self.on_finish = on_finish
        self.lm: LoadedModel | None = None
        self.prompt_cache_size = prompt_cache_size
        self.prompt_cache_bytes = prompt_cache_bytes
        self._pcache: Any = None
        self.prompt_cache_dir = prompt_cache_dir
        self.prompt_cache_disk_bytes = prompt_cache_disk_bytes
        self.model_id = model_id or name
        self.on_tokens = on_tokens             # (prefilled, decoded) tokens of each step
        self._disk: Any = None                 # DiskPromptCache with prompt_cache_dir
        self.cached_prompt_tokens = 0          # prompt tokens served from the prefix cache
        self._load = load
        self._cv = threading.Condition()
        self._waiting: deque[Handle] = deque()
        self._cancels: list[Handle] = []
        self._active: dict[int, Handle] = {}
        self._n_active = 0
        self._closing = False
        self._ready: Future = Future()
        self._thread = threading.Thread(target=self._run, name=f"mlxk-batch-{name}", daemon=True)
        self._thread.start()

    # --- called from the event loop ----------------------------------------------------------
    async def ready(self) -> Any:
        """Wait until the model is loaded; returns the LoadedModel (or raises the load error)."""
        return await asyncio.wrap_future(self._ready)

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    @property
    def active_count(self) -> int:
        return self._n_active

    @property
    def disk_prompt_tokens(self) -> int:
        """Prompt tokens served from the on-disk prefix cache (cumulative)."""
        return self._disk.served_tokens if self._disk is not None else 0

    @property
    def prefix_cache_bytes(self) -> int:
        """Bytes of KV state in the in-memory prefix cache (``mlxk_prefix_cache_bytes``)."""
        pcache = self._pcache
        return int(pcache.nbytes) if pcache is not None else 0

    @property
    def busy(self) -> bool:
        return bool(self._n_active or self._waiting)

    def submit(self, prepared: Any, *, sampling: SamplingParams | None = None,
               top_logprobs: int | None = None, extra_processors: list[Any] | None = None) -> Handle:
        """Admit a prepared request; its deltas arrive on ``handle.queue``. Raises ServerBusy."""
        return self.submit_all([Submission(prepared, sampling, top_logprobs, None,
                                           list(extra_processors or ()))])[0]

    def submit_all(self, subs: list[Submission]) -> list[Handle]:
        """Admit several sequences at once (see module docstring); one shared queue.

        Raises ServerBusy when they do not fit now, ValidationError when they never could."""
        loop = asyncio.get_running_loop()
        capacity = self.max_batch + self.max_queue
        if len(subs) > capacity:
            raise ValidationError(f"{len(subs)} sequences in one request; this server takes at most "
                                  f"{capacity} at once (--max-batch + --max-queue)", param="n")
        queue: asyncio.Queue = asyncio.Queue()
        handles = []
        for i, sub in enumerate(subs):
            sampler = sub.prepared.sampler
            if sub.sampling is not None and sub.sampling.seed is not None and sub.sampling.temperature > 0:
                sampler = keyed_sampler(sub.sampling)
            processors = [*(sub.prepared.logits_processors or ()), *sub.extra_processors]
            handles.append(Handle(prepared=sub.prepared, queue=queue, loop=loop, sampler=sampler,
                                  top_logprobs=sub.top_logprobs, processors=processors, index=i,
                                  prompt_logprobs=sub.prompt_logprobs))
        with self._cv:
            if self._closing:
                raise ServerBusy(f"model {self.name} is unloading; retry")
            if self._n_active + len(self._waiting) + len(handles) > capacity:
                raise ServerBusy(f"server busy: {self.max_batch} requests decoding and "
                                 f"{self.max_queue} waiting for {self.name}; retry later")
            self._waiting.extend(handles)
            self._cv.notify()
        return handles

    def cancel(self, handle: Handle) -> None:
        """The client went away: drop the request now (no-op when it already finished)."""
        with self._cv:
            if handle.done:
                return
            handle.done = True
            try:
                self._waiting.remove(handle)
            except ValueError:
                self._cancels.append(handle)
                self._cv.notify()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread; requests still running get an error delta."""
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join(timeout)

    # --- the scheduler thread ------------------------------------------------------------
    def _run(self) -> None:
        try:
            import mlx.core as mx
            from mlx_lm.generate import BatchGenerator
            from mlx_lm.models.cache import LRUPromptCache

            self.lm = self._load()
            self.lm.cache_options = self.cache_options
            self._load_draft()
            if self.prompt_cache_size > 0 and not _bounded(self.cache_options):
                self._pcache = LRUPromptCache(self.prompt_cache_size, self.prompt_cache_bytes)
                self._disk = self._open_disk()
            stream = mx.default_stream(mx.default_device())
            gen = self.new_generator(BatchGenerator, stream)
        except BaseException as exc:  # report to whoever waits for the load
            self._ready.set_exception(exc)
            return
        self._ready.set_result(self.lm)
        try:
            self._loop(gen, BatchGenerator, stream)
        finally:
            self._fail_all(ServerBusy(f"model {self.name} was unloaded; retry"))
            with contextlib.suppress(Exception):
                gen.close()
            self.lm = self.draft_lm = None
            self._pcache = None
            del gen
            with contextlib.suppress(Exception):
                import gc

                gc.collect()
                mx.clear_cache()

    @property
    def speculates(self) -> bool:
        return bool(self.prompt_lookup or self._draft_load)

    def _load_draft(self) -> None:
        if self._draft_load is None:
            return
        from mlxk.engine.speculative import check_vocab

        self.draft_lm = self._draft_load()
        check_vocab(self.lm, self.draft_lm)

    def _drafter(self, prompt: list[int]) -> Drafter:
        """The draft source of a new sequence (engine.batch_speculative)."""
        if self.draft_lm is not None:
            from mlxk.engine.speculative import ModelDrafter

            return ModelDrafter(self.draft_lm.model, prompt, self.num_draft, self.prefill_step_size)
        from mlxk.engine.prompt_lookup import PromptLookup

        return PromptLookup(prompt, self.prompt_lookup or 0)

    def _open_disk(self) -> Any:
        if not self.prompt_cache_dir or (self.cache_options and self.cache_options.kv_bits):
            return None
        from mlxk.engine.prompt_disk import DiskPromptCache

        return DiskPromptCache(self.prompt_cache_dir, self.model_id, self.prompt_cache_disk_bytes)

    # --- hooks: a subclass (the distributed lockstep scheduler) changes these, not the loop ------
    idle_wait: float | None = None   # seconds the loop waits for work before on_idle(); None: forever

    def generator_kwargs(self) -> dict[str, Any]:
        """mlx-lm ``BatchGenerator`` settings for this model (stream and model aside)."""
        assert self.lm is not None
        eos = sorted(self.lm.eos_token_ids)
        return {"stop_tokens": [[t] for t in eos] or None, "completion_batch_size": self.max_batch,
                "prefill_batch_size": min(self.max_batch, 8),
                "prefill_step_size": self.prefill_step_size}

    def new_generator(self, cls: Any, stream: Any) -> Any:
        """The batch generator the loop steps (built again after a failed step)."""
        assert self.lm is not None
        if self.speculates:
            from mlxk.engine.batch_speculative import SpecBatchGenerator

            return SpecBatchGenerator(self.lm.model, stream=stream, counts=self.spec_counts,
                                      **self.generator_kwargs())
        return cls(self.lm.model, stream=stream, **self.generator_kwargs())

    def on_loop_start(self, gen: Any) -> None:
        """The model is loaded and the loop is about to take requests."""

    def on_idle(self, gen: Any) -> None:
        """``idle_wait`` passed with nothing to do."""

    def on_loop_end(self, gen: Any) -> None:
        """The scheduler was closed (not called after a step error that ended the loop)."""

    def on_step_error(self, exc: Exception) -> bool:
        """A step failed: fail its batch; True keeps serving (with a fresh generator)."""
        log.exception("batch step failed for %s", self.name)
        self.fail_active(ExecutionError(f"generation failed: {type(exc).__name__}: {exc}"))
        if self._pcache is not None:
            self._pcache.trim_to(n_sequences=0)
        return True

    def _loop(self, gen: Any, gen_cls: Any, stream: Any) -> None:
        self.on_loop_start(gen)
        while True:
            with self._cv:
                if not (self._closing or self._waiting or self._cancels or self._active):
                    self._cv.wait(timeout=self.idle_wait)
                if self._closing:
                    break
                cancels, self._cancels = self._cancels, []
                admit = []
                while self._waiting and len(self._active) + len(admit) < self.max_batch:
                    admit.append(self._waiting.popleft())
            try:
                if not (cancels or admit or self._active):
                    self.on_idle(gen)
                    continue
                self._remove(gen, cancels)
                self._insert(gen, admit)
                if self._active:
                    self._step(gen)
            except Exception as exc:  # a failed step fails its batch, not the server
                if not self.on_step_error(exc):
                    return
                gen = self.new_generator(gen_cls, stream)
        self.on_loop_end(gen)

    def _remove(self, gen: Any, cancels: list[Handle]) -> None:
        uids = [h.uid for h in cancels if h.uid is not None and h.uid in self._active]
        for h in cancels:   # the tokens a dropped request used still count (metrics)
            if h.uid in uids and self.on_finish is not None:
                with contextlib.suppress(Exception):
                    self.on_finish(RequestStats(len(h.prepared.prompt_tokens), h.n_tokens, None, None,
                                                "cancelled"))
        if uids:
            kept = gen.remove(uids, return_prompt_caches=self._pcache is not None)
            self._keep_all(kept)
            for uid in uids:
                self._active.pop(uid, None)
            self._set_active_count()

    def _insert(self, gen: Any, admit: list[Handle]) -> None:
        admit = [h for h in admit if not h.done]
        if not admit:
            return
        self._prefill_shared(admit, between=lambda: self._decode_between(gen))
        prompts, caches, known = [], [], []
        for h in admit:
            tokens = list(h.prepared.prompt_tokens)
            cache, rest = self._nearest(tokens)
            if cache is None:
                cache = self._fresh_cache()
            prompts.append(rest)
            caches.append(cache)
            known.append(tokens[:len(tokens) - len(rest)])
            h.cached_tokens = len(tokens) - len(rest)
            self.cached_prompt_tokens += h.cached_tokens
        uids = gen.insert(prompts, max_tokens=[int(h.prepared.max_tokens) for h in admit],
                          caches=caches, all_tokens=known,
                          samplers=[h.sampler for h in admit],
                          logits_processors=[h.processors for h in admit])
        now = time.perf_counter()
        for uid, h in zip(uids, admit, strict=True):
            h.uid = uid
            h.admitted = now
            self._active[uid] = h
            if self.speculates and not h.processors and hasattr(gen, "draft"):
                gen.draft(uid, self._drafter(list(h.prepared.prompt_tokens)))
        self._set_active_count()

    def _fresh_cache(self) -> Any:
        """None (mlx-lm makes the model's default) unless the KV-cache options change it."""
        if self.cache_options is None or not self.cache_options.active:
            return None
        from mlxk.engine.kvcache import make_cache

        return make_cache(self.lm.model, self.cache_options)

    def _decode_between(self, gen: Any) -> None:
        """One step of the running batch between two chunks of a prefill done here, so a
        shared (``n`` > 1) or logprob prefill does not stall the streams either."""
        if self._active:
            self._step(gen)

    def _prefill_shared(self, admit: list[Handle], between: Callable[[], None] | None = None) -> None:
        """Prefill once per prompt shared by several admitted sequences, or wanted with its
        logprobs; the state of all but the last token goes to the prefix cache."""
        groups: dict[tuple[int, ...], list[Handle]] = {}
        for h in admit:
            groups.setdefault(tuple(h.prepared.prompt_tokens), []).append(h)
        for tokens, members in groups.items():
            wanted = [h.prompt_logprobs for h in members if h.prompt_logprobs is not None]
            k = max(wanted) if wanted else None
            if len(tokens) < 2 or (k is None and (len(members) < 2 or self._pcache is None)):
                if k is not None:  # a one-token prompt: its only token has no logprob
                    self._post([(h, [Delta(Chunk(), index=h.index, prompt_logprobs=[None])])
                                for h in members if h.prompt_logprobs is not None])
                continue
            head = list(tokens[:-1])
            cache, rest = (None, head) if k is not None else \
                self._pcache.fetch_nearest_cache(self.name, head)
            if not rest:
                continue
            cache, entries = self._prefill(cache, rest, k, tokens[-1], between)
            if self._pcache is not None:
                self._pcache.insert_cache(self.name, head, cache)
                self.cached_prompt_tokens -= len(rest)  # computed here, not served from the cache
            if entries is not None:
                self._post([(h, [Delta(Chunk(), index=h.index, prompt_logprobs=[
                    None, *({**e, "top": e["top"][:h.prompt_logprobs]} for e in entries)])])
                    for h in members if h.prompt_logprobs is not None])

    def _prefill(self, cache: Any, tokens: list[int], k: int | None, next_token: int,
                 between: Callable[[], None] | None = None) -> tuple[Any, list[dict] | None]:
        """Run ``tokens`` through the model into ``cache`` (a fresh one when None); with ``k``,
        also the logprob (and top-``k``) of each following token (``tokens[1:]``, ``next_token``)."""
        import mlx.core as mx

        from mlxk.engine.kvcache import make_cache

        if cache is None:
            cache = make_cache(self.lm.model, self.cache_options)
        entries: list[dict] | None = [] if k is not None else None
        step = max(1, self.prefill_step_size)
        targets = [*tokens[1:], next_token]
        for start in range(0, len(tokens), step):
            if start and between is not None:
                between()
            chunk = mx.array(tokens[start:start + step])[None]
            logits = self.lm.model(chunk, cache=cache)
            mx.eval([c.state for c in cache])
            if entries is None:
                continue
            lp = logits[0].astype(mx.float32)
            lp = lp - mx.logsumexp(lp, axis=-1, keepdims=True)
            entries += _rows(lp, targets[start:start + lp.shape[0]], k or 0)
        return cache, entries

    def _nearest(self, tokens: list[int]) -> tuple[Any, list[int]]:
        """The cached KV state sharing the longest prefix with ``tokens``, and the tokens left."""
        if self._pcache is None or len(tokens) < 2:
            return None, tokens
        from mlx_lm.models.cache import can_trim_prompt_cache, trim_prompt_cache

        cache, rest = self._pcache.fetch_nearest_cache(self.name, tokens)
        cache, rest = self._from_disk(tokens, cache, rest)
        if cache is None:
            return None, tokens
        if not rest:  # an exact hit: recompute the last token so there is something to feed
            if not can_trim_prompt_cache(cache):
                return None, tokens
            trim_prompt_cache(cache, 1)
            rest = tokens[-1:]
        return cache, list(rest)

    def _from_disk(self, tokens: list[int], cache: Any, rest: list[int]) -> tuple[Any, list[int]]:
        """The disk's entry instead of the memory hit when it covers more of ``tokens``."""
        if self._disk is None or len(tokens) - len(rest) >= len(tokens) - 1:
            return cache, rest
        disk_cache, n = self._disk.lookup(tokens)
        if disk_cache is None or n <= len(tokens) - len(rest):
            return cache, rest
        return disk_cache, tokens[n:]

    def _keep(self, tokens: Any, cache: Any) -> None:
        if self._pcache is not None and tokens and cache:
            self._pcache.insert_cache(self.name, list(tokens), cache)
            if self._disk is not None:
                self._disk.save(list(tokens), cache)

    def _keep_all(self, kept: dict[int, tuple[Any, Any]] | None) -> None:
        """Keep the KV state of sequences leaving the batch (finished or cancelled)."""
        for cache, tokens in (kept or {}).values():
            self._keep(tokens, cache)

    def _set_active_count(self) -> None:
        with self._cv:
            self._n_active = len(self._active)

    def _step(self, gen: Any) -> None:
        stats = gen.stats() if self.on_tokens is not None and hasattr(gen, "stats") \
            else contextlib.nullcontext()
        with stats as st:
            _, responses = gen.next()
        if st is not None:
            with contextlib.suppress(Exception):
                self.on_tokens(st.prompt_tokens, st.generation_tokens)
        if not responses:
            return
        now = time.perf_counter()
        out: list[tuple[Handle, Any]] = []
        finished: list[int] = []
        for r in responses:
            h = self._active.get(r.uid)
            if h is None or h.done:
                continue
            item, end = self._token(h, r, now)
            if item is not None:
                out.append((h, item))
            if end:
                self._active.pop(r.uid, None)
                if r.finish_reason is None:
                    finished.append(r.uid)
                else:
                    self._keep(r.all_tokens, r.prompt_cache)
        if finished:
            self._keep_all(gen.remove(finished, return_prompt_caches=self._pcache is not None))
        if len(finished) or any(r.finish_reason for r in responses):
            self._set_active_count()
        self._post(out)

    def _token(self, h: Handle, r: Any, now: float) -> tuple[Any, bool]:
        if h.first_token is None:
            h.first_token = now
        elif h.last_token is not None:
            h.itl.append(now - h.last_token)
        h.last_token = now
        h.n_tokens += 1
        dec = h.prepared.decoder
        chunks = dec.feed(int(r.token))
        if h.top_logprobs is not None:
            entry = self._logprob_entry(r, h.top_logprobs)
            entry["text"] = getattr(dec, "piece", None)
            h.pending_logprobs.append(entry)
        reason = "stop" if dec.finished else r.finish_reason
        if reason is not None:
            final = dec.finish(reason)
            tail = getattr(dec, "piece", "")
            if tail and h.pending_logprobs and h.pending_logprobs[-1]["text"] is not None:
                h.pending_logprobs[-1]["text"] += tail
            self._complete_counts(h, final)
            h.done = True
            chunks = [*chunks, final]
            self._report(h, final, now)
        if not chunks:
            return None, reason is not None
        deltas = [Delta(c, index=h.index) for c in chunks]
        if h.pending_logprobs:
            deltas[0].logprobs, h.pending_logprobs = h.pending_logprobs, []
        return deltas, reason is not None

    def _logprob_entry(self, r: Any, k: int) -> dict[str, Any]:
        return _rows(r.logprobs[None], [int(r.token)], k)[0]

    def _complete_counts(self, h: Handle, final: Chunk) -> None:
        if not final.prompt_tokens:
            final.prompt_tokens = len(h.prepared.prompt_tokens)
        if not final.completion_tokens:
            final.completion_tokens = h.n_tokens

    def _report(self, h: Handle, final: Chunk, now: float) -> None:
        ttft = (h.first_token - h.submitted) if h.first_token else None
        gen_s = now - h.first_token if h.first_token else 0.0
        tps = (final.completion_tokens - 1) / gen_s if gen_s > 0 and final.completion_tokens > 1 else None
        timing = dict(final.timing or {})
        if ttft is not None:
            timing.setdefault("ttft_s", ttft)
        if tps is not None:
            timing.setdefault("generation_tps", tps)
        final.timing = timing
        if self.on_finish is not None:
            with contextlib.suppress(Exception):
                queue = (h.admitted - h.submitted) if h.admitted else None
                self.on_finish(RequestStats(final.prompt_tokens, final.completion_tokens, ttft, tps,
                                            final.finish_reason, queue, h.itl))

    def _post(self, items: list[tuple[Handle, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Handle, Any]]] = {}
        for h, deltas in items:
            for d in deltas:
                by_loop.setdefault(h.loop, []).append((h, d))
        for loop, batch in by_loop.items():
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(_deliver, batch)

    def fail_active(self, exc: MlxkError) -> None:
        items = [(h, [exc]) for h in self._active.values() if not h.done]
        for h, _ in items:
            h.done = True
        self._active.clear()
        self._set_active_count()
        self._post(items)

    def _fail_all(self, exc: MlxkError) -> None:
        with self._cv:
            waiting = list(self._waiting)
            self._waiting.clear()
        for h in waiting:
            h.done = True
        self.fail_active(exc)
        self._post([(h, [exc]) for h in waiting])
