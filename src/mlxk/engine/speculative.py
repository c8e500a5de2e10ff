"""Speculative decoding for ``mlxk run``: ``--draft-model NAME`` (mlx-lm's
``speculative_generate_step``) and ``--prompt-lookup N`` (``lookup_steps`` here, drafts from
``engine.prompt_lookup``). A draft proposes tokens, the model verifies them in one forward
pass and keeps the longest agreeing prefix plus its own next token, so greedy output is
token-for-token the plain output.

With sampling, each verified position draws the model's own token with the request's
sampler and a draft token is kept only while it equals that draw. For a prompt-lookup draft
(a point mass on one token) this *is* the standard acceptance rule: the draft token is kept
with probability p(token), and a rejection leaves a draw from p without that token,
renormalised (the residual); the output distribution is the plain one.

The draft model must share the model's vocabulary (the same token ids mean the same text).
Counts: ``accepted`` tokens came from the draft; ``drafted`` are the tokens proposed (for a
draft model every round proposes ``num_draft``; the last round may propose fewer when
``max_tokens`` ends it, so there ``drafted`` is an upper bound).

Logits processors (repetition penalty, ``--json-schema``'s grammar) depend on the tokens
before each position and the grammar's state advances token by token, so prompt lookup
drafts nothing for such a request: it decodes plainly (``drafted`` stays 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mlxk.engine.prompt_lookup import DraftLength
from mlxk.errors import ValidationError


@dataclass
class SpecCounts:
    """Drafted and accepted tokens, for ``run``'s timing and the server's metrics."""

    drafted: int = 0
    accepted: int = 0

    def reset(self) -> None:
        self.drafted = self.accepted = 0

    def metrics(self) -> dict[str, float]:
        rate = self.accepted / self.drafted if self.drafted else 0.0
        return {"draft_tokens": float(self.drafted), "accepted_tokens": float(self.accepted),
                "acceptance_rate": rate}


@dataclass(kw_only=True)
class Draft(SpecCounts):
    """``--draft-model``: the draft LoadedModel and tokens per round."""

    lm: Any = None
    num_draft: int = 3


@dataclass(kw_only=True)
class Lookup(SpecCounts):
    """``--prompt-lookup N``: at most ``num_draft`` tokens per round from the context."""

    num_draft: int = 3


def check_vocab(model_lm: Any, draft_lm: Any) -> None:
    """Refuse a draft whose tokenizer does not map ids to the same tokens."""
    def vocab(lm: Any) -> dict[str, int]:
        try:
            return dict(lm.tokenizer.get_vocab())
        except Exception:
            return {}

    if vocab(model_lm) != vocab(draft_lm) or not vocab(model_lm):
        raise ValidationError(f"draft model {draft_lm.name} does not share the vocabulary of "
                              f"{model_lm.name}; speculative decoding needs the same tokenizer")


def steps(lm: Any, draft: Draft, prompt: Any, *, max_tokens: int, sampler: Any,
          logits_processors: list[Any] | None) -> Iterator[int]:
    """Token ids, as ``generate_step`` would give them; counts drafted/accepted on ``draft``."""
    from mlx_lm.generate import speculative_generate_step

    gen = speculative_generate_step(prompt, lm.model, draft.lm.model, num_draft_tokens=draft.num_draft,
                                    max_tokens=max_tokens, sampler=sampler,
                                    logits_processors=logits_processors)
    try:
        for token, _logprobs, from_draft in gen:
            if from_draft:
                draft.accepted += 1
            else:
                draft.drafted += draft.num_draft
            yield int(token)
    finally:
        gen.close()


class ModelDrafter(DraftLength):
    """Drafts of one sequence from a draft model (``serve --draft-model``): its own
    single-sequence KV cache, kept in step with the sequence (rolled back to the common prefix
    when drafts were rejected), greedy proposals. Same interface as ``PromptLookup``."""

    def __init__(self, model: Any, tokens: list[int], max_draft: int, prefill_step: int = 512) -> None:
        from mlx_lm.models.cache import make_prompt_cache

        super().__init__(max_draft)
        self.model = model
        self.prefill_step = prefill_step
        self.tokens = [int(t) for t in tokens]
        self.cache = make_prompt_cache(model)
        self.cached: list[int] = []      # the tokens in ``cache``

    def extend(self, tokens: list[int]) -> None:
        self.tokens.extend(int(t) for t in tokens)

    def propose(self, pending: int | None = None, limit: int | None = None) -> list[int]:
        import mlx.core as mx
        from mlx_lm.models.cache import trim_prompt_cache

        k = self.limit(limit)
        seq = self.tokens if pending is None else [*self.tokens, int(pending)]
        if k == 0 or not seq:
            return []
        keep = min(accept(self.cached, seq), len(seq) - 1)
        trim_prompt_cache(self.cache, len(self.cached) - keep)
        feed = seq[keep:]
        for start in range(0, len(feed) - 1, self.prefill_step):
            self.model(mx.array(feed[start:min(start + self.prefill_step, len(feed) - 1)])[None],
                       cache=self.cache)
        y, out = feed[-1], []
        for _ in range(k):
            y = int(mx.argmax(self.model(mx.array([[y]]), cache=self.cache)[0, -1]).item())
            out.append(y)
        self.cached = [*seq, *out[:-1]]
        return out


def accept(drafts: list[int], targets: list[int]) -> int:
    """How many leading ``drafts`` the model's own choices (``targets``, one per verified
    position, at least ``len(drafts)``) confirm; ``targets[n]`` is then the model's next token."""
    n = 0
    while n < len(drafts) and n < len(targets) and drafts[n] == targets[n]:
        n += 1
    return n


def lookup_applies(processors: list[Any] | None, cache: list[Any]) -> bool:
    """Prompt lookup runs without logits processors and on a cache it can trim back
    (recurrent layers and a wrapped rotating window cannot be); otherwise plain decoding."""
    from mlx_lm.models.cache import can_trim_prompt_cache

    return not processors and can_trim_prompt_cache(cache)


def lookup_steps(lm: Any, lookup: Lookup, prompt: list[int], *, max_tokens: int, sampler: Any,
                 cache: list[Any], prefill_step: int = 512) -> Iterator[int]:
    """Token ids of one sequence with prompt-lookup drafts verified in one pass per round;
    counts on ``lookup``. ``cache`` is a fresh trimmable prompt cache for ``lm.model``."""
    import mlx.core as mx
    from mlx_lm.models.cache import trim_prompt_cache

    from mlxk.engine.prompt_lookup import PromptLookup

    model = lm.model
    for start in range(0, len(prompt) - 1, prefill_step):
        model(mx.array(prompt[start:min(start + prefill_step, len(prompt) - 1)])[None], cache=cache)
        mx.eval([c.state for c in cache])
    history = PromptLookup(prompt[:-1], lookup.num_draft)
    pending = prompt[-1]        # chosen, not yet in the cache
    produced = 0
    while True:
        drafts = history.propose(pending, limit=max_tokens - produced - 1)
        logits = model(mx.array([pending, *drafts])[None], cache=cache)[0]
        logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        targets = sampler(logprobs).tolist()
        n = accept(drafts, targets)
        lookup.drafted += len(drafts)
        lookup.accepted += n
        history.feedback(len(drafts), n)
        trim_prompt_cache(cache, len(drafts) - n)
        history.extend([pending, *drafts[:n]])
        for token in [*drafts[:n], targets[n]]:
            produced += 1
            yield int(token)
            if produced >= max_tokens:
                return
        pending = targets[n]
