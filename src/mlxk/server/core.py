"""The dialect-neutral core: one internal request in, one internal event stream out.

Every wire dialect (OpenAI Chat Completions and Completions, Anthropic Messages, OpenAI
Responses, Ollama) translates its request into a ``CoreRequest`` and renders the
``Event``s of a ``Run`` in its own framing (``server/dialects/*.py``). Only this module
admits work into a model's batch (``generation.start``), so the same request through
any dialect runs the same prompt with the same sampler and produces the same tokens,
logprobs, usage and timings.

A request decodes one or more sequences: ``n`` copies of each prompt (OpenAI's ``n``;
a completions prompt list is several prompts); sequence ``p * n + j`` is copy ``j`` of
prompt ``p``, and every event names its sequence (``seq``). Events per sequence, in
order: a ``PromptLogprobs`` first when asked for (``echo``), any number of ``TextDelta``
/ ``ReasoningDelta`` / ``ToolCall``, then exactly one ``Finished``. ``Failed`` (the
engine failed mid-way) ends the whole run. Per-token logprobs (when the request asks
for them: ``GenerationRequest.logprobs``) ride on the text or reasoning delta of the
engine step that sampled them; a step whose tokens released no text yet carries them
on an empty ``TextDelta``, so every sampled token has exactly one entry.

Everything that can fail before the first token (unknown model, bad field,
oversize prompt, full queue) raises from ``start`` so each dialect can answer
with its own status code and error shape.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from fastapi.responses import StreamingResponse

from mlxk.engine.generate import checked_ids
from mlxk.engine.types import GenerationRequest, LoadedModel
from mlxk.server import features, generation, images
from mlxk.server.pool import ModelEntry, ModelPool

log = logging.getLogger("mlxk.server")

# One logprob entry as the engine makes it: {"id", "text", "logprob", "top": [{"id", "logprob"}]}
# ("text" is what the decoder released for the token, so the entries join to the text).
LogprobEntry = dict[str, Any]


@dataclass
class CoreRequest:
    """What any dialect asks of the engine."""

    model: str | None
    gen: GenerationRequest
    dialect: str
    prompt_param: str = "messages"          # the wire field named in prompt errors
    max_param: str = "max_tokens"           # the wire field named in length errors
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    context_cap: int | None = None          # Ollama's num_ctx: prompt + output must fit
    keep_alive: float | None = None         # seconds after this request; 0: unload when idle
    more: tuple[GenerationRequest, ...] = ()  # further prompts (a completions prompt list)
    n: int = 1                              # sequences per prompt (OpenAI's n)
    prompt_logprobs: int | None = None      # logprobs of the prompt tokens (echo), top-k
    logit_bias: dict[int, float] | None = None  # token id -> bias (checked against the vocabulary)

    @property
    def prompts(self) -> list[GenerationRequest]:
        return [self.gen, *self.more]


@dataclass(frozen=True)
class TextDelta:
    text: str
    logprobs: tuple[LogprobEntry, ...] = ()   # entries of the tokens sampled in this step
    seq: int = 0


@dataclass(frozen=True)
class ReasoningDelta:
    text: str
    logprobs: tuple[LogprobEntry, ...] = ()
    seq: int = 0


@dataclass(frozen=True)
class ToolCall:
    """One complete tool call (the engine parses whole calls; arguments are a JSON string)."""

    index: int
    id: str
    name: str
    arguments: str
    seq: int = 0


@dataclass(frozen=True)
class PromptLogprobs:
    """The prompt tokens' logprob entries (the first ``None``: it has no context), once."""

    entries: tuple[LogprobEntry | None, ...]
    seq: int = 0


@dataclass(frozen=True)
class Timings:
    """Measured durations of one request, in nanoseconds (Ollama reports exactly these)."""

    total_ns: int
    load_ns: int          # start -> model ready (0 when it was loaded)
    prompt_eval_ns: int   # admission -> first token
    eval_ns: int          # first token -> last token

    @property
    def ttft_s(self) -> float:
        return self.prompt_eval_ns / 1e9


@dataclass(frozen=True)
class Finished:
    reason: str                      # stop | length | tool_calls
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    timings: Timings
    stop_sequence: str | None = None  # the user stop string that ended the answer
    seq: int = 0


@dataclass(frozen=True)
class Failed:
    error: BaseException


Event = TextDelta | ReasoningDelta | ToolCall | PromptLogprobs | Finished | Failed


@dataclass
class Result:
    """One sequence of a run, collected (non-streaming answers)."""

    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finished: Finished | None = None
    logprobs: list[LogprobEntry] = field(default_factory=list)            # on the text
    reasoning_logprobs: list[LogprobEntry] = field(default_factory=list)  # on the reasoning
    prompt_logprobs: list[LogprobEntry | None] | None = None


