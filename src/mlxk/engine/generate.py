"""Generation: ``prepare`` (the one hook), ``stream`` (single sequence) and ``complete``.

``prepare`` turns a ``GenerationRequest`` into everything a token loop needs:
prompt tokens, sampler, logits processors, max_tokens and a fresh
``SequenceDecoder``. The single-stream loop here, the server's batch scheduler
and the distributed ranks all start from it; structured output adds its grammar
processor and tool-call decoder inside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mlxk import config as mlxk_config
from mlxk.engine import kvcache, sampling
from mlxk.engine import prompt as prompt_mod
from mlxk.engine.text.decoder import SequenceDecoder
from mlxk.engine.types import Chunk, GenerationRequest, LoadedModel
from mlxk.errors import ValidationError


@dataclass
class Prepared:
    prompt_tokens: list[int]
    sampler: Callable[[Any], Any]
    logits_processors: list[Any]
    max_tokens: int
    decoder: Any                       # SequenceDecoder (or a wrapper with the same interface)
    request: GenerationRequest
    prompt_text: str = ""


@dataclass
class Completion:
    text: str
    reasoning: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    timing: dict[str, float] = field(default_factory=dict)
    tool_calls: list[dict[str, Any]] | None = None


def default_max_tokens(lm: LoadedModel, n_prompt: int) -> int:
    """Context length minus the prompt, capped at ``DEFAULT_MAX_TOKENS_CAP``."""
    room = int(lm.context_length or 0) - n_prompt
    return max(1, min(mlxk_config.DEFAULT_MAX_TOKENS_CAP, room))


def vocab_size(lm: LoadedModel) -> int:
    """How many token ids the model knows (its embedding rows, else the tokenizer's)."""
    size = (lm.config or {}).get("vocab_size")
    return int(size) if size else len(lm.tokenizer)


def checked_ids(lm: LoadedModel, ids: Iterable[int]) -> list[int]:
    """A token-id prompt as a list, or a 400 naming the first id outside the vocabulary."""
    tokens = [int(t) for t in ids]
    size = vocab_size(lm)
    bad = next((t for t in tokens if not 0 <= t < size), None)
    if bad is not None:
        raise ValidationError(f"token id {bad} is outside the vocabulary (0..{size - 1})", param="prompt")
    return tokens


def _needs_structured(request: GenerationRequest) -> bool:
    if request.response_format and request.response_format.get("type") not in (None, "text"):
        return True
    if request.tools:
        return True
    return any(m.get("role") == "tool" or m.get("tool_calls") for m in request.messages or [])


def prepare(lm: LoadedModel, request: GenerationRequest) -> Prepared:
    """Everything a token loop needs for ``request`` on the loaded model ``lm``."""
    plan = None
    to_render = request
    if _needs_structured(request):
        from mlxk.engine.structured import plan as structured

        plan = structured.plan(lm, request)
        to_render = plan.request
    if request.prompt_ids is not None:
        tokens = checked_ids(lm, request.prompt_ids)
        text = lm.tokenizer.decode(tokens)
    else:
        text, templated = prompt_mod.render(lm, to_render)
        tokens = prompt_mod.encode_text(lm, text, templated)
    if not tokens:
        raise ValidationError("the prompt is empty", param="messages" if request.messages else "prompt")
    ctx = int(lm.context_length or 0)
    if ctx and len(tokens) >= ctx:
        raise ValidationError(f"the prompt is {len(tokens)} tokens; this model's context length is {ctx}",
                              param="messages" if request.messages else "prompt",
                              code="context_length_exceeded")
    if request.max_tokens is not None and request.max_tokens < 1:
        raise ValidationError("max_tokens must be >= 1", param="max_tokens")
    max_tokens = request.max_tokens or default_max_tokens(lm, len(tokens))
    decoder = SequenceDecoder(
        lm.tokenizer, lm.eos_token_ids, stop=request.stop, prompt_tokens=len(tokens),
        reasoning_format=lm.reasoning_format,
        start_in_reasoning=prompt_mod.opens_reasoning(lm, text),
        hidden_token_ids=lm.hidden_token_ids,
        marker_token_ids=lm.marker_token_ids,
    )
    prepared = Prepared(
        prompt_tokens=tokens, sampler=sampling.make_sampler(request.sampling),
        logits_processors=sampling.make_logits_processors(request.sampling),
        max_tokens=int(max_tokens), decoder=decoder, request=request, prompt_text=text,
    )
    if plan is not None and plan.active:
        from mlxk.engine.structured import plan as structured

        structured.attach(lm, plan, prepared)
    if request.reasoning_budget is not None:
        from mlxk.engine import thinking

        budget = thinking.budget_processor(lm, request.reasoning_budget,
                                           prompt_mod.opens_reasoning(lm, text))
        if budget is not None:
            prepared.logits_processors = [*prepared.logits_processors, budget]
    return prepared


INTERACTIVE_PREFILL_STEP = 256


def stream(lm: LoadedModel, request: GenerationRequest, prepared: Prepared | None = None,
           prefill_step: int | None = None) -> Iterator[Chunk]:
    """Generate one sequence; yields text/reasoning chunks, then one final chunk
    (``finish_reason``, token counts, ``timing``).

    ``prefill_step``: prompt tokens per prefill chunk. Ctrl-C (KeyboardInterrupt) can only land
    between chunks, so an interactive chat passes ``INTERACTIVE_PREFILL_STEP`` to stop within
    about a second even while a long prompt is being read.
    """
    import mlx.core as mx
    from mlx_lm.generate import generate_step, generation_stream

    p = prepared or prepare(lm, request)
    draft = getattr(lm, "draft", None)

    def make_steps() -> Any:
        if draft is not None:
            from mlxk.engine import speculative

            draft.reset()
            if isinstance(draft, speculative.Lookup):
                cache = kvcache.make_cache(lm.model, getattr(lm, "cache_options", None))
                if speculative.lookup_applies(p.logits_processors, cache):
                    return speculative.lookup_steps(
                        lm, draft, p.prompt_tokens, max_tokens=p.max_tokens, sampler=p.sampler,
                        cache=cache, **({"prefill_step": prefill_step} if prefill_step else {}))
            else:
                return speculative.steps(lm, draft, mx.array(p.prompt_tokens), max_tokens=p.max_tokens,
                                         sampler=p.sampler,
                                         logits_processors=p.logits_processors or None)
        return (t for t, _ in generate_step(
            mx.array(p.prompt_tokens), lm.model, max_tokens=p.max_tokens, sampler=p.sampler,
            logits_processors=p.logits_processors or None,
            **({"prefill_step_size": prefill_step} if prefill_step else {}),
            **kvcache.generate_kwargs(lm.model, getattr(lm, "cache_options", None))))

    yield from run_steps(lm, p, make_steps, generation_stream,
                         draft.metrics if draft is not None else None)


def run_steps(lm: Any, p: Prepared, make_steps: Callable[[], Any], gen_stream: Any,
              extra_timing: Callable[[], dict[str, float]] | None = None) -> Iterator[Chunk]:
    """The single-sequence token loop (text and vision engines): seed, feed every token id of
    ``make_steps()`` through the decoder, then the final chunk with the timing."""
    import mlx.core as mx
    from mlx_lm.generate import wired_limit

    sampling.apply_seed(p.request.sampling)
    mx.reset_peak_memory()
    started = time.perf_counter()
    first = last = None
    reason = "length"
    steps = make_steps()
    try:
        with wired_limit(lm.model, [gen_stream]):
            for token in steps:
                last = time.perf_counter()
                if first is None:
                    first = last
                yield from p.decoder.feed(int(token))
                if p.decoder.finished:
                    reason = "stop"
                    break
    finally:
        steps.close()
    final = p.decoder.finish(reason)
    n = final.completion_tokens
    ttft = (first - started) if first else 0.0
    gen_s = (last - first) if first and last else 0.0
    final.timing = {
        "load_s": float(lm.load_seconds),
        "ttft_s": ttft,
        "prompt_tps": len(p.prompt_tokens) / ttft if ttft > 0 else 0.0,
        "generation_tps": (n - 1) / gen_s if gen_s > 0 and n > 1 else 0.0,
        "total_s": time.perf_counter() - started,
        "peak_memory_bytes": float(mx.get_peak_memory()),
        **(extra_timing() if extra_timing is not None else {}),
    }
    yield final


def complete(lm: LoadedModel, request: GenerationRequest) -> Completion:
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    final = Chunk()
    for chunk in stream(lm, request):
        text.append(chunk.text)
        reasoning.append(chunk.reasoning)
        calls += chunk.tool_calls or []
        if chunk.finish_reason:
            final = chunk
    return Completion(text="".join(text), reasoning="".join(reasoning),
                      finish_reason=final.finish_reason or "stop",
                      prompt_tokens=final.prompt_tokens, completion_tokens=final.completion_tokens,
                      timing=dict(final.timing or {}), tool_calls=calls or None)
