"""The dialect-neutral core: one internal request in, one internal event stream out.

Every wire dialect (Anthropic Messages, OpenAI Responses, Ollama) translates its
request into a ``CoreRequest`` and renders the ``Event``s of a ``Run`` in its own
framing; only this module admits work into a model's batch. So the same request
through any dialect runs the same prompt with the same sampler and produces the
same tokens, usage and timings. Admission is ``generation.start`` (a ``Plan`` of one
sequence), the same path OpenAI chat/text completions take (``openai_completions.py``,
which reads the raw deltas because it needs per-token logprobs and ``n`` choices).

Events, in order: any number of ``TextDelta`` / ``ReasoningDelta`` / ``ToolCall``,
then exactly one ``Finished`` (or ``Failed`` when the engine failed mid-way).
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

from mlxk.engine.types import GenerationRequest
from mlxk.server import features, generation, images
from mlxk.server.pool import ModelEntry, ModelPool

log = logging.getLogger("mlxk.server")


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


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class ToolCall:
    """One complete tool call (the engine parses whole calls; arguments are a JSON string)."""

    index: int
    id: str
    name: str
    arguments: str


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


@dataclass(frozen=True)
class Failed:
    error: BaseException


Event = TextDelta | ReasoningDelta | ToolCall | Finished | Failed


@dataclass
class Result:
    """A whole run, collected (non-streaming answers)."""

    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finished: Finished | None = None


def _processors(req: CoreRequest) -> list[Any]:
    ns = SimpleNamespace(presence_penalty=req.presence_penalty,
                         frequency_penalty=req.frequency_penalty, logit_bias=None)
    return features.extra_processors(ns)  # type: ignore[arg-type]


def _tool_call(call: dict[str, Any], index: int) -> ToolCall:
    fn = call.get("function") or {}
    return ToolCall(int(call.get("index", index)), str(call.get("id") or ""),
                    str(fn.get("name", "")), str(fn.get("arguments") or "{}"))


@dataclass
class Run:
    """One admitted request (a ``generation.Session`` of one sequence) seen as core events.

    Iterate ``batches()`` (or ``collect()``), then ``close()``.
    """

    session: generation.Session
    request: CoreRequest
    started_ns: int
    load_ns: int
    closed: bool = False
    _n_calls: int = 0

    @property
    def entry(self) -> ModelEntry:
        return self.session.entry

    @property
    def handle(self) -> Any:
        return self.session.handles[0]

    @property
    def model(self) -> str:
        return self.entry.key

    @property
    def prompt_tokens(self) -> int:
        return len(self.handle.prepared.prompt_tokens)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.session.close()
        if self.request.keep_alive == 0:
            pool = self.session.pool
            asyncio.get_running_loop().create_task(pool.unload_when_idle(self.entry.key))

    def _finished(self, chunk: Any) -> Finished:
        now = time.perf_counter_ns()
        h = self.handle
        first = int(h.first_token * 1e9) if h.first_token else now
        submitted = int(h.submitted * 1e9)
        stops = getattr(h.prepared.decoder, "stops", None)
        matched = getattr(stops, "matched", None)
        return Finished(
            reason=chunk.finish_reason, prompt_tokens=chunk.prompt_tokens or self.prompt_tokens,
            completion_tokens=chunk.completion_tokens,
            cached_tokens=int(getattr(h, "cached_tokens", 0) or 0),
            timings=Timings(total_ns=now - self.started_ns, load_ns=self.load_ns,
                            prompt_eval_ns=max(0, first - submitted), eval_ns=max(0, now - first)),
            stop_sequence=matched if isinstance(matched, str) else None)

    def _convert(self, item: Any) -> list[Event]:
        if isinstance(item, BaseException):
            return [Failed(item)]
        c = item.chunk
        out: list[Event] = []
        if c.reasoning:
            out.append(ReasoningDelta(c.reasoning))
        if c.text:
            out.append(TextDelta(c.text))
        for call in c.tool_calls or ():
            out.append(_tool_call(call, self._n_calls))
            self._n_calls += 1
        if c.finish_reason is not None:
            out.append(self._finished(c))
        return out

    async def batches(self, heartbeat_s: float | None = None) -> AsyncIterator[list[Event]]:
        """Events as they arrive, grouped per engine step; ``[]`` after ``heartbeat_s`` of silence.

        Ends after ``Finished`` or ``Failed``. A client that goes away cancels the handler
        (``disconnect.py``); its ``finally`` closes the run.
        """
        queue = self.session.queue
        while True:
            try:
                first = await (asyncio.wait_for(queue.get(), heartbeat_s) if heartbeat_s
                               else queue.get())
            except asyncio.TimeoutError:
                yield []
                continue
            events = [e for item in generation.drain(queue, first) for e in self._convert(item)]
            yield events
            if any(isinstance(e, (Finished, Failed)) for e in events):
                return

    async def collect(self) -> Result:
        got = Result()
        text: list[str] = []
        reasoning: list[str] = []
        async for events in self.batches():
            for e in events:
                if isinstance(e, TextDelta):
                    text.append(e.text)
                elif isinstance(e, ReasoningDelta):
                    reasoning.append(e.text)
                elif isinstance(e, ToolCall):
                    got.tool_calls.append(e)
                elif isinstance(e, Finished):
                    got.finished = e
                elif isinstance(e, Failed):
                    raise e.error
        got.text, got.reasoning = "".join(text), "".join(reasoning)
        return got


def _check_tools(req: CoreRequest, lm: Any) -> None:
    if req.gen.tools:
        features.check_tools(SimpleNamespace(tools=req.gen.tools, tool_choice=req.gen.tool_choice,
                                             parallel_tool_calls=None), lm)  # type: ignore[arg-type]


async def start(pool: ModelPool, req: CoreRequest) -> Run:
    """Admit ``req`` into its model's batch; raises (before any output) when it cannot run."""
    t0 = time.perf_counter_ns()
    load_ns = 0

    def build(lm: Any) -> generation.Plan:
        nonlocal load_ns
        load_ns = time.perf_counter_ns() - t0   # called as soon as the model is ready
        _check_tools(req, lm)
        return generation.Plan([req.gen], extra_processors=lambda: _processors(req),
                               param=req.prompt_param, requested_max=req.gen.max_tokens,
                               context_cap=req.context_cap)

    session = await generation.start(pool, req.model, build)
    return Run(session, req, t0, load_ns)


async def count_tokens(pool: ModelPool, req: CoreRequest) -> tuple[str, int]:
    """``(model id, prompt tokens)`` of ``req`` as ``start`` would build it; generates nothing."""
    entry = await pool.acquire(req.model)
    try:
        _check_tools(req, entry.lm)
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