def _processors(req: CoreRequest) -> list[Any]:
    ns = SimpleNamespace(presence_penalty=req.presence_penalty,
                         frequency_penalty=req.frequency_penalty, logit_bias=req.logit_bias)
    return features.extra_processors(ns)  # type: ignore[arg-type]


def _tool_call(call: dict[str, Any], index: int, seq: int) -> ToolCall:
    fn = call.get("function") or {}
    return ToolCall(int(call.get("index", index)), str(call.get("id") or ""),
                    str(fn.get("name", "")), str(fn.get("arguments") or "{}"), seq)


@dataclass
class Run:
    """One admitted request (a ``generation.Session``) seen as core events.

    Iterate ``batches()`` (or ``collect()`` / ``collect_all()``), then ``close()``.
    """

    session: generation.Session
    request: CoreRequest
    started_ns: int
    load_ns: int
    closed: bool = False
    _n_calls: dict[int, int] = field(default_factory=dict)   # tool calls so far, per sequence

    @property
    def entry(self) -> ModelEntry:
        return self.session.entry

    @property
    def model(self) -> str:
        return self.entry.key

    @property
    def sequences(self) -> int:
        return len(self.session.handles)

    @property
    def prompt_tokens(self) -> int:
        """Prompt tokens of the request, each prompt counted once (not once per copy)."""
        return self.session.prompt_tokens

    @property
    def tokenizer(self) -> Any:
        return self.session.tokenizer

    def prompt_ids(self, seq: int) -> list[int]:
        return list(self.session.handles[seq].prepared.prompt_tokens)

    def prompt_text(self, seq: int) -> str:
        """The prompt of sequence ``seq`` as the model saw it (template applied)."""
        return getattr(self.session.handles[seq].prepared, "prompt_text", "") or ""

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.session.close()
        if self.request.keep_alive == 0:
            pool = self.session.pool
            asyncio.get_running_loop().create_task(pool.unload_when_idle(self.entry.key))

    def _finished(self, chunk: Any, seq: int) -> Finished:
        now = time.perf_counter_ns()
        h = self.session.handles[seq]
        first = int(h.first_token * 1e9) if h.first_token else now
        submitted = int(h.submitted * 1e9)
        stops = getattr(h.prepared.decoder, "stops", None)
        matched = getattr(stops, "matched", None)
        return Finished(
            reason=chunk.finish_reason,
            prompt_tokens=chunk.prompt_tokens or len(h.prepared.prompt_tokens),
            completion_tokens=chunk.completion_tokens,
            cached_tokens=int(getattr(h, "cached_tokens", 0) or 0),
            timings=Timings(total_ns=now - self.started_ns, load_ns=self.load_ns,
                            prompt_eval_ns=max(0, first - submitted), eval_ns=max(0, now - first)),
            stop_sequence=matched if isinstance(matched, str) else None, seq=seq)

    def _convert(self, item: Any) -> list[Event]:
        if isinstance(item, BaseException):
            return [Failed(item)]
        c, seq = item.chunk, item.index
        lp = tuple(item.logprobs or ())
        out: list[Event] = []
        if item.prompt_logprobs is not None:
            out.append(PromptLogprobs(tuple(item.prompt_logprobs), seq))
        if c.reasoning:
            out.append(ReasoningDelta(c.reasoning, () if c.text else lp, seq))
        if c.text or (lp and not c.reasoning):
            out.append(TextDelta(c.text, lp, seq))
        for call in c.tool_calls or ():
            n = self._n_calls.get(seq, 0)
            out.append(_tool_call(call, n, seq))
            self._n_calls[seq] = n + 1
        if c.finish_reason is not None:
            out.append(self._finished(c, seq))
        return out

    async def batches(self, heartbeat_s: float | None = None) -> AsyncIterator[list[Event]]:
        """Events as they arrive, grouped per engine step; ``[]`` after ``heartbeat_s`` of silence.

        Ends after every sequence's ``Finished``, or after ``Failed``. A client that goes away
        cancels the handler (``disconnect.py``); its ``finally`` closes the run.
        """
        queue = self.session.queue
        left = self.sequences
        while True:
            try:
                first = await (asyncio.wait_for(queue.get(), heartbeat_s) if heartbeat_s
                               else queue.get())
            except asyncio.TimeoutError:
                yield []
                continue
            events = [e for item in generation.drain(queue, first) for e in self._convert(item)]
            left -= sum(isinstance(e, Finished) for e in events)
            yield events
            if left <= 0 or any(isinstance(e, Failed) for e in events):
                return

    async def collect_all(self) -> list[Result]:
        """Every sequence, collected (by ``seq``); raises the engine's error if it failed."""
        got = [Result() for _ in range(self.sequences)]
        text: list[list[str]] = [[] for _ in got]
        reasoning: list[list[str]] = [[] for _ in got]
        async for events in self.batches():
            for e in events:
                if isinstance(e, Failed):
                    raise e.error
                one = got[e.seq]
                if isinstance(e, TextDelta):
                    text[e.seq].append(e.text)
                    one.logprobs.extend(e.logprobs)
                elif isinstance(e, ReasoningDelta):
                    reasoning[e.seq].append(e.text)
                    one.reasoning_logprobs.extend(e.logprobs)
                elif isinstance(e, ToolCall):
                    one.tool_calls.append(e)
                elif isinstance(e, PromptLogprobs):
                    one.prompt_logprobs = list(e.entries)
                elif isinstance(e, Finished):
                    one.finished = e
        for one, t, r in zip(got, text, reasoning, strict=True):
            one.text, one.reasoning = "".join(t), "".join(r)
        return got

    async def collect(self) -> Result:
        """The (only) sequence, collected."""
        return (await self.collect_all())[0]


