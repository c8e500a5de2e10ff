"""Speculative decoding inside the server's batch (``serve --prompt-lookup N``,
``serve --draft-model NAME``).

Each sequence of the running batch keeps its own draft source: a ``PromptLookup`` over its
prompt and answer so far, or a ``ModelDrafter`` (the draft model with a KV cache of its own
for that sequence; the draft model runs sequence by sequence, ``num_draft`` single-token
steps each, not batched across sequences). A decode step where at least one sequence has a draft becomes a
verify step: every sequence feeds ``[pending token, its drafts, padding]`` (one width for the
batch) through the model in one batched forward pass; each sequence then keeps the drafts its
own sampler confirms (``engine.speculative.accept``: greedy output is the plain output, with
sampling the point-mass acceptance rule) plus the model's next token. Sequences without a
draft take the same pass and keep just the next token, exactly as in a plain step. A step where
no sequence has a draft is mlx-lm's plain step.

Rewinding per sequence: the batch KV cache (mlx-lm's ``BatchKVCache``) holds all sequences
right-aligned at one write index, each behind its own left padding. After a verify step the
cache is trimmed by the smallest rejected count; the rest of each sequence's rejected
positions are rolled to its front and become left padding (masked, never attended), and
padding common to all rows is cut off. So sequences accept different numbers of tokens in the
same step without leaving the batch.

Which sequences draft: those without logits processors. A repetition penalty or a grammar
(``response_format``, tools) scores each position from the tokens before it and a grammar's
state advances token by token, so such a sequence takes the plain path inside the verify
step (it still shares the forward pass). Models whose cache is not a plain ``BatchKVCache`` in
every layer (sliding windows, recurrent layers, ``--max-kv-size``, a quantized cache) cannot be
rewound this way: there every step is plain.

This module reaches into mlx-lm 0.32.2's ``BatchGenerator._generation_batch`` (to install the
verifying ``GenerationBatch``) and the ``BatchKVCache`` fields (``keys``, ``values``, ``offset``,
``left_padding``, ``_idx``): pin-checked by tests/unit/engine/test_batch_rewind.py.
"""

from __future__ import annotations

from typing import Any

from mlx_lm.generate import BatchGenerator, GenerationBatch
from mlx_lm.models.cache import BatchKVCache, dynamic_roll

from mlxk.engine.prompt_lookup import PromptLookup
from mlxk.engine.speculative import ModelDrafter, SpecCounts, accept

Drafter = PromptLookup | ModelDrafter   # extend(tokens), propose(pending, limit), feedback(n, kept)


def rewind(caches: list[Any], rejected: list[int]) -> None:
    """Drop the last ``rejected[i]`` positions of row ``i`` from every layer's BatchKVCache."""
    import mlx.core as mx

    low = min(rejected)
    shifts = [r - low for r in rejected]
    roll = mx.array(shifts)[:, None] if any(shifts) else None
    cut = 0
    for c in caches:
        c.trim(low)
        if roll is None:
            continue
        c.keys = dynamic_roll(c.keys[..., :c._idx, :], roll, axis=2)
        c.values = dynamic_roll(c.values[..., :c._idx, :], roll, axis=2)
        c.offset = c.offset - roll[:, 0]
        c.left_padding = c.left_padding + roll[:, 0]
        if c is caches[0]:
            cut = min(c.left_padding.tolist())
        if cut > 0:   # padding every row has: not needed at all
            c.keys = c.keys[..., cut:, :]
            c.values = c.values[..., cut:, :]
            c._idx -= cut
            c.left_padding = c.left_padding - cut


