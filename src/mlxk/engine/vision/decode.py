"""Batched decode for vision models: prefill alone through mlx-vlm, decode together.

``prefill`` runs one prepared request through mlx-vlm's own prompt path (vision
tower, image-token merge, the language model over the prompt) into a KV cache of
its own, and returns the first sampled token plus the sequence's rope offset:
for Qwen2-VL's multimodal rope a text token after the prompt sits at position
``cache offset + rope_delta`` (the image tokens take fewer positions than
tokens), and mlx-vlm keeps that delta on the model object, so it is read right
after the prefill, before another sequence overwrites it.

``DecodeBatch`` then holds every running sequence of the model (with images or
text-only) in one batched KV cache and steps them with one forward pass of the
language model, each row's offset carried in ``rope_deltas`` (shape ``(B, 1)``),
which mlx-vlm's Qwen2-VL language model adds to each row's cache offset. Nothing
per-sequence stays on the model between steps.

Families: ``BATCHED_FAMILIES`` lists those whose language model takes per-row
offsets that way (read in mlx-vlm 0.7.10's ``qwen2_vl`` and ``qwen2_5_vl``, tested
with the tiny Qwen2-VL), and only with plain KV caches. Requests to the others run
one at a time (``VisionScheduler`` chooses): some keep per-sequence state mlx-vlm
does not expose per row (mllama's cross-attention states, Gemma 3's sliding-window
caches), and batching the rest is not verified.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BATCHED_FAMILIES = frozenset({"qwen2_vl", "qwen2_5_vl"})


def batchable(lm: Any) -> bool:
    """True when ``lm``'s sequences can decode in one ``DecodeBatch``."""
    from mlx_vlm.models import cache as vlm_cache

    if getattr(lm.model.config, "model_type", None) not in BATCHED_FAMILIES:
        return False
    caches = vlm_cache.make_prompt_cache(lm.model.language_model)
    return bool(caches) and all(type(c) is vlm_cache.KVCache for c in caches)


@dataclass
class Prefilled:
    """One sequence after its prefill: its cache, first token and rope offset."""

    cache: list[Any]
    token: int
    logprobs: Any                     # (vocab,) log-probabilities of the first token
    rope_delta: Any                   # (1, 1) int array, or None for a plain rope


def prefill(lm: Any, p: Any, sampler: Any, processors: list[Any]) -> Prefilled:
    """Run ``p``'s prompt (images included) through mlx-vlm alone.

    mlx-vlm's ``generate_step`` does the prompt exactly as ``mlx_vlm.generate`` does;
    it computes one more token ahead before it yields the first, so the cache is
    trimmed back by that token (the batch feeds the first token itself)."""
    from mlx_vlm.generate import generate_step
    from mlx_vlm.models import cache as vlm_cache

    language_model = lm.model.language_model
    for attr in ("_rope_deltas", "_position_ids"):     # nothing of the previous sequence
        if hasattr(language_model, attr):
            setattr(language_model, attr, None)
    cache = vlm_cache.make_prompt_cache(language_model)
    steps = generate_step(p.input_ids, lm.model, p.pixel_values, p.mask,
                          max_tokens=max(1, p.max_tokens), sampler=sampler,
                          logits_processors=processors or None, prompt_cache=cache,
                          **p.model_kwargs)
    try:
        token, logprobs = next(steps)
    finally:
        steps.close()
    for c in cache:
        c.trim(1)
    return Prefilled(cache, int(token), logprobs.reshape(-1),
                     _rope_delta(getattr(language_model, "_rope_deltas", None),
                                 hasattr(language_model, "_rope_deltas")))


def _rope_delta(value: Any, has_state: bool) -> Any:
    import mlx.core as mx

    if not has_state:
        return None
    if value is None:
        return mx.zeros((1, 1), dtype=mx.int32)
    return mx.array(value).reshape(-1)[:1].reshape(1, 1).astype(mx.int32)


@dataclass
class Row:
    """One decoding sequence: ``key`` is the caller's (a scheduler handle)."""

    key: Any
    token: int                        # the token the next step feeds
    sampler: Any
    processors: list[Any]
    context: list[int] = field(default_factory=list)   # prompt + output, for the processors


class DecodeBatch:
    """The running sequences of one vision model, decoded with one forward pass per step."""

    def __init__(self, language_model: Any) -> None:
        self.language_model = language_model
        self.rows: list[Row] = []
        self._cache: list[Any] | None = None
        self._deltas: Any = None
        self.steps = 0                # forward passes so far
        self.peak = 0                 # the most rows one step decoded

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, row: Row, pre: Prefilled) -> None:
        import mlx.core as mx
        from mlx_vlm.models import cache as vlm_cache

        single = [vlm_cache.BatchKVCache.merge([c]) for c in pre.cache]
        if self._cache is None or not self.rows:
            self._cache = single
            self._deltas = pre.rope_delta
        else:
            for mine, theirs in zip(self._cache, single, strict=True):
                mine.extend(theirs)
            if self._deltas is not None:
                self._deltas = mx.concatenate([self._deltas, pre.rope_delta])
        self.rows.append(row)

    def keep(self, keep: list[int]) -> None:
        """Only the rows at ``keep`` (indices) go on."""
        import mlx.core as mx

        if len(keep) == len(self.rows):
            return
        self.rows = [self.rows[i] for i in keep]
        if not keep:
            self._cache, self._deltas = None, None
            return
        idx = mx.array(keep, dtype=mx.int32)
        for c in self._cache or ():
            c.filter(idx)
        if self._deltas is not None:
            self._deltas = self._deltas[idx]

    def drop(self, keys: set[Any]) -> None:
        self.keep([i for i, r in enumerate(self.rows) if r.key not in keys])

    def step(self) -> list[tuple[Row, int, Any]]:
        """One token for every row: ``(row, token, logprobs)``, logprobs over the vocabulary."""
        import mlx.core as mx

        if not self.rows:
            return []
        inputs = mx.array([r.token for r in self.rows], dtype=mx.int32)[:, None]
        kwargs = {"rope_deltas": self._deltas} if self._deltas is not None else {}
        out = self.language_model(inputs, cache=self._cache, **kwargs)
        logits = getattr(out, "logits", out)[:, -1, :]
        if any(r.processors for r in self.rows):
            rows = []
            for i, r in enumerate(self.rows):
                row = logits[i:i + 1]
                if r.processors:
                    r.context.append(r.token)
                    ctx = mx.array(r.context)
                    for proc in r.processors:
                        row = proc(ctx, row)
                rows.append(row)
            logits = mx.concatenate(rows, axis=0)
        logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        samplers = [r.sampler for r in self.rows]
        if all(s is samplers[0] for s in samplers):
            sampled = samplers[0](logprobs)
        else:
            sampled = mx.concatenate([s(logprobs[i:i + 1]) for i, s in enumerate(samplers)])
        mx.eval(sampled, logprobs)      # the cache writes are part of this graph
        tokens = [int(t) for t in sampled.reshape(-1).tolist()]
        self.steps += 1
        self.peak = max(self.peak, len(self.rows))
        out_rows = []
        for i, (r, t) in enumerate(zip(self.rows, tokens, strict=True)):
            r.token = t
            out_rows.append((r, t, logprobs[i]))
        return out_rows
