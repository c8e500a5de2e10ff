"""A thinking budget as an mlx-lm logits processor (``GenerationRequest.reasoning_budget``).

Anthropic's ``thinking: {"type": "enabled", "budget_tokens": N}``: a ``think`` reasoning model
(``<think>…</think>``: Qwen3, DeepSeek-R1, SmolLM3 …) thinks at most N tokens; then its
``</think>`` is forced and it goes on with the answer. The counting is
``text.reasoning.ThinkBudget`` (pure); this module applies its decision to the logits.
Models without a ``think`` format (no reasoning, or GPT-OSS harmony channels) get no
processor: the budget is accepted and has no effect there.

Like the grammar processor, it reads the new tokens off the context mlx-lm hands it
(``engine.context_tokens``).
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx

from mlxk.engine.context_tokens import NewTokens
from mlxk.engine.text.reasoning import THINK_CLOSE, THINK_OPEN, ThinkBudget
from mlxk.engine.types import LoadedModel


class ThinkingBudgetProcessor:
    """``(tokens, logits) -> logits``; one per sequence (it keeps the count)."""

    def __init__(self, budget: ThinkBudget) -> None:
        self.budget = budget
        self.seen = NewTokens()

    def __call__(self, tokens: mx.array, logits: mx.array) -> mx.array:
        for tok in self.seen.take(tokens):
            self.budget.feed(tok)
        forced = self.budget.forced()
        if forced is None:
            return logits
        only = mx.arange(logits.shape[-1]) == forced
        return mx.where(only, logits, mx.array(-float("inf"), dtype=logits.dtype))


def _ids(lm: LoadedModel, tag: str) -> list[int]:
    try:
        return [int(t) for t in lm.tokenizer.encode(tag, add_special_tokens=False)]
    except Exception:  # a tokenizer that cannot encode the tag: no budget (documented)
        return []


def budget_processor(lm: LoadedModel, budget: int, in_reasoning: bool) -> Any | None:
    """A fresh processor for ``lm`` (None when the model has no ``<think>`` format).

    ``in_reasoning``: the prompt already opened the block (the template pre-opens ``<think>``).
    """
    if lm.reasoning_format != "think":
        return None
    close_ids = _ids(lm, THINK_CLOSE)
    if not close_ids:
        return None
    return ThinkingBudgetProcessor(ThinkBudget(budget, _ids(lm, THINK_OPEN), close_ids, in_reasoning))