class SpecGenerationBatch(GenerationBatch):
    """mlx-lm's generation batch with verify steps (see module docstring)."""

    drafters: dict[int, Drafter]
    counts: SpecCounts

    def next(self) -> list[Any]:
        plan = self._plan() if self.uids else None
        if plan is None:
            responses = super().next()
            for r in responses:
                self._fed(r.uid, [r.token], r.finish_reason is not None)
            return responses
        return self._verify(*plan)

    def _fed(self, uid: int, tokens: list[int], finished: bool) -> None:
        d = self.drafters.get(uid)
        if d is not None:
            d.extend(tokens)
            if finished:
                self.drafters.pop(uid, None)

    def _plan(self) -> tuple[list[int], list[list[int]]] | None:
        """Each row's pending token and drafts, or None for a plain step."""
        if not self.drafters or not all(type(c) is BatchKVCache for c in self.prompt_cache):
            return None
        if not any(self.drafters.get(uid) is not None for uid in self.uids):
            return None
        pending = self._next_tokens.tolist()
        drafts = []
        for i, uid in enumerate(self.uids):
            d = self.drafters.get(uid)
            room = self.max_tokens[i] - self._num_tokens[i] - 1
            drafts.append(d.propose(pending[i], limit=room) if d is not None and room > 0 else [])
        return (pending, drafts) if any(drafts) else None

    def _verify(self, pending: list[int], drafts: list[list[int]]) -> list[Any]:
        import mlx.core as mx

        width = 1 + max(len(d) for d in drafts)
        inputs = mx.array([[p, *d, *([0] * (width - 1 - len(d)))] for p, d in zip(pending, drafts, strict=True)])
        logits = self.model(inputs, cache=self.prompt_cache)
        targets, rows = [], []
        for i, d in enumerate(drafts):
            lg = logits[i, :len(d) + 1]
            processors = self.logits_processors[i] or ()
            if processors:   # never drafted (module docstring): the plain step's processing
                context = self._token_context[i].update_and_fetch(mx.array(pending[i:i + 1]))
                for proc in processors:
                    lg = proc(context, lg)
            lp = lg - mx.logsumexp(lg, axis=-1, keepdims=True)
            sampler = (self.samplers[i] if self.samplers else None) or self.fallback_sampler
            targets.append(sampler(lp))
            rows.append(lp)
        mx.eval(targets, rows)
        chosen = [t.tolist() for t in targets]
        accepted = [accept(d, t) for d, t in zip(drafts, chosen, strict=True)]
        rewind(self.prompt_cache, [width - 1 - a for a in accepted])
        self.counts.drafted += sum(len(d) for d in drafts)
        self.counts.accepted += sum(accepted)
        for uid, d, a in zip(self.uids, drafts, accepted, strict=True):
            if d:
                self.drafters[uid].feedback(len(d), a)
        emitted = [[(p, self._next_logprobs[i]), *((d[j], rows[i][j]) for j in range(a))]
                   for i, (p, d, a) in enumerate(zip(pending, drafts, accepted, strict=True))]
        self._current_tokens = mx.array(pending, dtype=mx.uint32)
        self._next_tokens = mx.array([t[a] for t, a in zip(chosen, accepted, strict=True)], dtype=mx.uint32)
        self._next_logprobs = [rows[i][a] for i, a in enumerate(accepted)]
        for i, toks in enumerate(emitted):
            self.tokens[i].extend(t for t, _ in toks)
        return self._respond(emitted)

    def _respond(self, emitted: list[list[tuple[int, Any]]]) -> list[Any]:
        """One response per emitted token, with mlx-lm's length and stop-token checks."""
        keep, responses = [], []
        for i, toks in enumerate(emitted):
            uid, reason = self.uids[i], None
            for token, lp in toks:
                self._num_tokens[i] += 1
                if self._num_tokens[i] >= self.max_tokens[i]:
                    reason = "length"
                if self._matchers[i].advance(token):
                    reason = "stop"
                final = reason is not None
                responses.append(self.Response(uid=uid, token=token, logprobs=lp, finish_reason=reason,
                                               prompt_cache=self.extract_cache(i) if final else None,
                                               all_tokens=self.tokens[i] if final else None))
                if final:
                    break
            self._fed(uid, [t for t, _ in toks], reason is not None)
            if reason is None:
                keep.append(i)
        if len(keep) < len(self.uids):
            self.filter(keep)
        return responses


class SpecBatchGenerator(BatchGenerator):
    """mlx-lm's ``BatchGenerator`` whose generation batch verifies prompt-lookup drafts."""

    def __init__(self, model: Any, *, counts: SpecCounts, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        batch = SpecGenerationBatch.empty(self.model, self.sampler)
        batch.drafters = self.drafters = {}
        batch.counts = counts
        self._generation_batch = batch   # mlx-lm 0.32.2: the one place it is built

    def draft(self, uid: int, drafter: Drafter) -> None:
        """Sequence ``uid`` drafts from ``drafter`` (fed its prompt already) from now on."""
        self.drafters[uid] = drafter

    def remove(self, uids: list[int], return_prompt_caches: bool = False) -> Any:
        for uid in uids:
            self.drafters.pop(uid, None)
        return super().remove(uids, return_prompt_caches=return_prompt_caches)
