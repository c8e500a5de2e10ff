"""Admitting work into a model's batch; ``core`` is its only caller (every dialect goes
through ``core.start``).

A ``Plan`` says what one request decodes: its prompts (``GenerationRequest``s),
how many sequences per prompt (OpenAI's ``n``) and the per-sequence options.
``start`` prepares every sequence, checks it against the context, and submits
them together (``BatchScheduler.submit_all``: one queue, one prefill per shared
prompt). Sequence ``p * n + j`` is copy ``j`` of prompt ``p``; with a seed it
samples with ``seed + (p * n + j)``, so the choices differ yet are reproducible.

Everything that can fail before the first byte (unknown model, bad fields,
oversize prompt, full queue) raises here, so the client gets a proper status
code. A client that goes away cancels the handler (``disconnect.py``); the
``Session`` is closed in a ``finally`` (``SessionStream`` for streamed replies),
which takes its sequences out of the batch.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from mlxk.engine.batch import Submission
from mlxk.engine.types import GenerationRequest, LoadedModel
from mlxk.errors import MlxkError, ValidationError
from mlxk.server import images, sse
from mlxk.server.pool import ModelEntry, ModelPool


@dataclass
class Plan:
    """What one request decodes (see module docstring)."""

    requests: list[GenerationRequest]
    n: int = 1
    top_logprobs: int | None = None        # per generated token (None: off)
    prompt_logprobs: int | None = None     # per prompt token (None: off)
    extra_processors: Callable[[], list[Any]] = list  # called once per sequence
    param: str = "messages"                # the wire field named in prompt errors
    requested_max: int | None = None       # the max_tokens the client asked for, if any
    context_cap: int | None = None         # a client's own cap on prompt + output (Ollama num_ctx)

    @property
    def size(self) -> int:
        return len(self.requests) * self.n


@dataclass
class Session:
    pool: ModelPool
    entry: ModelEntry
    handles: list[Any]
    plan: Plan
    released: bool = False

    @property
    def queue(self) -> asyncio.Queue:
        return self.handles[0].queue

    @property
    def tokenizer(self) -> Any:
        return getattr(self.entry.lm, "tokenizer", None)

    @property
    def prompt_tokens(self) -> int:
        """Prompt tokens of the request, each prompt counted once (not once per copy)."""
        return sum(len(self.handles[p * self.plan.n].prepared.prompt_tokens)
                   for p in range(len(self.plan.requests)))

    def close(self) -> None:
        if not self.released:
            self.released = True
            for h in self.handles:
                self.entry.scheduler.cancel(h)
            self.pool.release(self.entry)


class SessionStream(StreamingResponse):
    """A streamed reply that frees its session however it ends (done, error, or the
    client gone and the handler cancelled mid-write, where the generator's own
    ``finally`` would wait for garbage collection)."""

    def __init__(self, content: AsyncIterator[bytes], session: Session | Any,
                 media_type: str = sse.MEDIA_TYPE) -> None:
        super().__init__(content, media_type=media_type, headers=sse.HEADERS)
        self.session = session  # anything with close(): a Session, or a dialect's run over one

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.session.close()


def _prepare(prepare: Any, lm: LoadedModel, greq: Any) -> Any:
    try:
        return prepare(lm, greq)
    except MlxkError:
        raise
    except Exception as exc:  # template errors, bad roles ...: the request's fault
        raise ValidationError(f"could not build the prompt: {exc}", param="messages") from exc


def _check_context(lm: LoadedModel, prepared: Any, requested_max: int | None, param: str) -> None:
    ctx = lm.context_length
    n = len(prepared.prompt_tokens)
    if n == 0:
        raise ValidationError("the prompt is empty", param=param)
    if ctx and n >= ctx:
        raise ValidationError(f"the prompt is {n} tokens; this model's context length is {ctx}",
                              param=param, code="context_length_exceeded")
    if ctx and requested_max and n + requested_max > ctx:
        raise ValidationError(f"prompt ({n} tokens) + max_tokens ({requested_max}) exceeds this "
                              f"model's context length ({ctx})", param="max_tokens",
                              code="context_length_exceeded")


def _apply_cap(prepared: Any, cap: int | None, param: str) -> None:
    if not cap:
        return
    n = len(prepared.prompt_tokens)
    if n >= cap:
        raise ValidationError(f"the prompt is {n} tokens; the context cap (num_ctx) is {cap}",
                              param=param, code="context_length_exceeded")
    prepared.max_tokens = max(1, min(int(prepared.max_tokens), cap - n))


def _seeded(greq: GenerationRequest, index: int) -> GenerationRequest:
    seed = greq.sampling.seed
    if seed is None or index == 0:
        return greq
    return dataclasses.replace(greq, sampling=dataclasses.replace(greq.sampling, seed=seed + index))


def _submissions(pool: ModelPool, lm: LoadedModel, plan: Plan) -> list[Submission]:
    """Prepare every sequence (each its own decoder, grammar and sampler state)."""
    subs = []
    for p, greq in enumerate(plan.requests):
        # Images are decoded (or, with --allow-image-urls, fetched) here, in the worker thread,
        # after the model is known: a text-only model refuses them before any decoding.
        greq = images.resolve(greq, lm, allow_urls=pool.settings.allow_image_urls,
                              param=plan.param)
        for j in range(plan.n):
            one = _seeded(greq, p * plan.n + j)
            prepared = _prepare(pool.prepare, lm, one)
            _check_context(lm, prepared, plan.requested_max, plan.param)
            _apply_cap(prepared, plan.context_cap, plan.param)
            subs.append(Submission(prepared, one.sampling, plan.top_logprobs, plan.prompt_logprobs,
                                   plan.extra_processors()))
    return subs


async def start(pool: ModelPool, model: str | None,
                build: Callable[[LoadedModel], Plan]) -> Session:
    """Acquire ``model``, build its ``Plan`` (``build(lm)`` validates the request against
    the loaded model) and admit every sequence; raises before any output when it cannot run."""
    entry = await pool.acquire(model)
    try:
        plan = build(entry.lm)
        subs = await asyncio.to_thread(_submissions, pool, entry.lm, plan)
        handles = entry.scheduler.submit_all(subs)
    except BaseException as exc:
        if isinstance(exc, MlxkError) and exc.code == "server_busy":
            pool.metrics.rejected.labels(entry.key).inc()
        pool.release(entry)
        raise
    return Session(pool, entry, handles, plan)


def drain(queue: asyncio.Queue, first: Any) -> list[Any]:
    """``first`` and whatever else is already waiting (one engine step's worth)."""
    items = [first]
    while not queue.empty():
        items.append(queue.get_nowait())
    return items