def _check_model(req: CoreRequest, lm: LoadedModel) -> None:
    """What can only be checked once the model is loaded: tools against its template,
    token ids (prompts, logit_bias) against its vocabulary."""
    if req.gen.tools:
        features.check_tools(SimpleNamespace(tools=req.gen.tools, tool_choice=req.gen.tool_choice,
                                             parallel_tool_calls=None), lm)  # type: ignore[arg-type]
    if req.logit_bias:
        features.check_bias(SimpleNamespace(logit_bias=req.logit_bias), lm)  # type: ignore[arg-type]
    for g in req.prompts:
        if g.prompt_ids is not None:
            checked_ids(lm, g.prompt_ids)


def _plan(req: CoreRequest) -> generation.Plan:
    return generation.Plan(req.prompts, n=req.n, top_logprobs=req.gen.logprobs,
                           prompt_logprobs=req.prompt_logprobs,
                           extra_processors=lambda: _processors(req), param=req.prompt_param,
                           requested_max=req.gen.max_tokens, context_cap=req.context_cap)


async def start(pool: ModelPool, req: CoreRequest) -> Run:
    """Admit ``req`` into its model's batch; raises (before any output) when it cannot run."""
    t0 = time.perf_counter_ns()
    load_ns = 0

    def build(lm: LoadedModel) -> generation.Plan:
        nonlocal load_ns
        load_ns = time.perf_counter_ns() - t0   # called as soon as the model is ready
        _check_model(req, lm)
        return _plan(req)

    session = await generation.start(pool, req.model, build)
    return Run(session, req, t0, load_ns)


async def count_tokens(pool: ModelPool, req: CoreRequest) -> tuple[str, int]:
    """``(model id, prompt tokens)`` of ``req`` as ``start`` would build it; generates nothing."""
    entry = await pool.acquire(req.model)
    try:
        _check_model(req, entry.lm)
        def prepare() -> Any:
            gen = images.resolve(req.gen, entry.lm, allow_urls=pool.settings.allow_image_urls,
                                 param=req.prompt_param)
            return generation._prepare(pool.prepare, entry.lm, gen)

        prepared = await asyncio.to_thread(prepare)
        return entry.key, len(prepared.prompt_tokens)
    finally:
        pool.release(entry)


async def load_only(pool: ModelPool, model: str | None, keep_alive: float | None) -> tuple[str, int]:
    """Load (or unload, with keep-alive 0) a model without generating: ``(model id, load ns)``."""
    t0 = time.perf_counter_ns()
    entry = await pool.acquire(model)
    load_ns = time.perf_counter_ns() - t0
    pool.release(entry)
    if keep_alive == 0:
        await pool.unload_when_idle(entry.key)
    return entry.key, load_ns


def stream(run: Run, first: bytes, feed: Callable[[list[Event]], bytes], media_type: str,
           heartbeat_s: float | None = None) -> StreamingResponse:
    """A streaming answer: ``first``, then ``feed(events)`` per engine step (``[]`` on heartbeat).

    An unexpected error while streaming reaches the client as ``feed([Failed(exc)])`` (each
    dialect's own error event). The run is closed however the stream ends.
    """
    async def body() -> AsyncIterator[bytes]:
        try:
            if first:
                yield first
            async for events in run.batches(heartbeat_s):
                data = feed(events)
                if data:
                    yield data
        except Exception as exc:
            log.exception("stream failed")
            yield feed([Failed(exc)])

    return generation.SessionStream(body(), run, media_type)
